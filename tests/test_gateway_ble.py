"""The gateway's BLE southbound with real parts: the gateway process scans with bleak's own BlueZ
backend over a private D-Bus system bus (tests/bluez.py's BlueZ stand-in), and publishes to a
real Mosquitto."""

import asyncio
import contextlib
import json

from harness import GatewayProcess, Subscriber, gateway_config, scrape, wait_until

from luciole.protocols import senml
from luciole.protocols.ble import bthome, eddystone, ibeacon
from luciole.simulators.bluez import APPLE, BTHOME, EDDYSTONE, FakeBlueZ
from luciole.simulators.mosquitto import free_port

PREFIX = "luciole/v1/issy"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
WRONG_KEY = bytes(16)
SENSOR = ("ps-0001", "54:48:E6:8F:80:A5")
SENSOR_2 = ("ps-0002", "54:48:E6:8F:80:A6")
SENSOR_3 = ("ps-0003", "54:48:E6:8F:80:A7")
BEACON = ("bcn-hall-3", "C0:FF:EE:00:00:03")
STRANGER = "12:34:56:78:9A:BC"
OCCUPANCY, BATTERY = 0x23, 0x01


@contextlib.contextmanager
def gateway(tmp_path, broker, devices, watchdog_s=30.0):
    """The gateway process with BLE on; yields (process, metrics port)."""
    port = free_port()
    lines = ["[ble]", "enabled = true", f"watchdog_s = {watchdog_s}"]
    for device_id, kind, mac, key in devices:
        lines += ["[[devices]]", f'id = "{device_id}"', f'kind = "{kind}"', f'mac = "{mac}"']
        if key is not None:
            lines.append(f'key = "{key.hex()}"')
    # /metrics on a port the test knows
    extra = "\n".join(lines) + "\n"
    config = gateway_config(tmp_path, broker, extra=extra, http_listen=f"127.0.0.1:{port}")
    gw = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        yield gw, port
    finally:
        gw.stop()


def adverts(outcome):
    return f'luciole_ble_adverts_total{{outcome="{outcome}"}}'


async def metric_reaches(port, name, at_least, timeout_s):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            value = (await scrape(port)).get(name, 0.0)
            if value >= at_least:
                return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{name} did not reach {at_least} in {timeout_s} s")
        await asyncio.sleep(0.1)


async def scanning(fake, gw):
    def started():
        assert gw.process.poll() is None, gw.log()
        return fake.scanning()

    await wait_until(started, 20, "the gateway scanning")


def readings(messages, device_id):
    """{seq: {name: value}} of the telemetry a device published, in arrival order."""
    out = []
    for m in messages:
        if m.topic == f"{PREFIX}/devices/{device_id}/telemetry":
            records = senml.resolve(senml.decode_cbor(m.payload), 0)
            values = {r["n"].split(":", 1)[1]: r.get("v", r.get("vb")) for r in records}
            out.append((m.seq, values))
    return out


def sensor_frame(mac, packet_id, occupied, counter, key=KEY, battery=87):
    measurements = [(BATTERY, battery), (OCCUPANCY, occupied)]
    return {BTHOME: bthome.encode(measurements, mac, key, counter=counter, packet_id=packet_id)}


async def test_encrypted_sensor_readings_reach_the_city_once(tmp_path, broker, bluez):
    device_id, mac = SENSOR
    devices = [(device_id, "parking-sensor", mac, KEY)]
    with gateway(tmp_path, broker, devices) as (gw, _):
        async with Subscriber(broker, f"{PREFIX}/devices/#").running() as city:
            await scanning(bluez, gw)
            for packet_id, occupied, counter in ((1, True, 10), (2, False, 20), (3, True, 30)):
                frame = sensor_frame(mac, packet_id, occupied, counter)
                for repeat in range(3):  # a sensor repeats each advert
                    assert bluez.advertise(mac, service_data=frame, rssi=-60 - repeat)
                # the same packet id again, encrypted anew: still the same reading
                again = sensor_frame(mac, packet_id, occupied, counter + 1)
                assert bluez.advertise(mac, service_data=again, rssi=-58)
            await wait_until(lambda: len(readings(city.messages, device_id)) >= 3, 10, "readings")
            await asyncio.sleep(0.5)  # nothing more comes
            got = readings(city.messages, device_id)
            assert got == [
                (10, {"seq": 10, "battery": 87, "occupancy": True}),
                (20, {"seq": 20, "battery": 87, "occupancy": False}),
                (30, {"seq": 30, "battery": 87, "occupancy": True}),
            ]
            assert all(m.user_seq == str(m.seq) for m in city.messages if m.seq is not None)
            status = [m for m in city.messages if m.topic.endswith(f"{device_id}/status")]
            assert status
            state = json.loads(status[-1].payload)
            assert state["online"] is True
            assert state["battery"] == 87
            assert -62 <= state["rssi"] <= -58
        # a consumer arriving later finds the status retained
        async with Subscriber(broker, f"{PREFIX}/devices/+/status", "late").running() as late:
            await wait_until(lambda: late.messages, 5, "the retained status")
            assert late.messages[0].retained
            assert json.loads(late.messages[0].payload)["online"] is True


