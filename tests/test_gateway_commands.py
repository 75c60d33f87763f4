"""Downlink: commands from the city to the gateway and its serial devices, answered over MQTT 5."""

import asyncio
import json
import os

import pytest
from harness import GatewayProcess, gateway_config, operator

from luciole.protocols import link
from luciole.simulators.serial_device import SerialDevice

CMD = "luciole/v1/issy/cmd"


async def started(gw, device):
    gw.start()
    await asyncio.wait_for(device.send_readings(1), 20)  # connected and announced


async def test_commands_reach_the_device_and_answers_come_back(tmp_path, broker):
    device = SerialDevice("lum-1", tmp_path / "ttyLUC0")
    gw = GatewayProcess(gateway_config(tmp_path, broker, [device.path]), tmp_path / "gw.log")
    try:
        await started(gw, device)
        async with operator(broker) as ask:
            answer = await ask("lum-1", "echo", json.dumps({"args": {"dim": 40}}).encode())
            assert answer == {"ok": True, "result": {"dim": 40}}
            assert device.commands_received[-1]["args"] == {"dim": 40}

            answer = await ask("lum-1", "self-destruct")
            assert answer == {"ok": False, "error": "unknown command self-destruct"}

            answer = await ask("lum-1", "echo", b"{not json")
            assert not answer["ok"] and "not JSON" in answer["error"]
            answer = await ask("lum-1", "echo", b'{"args": 3}')
            assert answer == {"ok": False, "error": '"args" must be a JSON object'}

            assert await ask("gw-test", "ping") == {"ok": True, "result": "pong"}
            status = await ask("gw-test", "status")
            assert status["ok"] and status["result"]["state"] == "online"
            answer = await ask("gw-test", "reboot")
            assert answer == {
                "ok": False,
                "error": "unknown gateway command 'reboot'; known: ping, status",
            }

            # commands in flight together, more than the link's window of 4: each gets its answer
            answers = await asyncio.gather(
                *(ask("lum-1", "echo", json.dumps({"args": {"n": n}}).encode()) for n in range(12)),
                ask("gw-test", "ping"),
            )
            assert answers == [{"ok": True, "result": {"n": n}} for n in range(12)] + [
                {"ok": True, "result": "pong"}
            ]

            with pytest.raises(TimeoutError):  # another gateway's device: not ours to answer
                await ask("ps-elsewhere", "echo", timeout_s=1.5)
    finally:
        gw.stop()
        device.unplug()


async def test_an_offline_device_gets_its_command_when_back_or_it_expires(tmp_path, broker):
    device = SerialDevice("lum-1", tmp_path / "ttyLUC0")
    config = gateway_config(tmp_path, broker, [device.path], silent_after_s=1.0)
    gw = GatewayProcess(config, tmp_path / "gw.log")
    try:
        await started(gw, device)
        device.unplug()
        await asyncio.sleep(2.5)  # the gateway now knows lum-1 is offline
        async with operator(broker) as ask:
            answer = await ask("lum-1", "echo", b'{"ttl_s": 0}')
            assert answer == {"ok": False, "error": "lum-1 is offline"}

            answer = await ask("lum-1", "echo", b'{"ttl_s": 1}', timeout_s=5)
            assert answer == {"ok": False, "error": "expired: lum-1 stayed offline"}

            waiting = asyncio.create_task(ask("lum-1", "echo", b'{"args": {"n": 7}, "ttl_s": 30}'))
            await asyncio.sleep(0.5)
            device.replug()
            await device.send_readings(1, first_seq=1)  # it speaks again: it is back online
            assert await asyncio.wait_for(waiting, 10) == {"ok": True, "result": {"n": 7}}
    finally:
        gw.stop()
        device.unplug()


class LossyDevice(SerialDevice):
    """A device whose line eats the next chunk holding a COMMAND: no ACK goes back, and the
    device says nothing more until a copy gets through."""

    lose_a_command = False

    def _readable(self):
        if self.lose_a_command:
            data = os.read(self._master, 65536)
            frames = link.FrameDecoder().feed(data)
            if any(isinstance(f, link.Frame) and f.type == link.COMMAND for f in frames):
                self.lose_a_command = False
                return
            self._handle(data)
            return
        super()._readable()


async def test_a_lost_command_to_a_silent_device_is_sent_again(tmp_path, broker):
    device = LossyDevice("lum-1", tmp_path / "ttyLUC0")
    gw = GatewayProcess(gateway_config(tmp_path, broker, [device.path]), tmp_path / "gw.log")
    try:
        await started(gw, device)
        device.lose_a_command = True  # and the device stays silent: it has nothing to report
        async with operator(broker) as ask:
            answer = await ask("lum-1", "echo", b'{"args": {"n": 1}}', timeout_s=5)
        assert answer == {"ok": True, "result": {"n": 1}}
        assert not device.lose_a_command  # the first copy was lost
        assert [c["args"] for c in device.commands_received] == [{"n": 1}]
    finally:
        gw.stop()
        device.unplug()
