"""The gateway between serial devices (real ptys) and a real Mosquitto, with faults injected."""

import asyncio

import pytest
from harness import GatewayProcess, Subscriber, gateway_config, wait_until

from luciole.simulators.mosquitto import Mosquitto
from luciole.simulators.serial_device import SerialDevice

TELEMETRY = "luciole/v1/issy/devices/+/telemetry"


@pytest.fixture
def broker(tmp_path):
    with Mosquitto(tmp_path / "broker") as broker:
        yield broker


def check_exactly_once_in_order(messages, expected_per_device):
    by_device = {}
    for m in messages:
        assert m.user_seq == str(m.seq), "the MQTT 5 user property carries the payload's seq"
        by_device.setdefault(m.device, []).append(m.seq)
    for device, count in expected_per_device.items():
        seqs = by_device.get(device, [])
        first_seen = list(dict.fromkeys(seqs))  # de-duplicated by sequence number
        assert first_seen == list(range(count)), f"{device}: lost or out of order"


async def test_readings_reach_the_city(tmp_path, broker):
    device = SerialDevice("ps-0001", tmp_path / "ttyLUC0")
    gw = GatewayProcess(gateway_config(tmp_path, broker, [device.path]), tmp_path / "gw.log")
    gw.start()
    try:
        async with Subscriber(broker, TELEMETRY).running() as city:
            await asyncio.wait_for(device.send_readings(200), 30)
            await wait_until(lambda: len(city.messages) >= 200, 10, "200 readings")
            check_exactly_once_in_order(city.messages, {"ps-0001": 200})
    finally:
        gw.stop()
        device.unplug()