async def test_downgrade_and_wrong_key_are_rejected_and_counted(tmp_path, broker, bluez):
    (id2, mac2), (id3, mac3) = SENSOR_2, SENSOR_3
    devices = [(id2, "parking-sensor", mac2, KEY), (id3, "parking-sensor", mac3, KEY)]
    with gateway(tmp_path, broker, devices) as (gw, port):
        async with Subscriber(broker, f"{PREFIX}/devices/+/telemetry").running() as city:
            await scanning(bluez, gw)
            plaintext = bthome.encode([(BATTERY, 11), (OCCUPANCY, 1)], packet_id=5)
            assert bluez.advertise(mac2, service_data={BTHOME: plaintext})
            forged = sensor_frame(mac3, 5, True, 100, key=WRONG_KEY, battery=12)
            assert bluez.advertise(mac3, service_data=forged)
            # then a genuine frame: once it is published, the forged ones were handled
            assert bluez.advertise(mac2, service_data=sensor_frame(mac2, 6, False, 7))
            await wait_until(lambda: readings(city.messages, id2), 10, "the genuine reading")
            values = await scrape(port)
            assert values[adverts("rejected")] == 2
            assert values[adverts("accepted")] == 1
            assert readings(city.messages, id2) == [
                (7, {"seq": 7, "battery": 87, "occupancy": False})
            ]
            assert readings(city.messages, id3) == []
        log = gw.log()
        assert f"{id2} ({mac2}): advert rejected, not trusted: plaintext" in log
        assert f"{id3} ({mac3}): advert rejected, not trusted: BTHome MIC mismatch" in log


async def test_a_replayed_advert_is_rejected_not_published(tmp_path, broker, bluez):
    device_id, mac = SENSOR
    with gateway(tmp_path, broker, [(device_id, "parking-sensor", mac, KEY)]) as (gw, port):
        async with Subscriber(broker, f"{PREFIX}/devices/+/telemetry").running() as city:
            await scanning(bluez, gw)
            arrived = sensor_frame(mac, 1, True, 40)  # someone in the street records this one
            assert bluez.advertise(mac, service_data=arrived)
            assert bluez.advertise(mac, service_data=sensor_frame(mac, 2, False, 41))  # it left
            await wait_until(lambda: len(readings(city.messages, device_id)) == 2, 10, "readings")
            assert bluez.advertise(mac, service_data=arrived)  # and plays it back
            await metric_reaches(port, adverts("rejected"), 1, 10)
            await asyncio.sleep(0.5)
            assert [seq for seq, _ in readings(city.messages, device_id)] == [40, 41]
        assert f"{device_id} ({mac}): advert rejected, not trusted: counter 40 is not above 41" in (
            gw.log()
        )


async def test_a_replay_stays_out_after_the_gateway_restarts(tmp_path, broker, bluez):
    device_id, mac = SENSOR
    devices = [(device_id, "parking-sensor", mac, KEY)]
    arrived = sensor_frame(mac, 1, True, 40)  # recorded in the street
    async with Subscriber(broker, f"{PREFIX}/devices/+/telemetry").running() as city:
        with gateway(tmp_path, broker, devices) as (gw, port):
            await scanning(bluez, gw)
            assert bluez.advertise(mac, service_data=arrived)
            assert bluez.advertise(mac, service_data=sensor_frame(mac, 2, False, 41))
            await wait_until(lambda: len(readings(city.messages, device_id)) == 2, 10, "readings")
        with gateway(tmp_path, broker, devices) as (gw, port):  # restarted: same data_dir
            await scanning(bluez, gw)
            assert bluez.advertise(mac, service_data=arrived)  # played back first thing
            await metric_reaches(port, adverts("rejected"), 1, 10)
            assert bluez.advertise(mac, service_data=sensor_frame(mac, 3, True, 42))  # genuine
            await wait_until(lambda: len(readings(city.messages, device_id)) == 3, 10, "reading")
            assert [seq for seq, _ in readings(city.messages, device_id)] == [40, 41, 42]
            assert "is not above 41: a replayed advert" in gw.log()


async def test_unknown_devices_are_counted_not_published(tmp_path, broker):
    # BlueZ without the advertisement monitor API: the gateway falls back to active scanning
    device_id, mac = SENSOR
    devices = [(device_id, "parking-sensor", mac, KEY)]
    with (
        FakeBlueZ(monitor_api=False, log_path=tmp_path / "bluez.log") as fake,
        gateway(tmp_path, broker, devices) as (gw, port),
    ):
        async with Subscriber(broker, f"{PREFIX}/#").running() as city:
            await scanning(fake, gw)
            for n in range(5):
                frame = bthome.encode([(BATTERY, 50), (OCCUPANCY, n & 1)], packet_id=n)
                assert fake.advertise(STRANGER, service_data={BTHOME: frame})
            assert fake.advertise(mac, service_data=sensor_frame(mac, 1, True, 1))
            await wait_until(lambda: readings(city.messages, device_id), 10, "the known sensor")
            assert (await scrape(port))[adverts("unknown")] == 5
            await asyncio.sleep(0.3)
            topics = {m.topic for m in city.messages}
            assert topics <= {
                f"{PREFIX}/gateways/gw-test/status",
                f"{PREFIX}/devices/{device_id}/telemetry",
                f"{PREFIX}/devices/{device_id}/status",
            }
        assert "passive scanning unavailable on hci0" in gw.log()


async def test_beacon_health_is_retained(tmp_path, broker, bluez):
    device_id, mac = BEACON
    with gateway(tmp_path, broker, [(device_id, "beacon", mac, None)]) as (gw, _):
        topic = f"{PREFIX}/museum/beacons/{device_id}"
        async with Subscriber(broker, topic).running() as city:
            await scanning(bluez, gw)
            tlm = eddystone.encode_tlm(2950, 21.5, 1234, 5678.9)
            apple = ibeacon.encode("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 7, 42, -59)
            assert bluez.advertise(
                mac, service_data={EDDYSTONE: tlm}, manufacturer_data={APPLE: apple}, rssi=-71
            )
            uid = eddystone.encode_uid("edd1ebeac04e5defa017", "0000000000a3", -20)
            assert bluez.advertise(mac, service_data={EDDYSTONE: uid}, rssi=-69)

            def merged():
                return city.messages and "namespace" in json.loads(city.messages[-1].payload)

            await wait_until(merged, 10, "TLM and UID merged")
        health = json.loads(city.messages[-1].payload)
        assert health["battery_mv"] == 2950
        assert health["temperature"] == 21.5
        assert health["adv_count"] == 1234
        assert health["uptime"] == 5678.9
        assert health["rssi"] == -69
        assert health["last_seen"] > 1.7e9
        assert (health["namespace"], health["instance"]) == ("edd1ebeac04e5defa017", "0000000000a3")
        assert (health["major"], health["minor"]) == (7, 42)
        assert len(city.messages) <= 2  # rate-limited
        async with Subscriber(broker, topic, "late").running() as late:
            await wait_until(lambda: late.messages, 5, "the retained beacon health")
            assert late.messages[0].retained
            assert json.loads(late.messages[0].payload) == health


async def test_watchdog_restarts_a_scan_that_went_silent(tmp_path, broker, bluez):
    device_id, mac = SENSOR
    devices = [(device_id, "parking-sensor", mac, KEY)]
    with gateway(tmp_path, broker, devices, watchdog_s=1.5) as (gw, port):
        async with Subscriber(broker, f"{PREFIX}/devices/+/telemetry").running() as city:
            await scanning(bluez, gw)
            assert bluez.advertise(mac, service_data=sensor_frame(mac, 1, True, 1))
            await wait_until(lambda: readings(city.messages, device_id), 10, "the first reading")
            restarts = (await scrape(port))["luciole_ble_scanner_restarts_total"]

            bluez.restart()  # bluetoothd crashes and comes back: the gateway's scan is gone
            assert not bluez.scanning()
            frame = sensor_frame(mac, 2, False, 2)
            deadline = asyncio.get_running_loop().time() + 15
            while len(readings(city.messages, device_id)) < 2:  # the sensor keeps advertising
                assert asyncio.get_running_loop().time() < deadline, gw.log()
                bluez.advertise(mac, service_data=frame)
                await asyncio.sleep(0.1)
            assert readings(city.messages, device_id)[1][0] == 2
            await metric_reaches(port, "luciole_ble_scanner_restarts_total", restarts + 1, 1)
        assert "restarting the scan" in gw.log()
