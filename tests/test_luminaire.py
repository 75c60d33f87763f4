"""The luminaire firmware as a sim board: a carousel uploaded over its serial device link, on air
through its light, and visitors' receivers under it (simulators/museum.py) rebuilding every object
byte for byte; a new version swapped in without a gap, incomplete uploads refused, dimming
honoured and kept across a power cut. Last, the whole chain: a CMS on Mosquitto, the real gateway
loading the luminaire, the light, the visitors."""

import asyncio
import hashlib
import json
import os
import random
import re

import aiomqtt
import pytest
from harness import GatewayProcess, gateway_config, wait_until

from luciole.edge import lifi_carousel
from luciole.protocols import cbor, lifi_phy, link
from luciole.simulators.mosquitto import Mosquitto
from luciole.simulators.museum import Museum
from luciole.simulators.world import LIGHT_MORE, BoardSpec, World

CHIP_RATE_HZ = 200_000  # light on the CPU: two visitors' DSP stay far below real time
LINE_CODE = "4b6b"


def content(version, seed):
    """The exhibit's objects (id -> bytes) and the carousel frames the gateway would upload."""
    rng = random.Random(seed)
    objects = {
        "summary": f"# La Joconde, version {version}\n".encode() * 20,
        "photo": rng.randbytes(12_000),
    }
    items = [
        lifi_carousel.Item("summary", "text/markdown", 0, objects["summary"]),
        lifi_carousel.Item("photo", "image/webp", 1, objects["photo"]),
    ]
    carousel = lifi_carousel.build("joconde", version, items, lifi_phy.MAX_PAYLOAD)
    return objects, carousel.frames


class Console:
    """The gateway's end of a board's device link, over the board's pty."""

    def __init__(self, tty_path):
        self.fd = os.open(tty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.link = link.Link(retry_ms=300, max_retries=10)
        self.replies = {}
        self.logs = []
        self.hellos = 0
        self.next_id = 1
        self._out = bytearray()
        asyncio.get_running_loop().add_reader(self.fd, self._readable)
        self._poller = asyncio.ensure_future(self._poll())

    def close(self):
        asyncio.get_running_loop().remove_reader(self.fd)
        self._poller.cancel()
        os.close(self.fd)

    def _now_ms(self):
        return int(asyncio.get_running_loop().time() * 1000)

    def _readable(self):
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        for event in self.link.receive(data, self._now_ms()):
            if isinstance(event, link.Frame):
                if event.type == link.HELLO:
                    self.hellos += 1
                elif event.type == link.RESPONSE:
                    reply = cbor.loads(event.body)
                    self.replies[reply.get("id")] = reply
                elif event.type == link.LOG:
                    self.logs.append(event.body.decode())
        self._write(self.link.pending_output())

    def _write(self, data):
        self._out += data
        while self._out:
            try:
                sent = os.write(self.fd, self._out)
            except BlockingIOError:
                return
            del self._out[:sent]

    async def _poll(self):
        while True:
            self.link.poll(self._now_ms())
            self._write(self.link.pending_output())
            await asyncio.sleep(0.02)

    async def hello(self, timeout_s=30):
        """Greets the board until it answers (it may still be booting)."""
        seen = self.hellos
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.hellos == seen:
            assert asyncio.get_running_loop().time() < deadline, "no HELLO from the board"
            body = cbor.dumps({"id": "gateway"})
            self._write(self.link.send(link.HELLO, body, self._now_ms(), reliable=False))
            await asyncio.sleep(0.5)

    async def send(self, frame_type, body):
        await wait_until(self.link.can_send, 10, "room in the link's window")
        self._write(self.link.send(frame_type, body, self._now_ms()))

    async def call(self, command, args=None, timeout_s=10):
        request_id = self.next_id
        self.next_id += 1
        request = {"id": request_id, "cmd": command}
        if args is not None:
            request["args"] = args
        await self.send(link.COMMAND, cbor.dumps(request))
        await wait_until(lambda: request_id in self.replies, timeout_s, f"a reply to {command}")
        return self.replies.pop(request_id)

    async def upload(self, version, frames, skip=()):
        """lifi-begin, then the frames (but those at the indexes in skip)."""
        begin = {
            "version": version,
            "frames": len(frames),
            "chip_rate_hz": CHIP_RATE_HZ,
            "line_code": LINE_CODE,
        }
        assert await self.call("lifi-begin", begin) == {"id": self.next_id - 1, "ok": True,
                                                        "result": {"ok": True}}  # fmt: skip
        for index, payload in enumerate(frames):
            if index not in skip:
                await self.send(link.LIFI, cbor.dumps([version, index, payload]))
        await wait_until(lambda: not self.link._flight, 20, "every LIFI frame acknowledged")

    async def commit(self, version):
        return await self.call("lifi-commit", {"version": version})


@pytest.fixture
async def luminaire(tmp_path):
    """(world, museum, board, console): a luminaire sim board with nothing on air yet."""
    async with World(tmp_path / "world", seed=7) as world:
        museum = Museum(world, seed=11)
        board = world.add(BoardSpec("lum-joconde", "luminaire"))
        console = Console(board.tty_path)
        try:
            await console.hello()
            yield world, museum, board, console
        finally:
            console.close()


def versions_on_air(museum, board):
    return [frame.version for frame in museum.frames.get(board.id, [])]


async def test_visitors_joining_at_random_times_rebuild_every_object(luminaire):
    _, museum, board, console = luminaire
    objects, frames = content(1, seed=1)
    await console.upload(1, frames)
    committed = await console.commit(1)
    assert committed["result"] == {"ok": True, "version": 1, "frames": len(frames)}, committed

    visitors = museum.visitors_joining(board.id, 2, within_s=3.0)
    await wait_until(
        lambda: all(1 in v.complete_s for v in visitors), 60, "both visitors with every object"
    )
    for visitor in visitors:
        assert visitor.objects[1] == objects  # byte for byte
        assert visitor.complete_s[1] > visitor.join_s
    assert set(versions_on_air(museum, board)) == {1}  # every frame the light sent decodes

    status = (await console.call("lifi-status"))["result"]
    assert status["sent"] > 0
    del status["sent"]
    assert status == {"version": 1, "frames": len(frames), "level_pct": 50, "staging": None,
                      "chip_rate_hz": CHIP_RATE_HZ, "line_code": LINE_CODE}  # fmt: skip


async def test_a_new_version_replaces_the_old_without_a_gap(luminaire):
    world, museum, board, console = luminaire
    old_objects, old_frames = content(1, seed=1)
    new_objects, new_frames = content(2, seed=2)
    await console.upload(1, old_frames)
    assert (await console.commit(1))["ok"]
    visitor = museum.visitor(board.id, world.now_s())
    await wait_until(lambda: 1 in visitor.complete_s, 60, "the first version")

    # an upload with holes: the commit names them and the old carousel stays on air
    await console.upload(2, new_frames, skip={5, 17, 200})
    refused = await console.commit(2)
    assert refused["ok"] is False and refused["error"] == "missing frames 5, 17, 200", refused
    assert (await console.call("lifi-status"))["result"]["version"] == 1
    staged = len(museum.frames[board.id])
    await wait_until(lambda: len(museum.frames[board.id]) > staged + 5, 10, "more frames")
    assert set(versions_on_air(museum, board)) == {1}

    await console.upload(2, new_frames)  # the whole of it this time
    assert (await console.commit(2))["ok"]
    assert (await console.commit(2))["ok"]  # repeated, as after a lost reply: still fine
    await wait_until(lambda: 2 in visitor.complete_s, 60, "the new version")
    assert visitor.versions == [1, 2]
    assert visitor.objects == {1: old_objects, 2: new_objects}
    # the light went from one carousel to the other, never dark nor mixing them
    on_air = versions_on_air(museum, board)
    switch = on_air.index(2)
    assert set(on_air[:switch]) == {1} and set(on_air[switch:]) == {2}
    status = (await console.call("lifi-status"))["result"]
    assert (status["version"], status["frames"]) == (2, len(new_frames))


async def test_dimming_is_honoured_and_survives_a_power_cut(luminaire):
    _, museum, board, console = luminaire
    _, frames = content(1, seed=1)
    refused = await console.call("dim", {"level_pct": 95})
    assert refused["error"] == "level_pct must be an integer from 10 to 90, got 95", refused
    await console.upload(1, frames)
    assert (await console.commit(1))["ok"]
    await wait_until(lambda: len(museum.frames.get(board.id, ())) >= 5, 10, "frames on air")
    assert abs(mean_level(museum.frames[board.id]) - 0.5) < 0.002

    assert (await console.call("dim", {"level_pct": 80}))["result"]["level_pct"] == 80
    dimmed = len(museum.frames[board.id]) + 1  # the frame on air may predate the command
    await wait_until(lambda: len(museum.frames[board.id]) >= dimmed + 10, 20, "dimmed frames")
    assert abs(mean_level(museum.frames[board.id][dimmed:]) - 0.8) < 0.002

    info = (await console.call("info"))["result"]
    print("luminaire heap_peak", info["heap_peak"], "heap_used", info["heap_used"])
    assert 0 < info["heap_peak"] < 128 * 1024

    board.power_off()  # a power cut, whatever the board was doing
    board.power_on()
    await console.hello()
    rebooted = len(museum.frames[board.id])
    await wait_until(lambda: len(museum.frames[board.id]) >= rebooted + 10, 30, "light again")
    after = museum.frames[board.id][rebooted:]
    assert abs(mean_level(after) - 0.8) < 0.002
    assert {frame.version for frame in after} == {1}  # the carousel resumed from flash
    status = (await console.call("lifi-status"))["result"]
    assert (status["version"], status["level_pct"]) == (1, 80)


async def test_a_cleared_luminaire_goes_dark_and_stays_dark_after_a_power_cut(luminaire):
    world, museum, board, console = luminaire
    _, frames = content(1, seed=1)
    await console.upload(1, frames)
    assert (await console.commit(1))["ok"]
    await wait_until(lambda: len(museum.frames.get(board.id, ())) >= 3, 10, "frames on air")
    assert (await console.call("lifi-clear"))["result"] == {"ok": True}
    await world.sleep(0.5)  # the frame on air when the command came ends
    dark = len(museum.frames[board.id])
    await world.sleep(3)
    assert len(museum.frames[board.id]) == dark
    board.power_off()
    board.power_on()
    await console.hello()
    status = (await console.call("lifi-status"))["result"]
    assert (status["version"], status["frames"]) == (None, 0)
    await world.sleep(2)
    assert len(museum.frames[board.id]) == dark
    _, frames = content(2, seed=2)
    await console.upload(2, frames)  # and the next carousel lights it again
    assert (await console.commit(2))["ok"]
    await wait_until(lambda: versions_on_air(museum, board)[-1:] == [2], 10, "version 2 on air")


async def test_the_light_is_the_encoders_frames_though_the_board_sends_them_in_slices(luminaire):
    world, _, _, console = luminaire
    rng = random.Random(5)
    payloads = [rng.randbytes(lifi_phy.MAX_PAYLOAD), rng.randbytes(37), b""]
    seen = []  # each frame the world handed to the light hook, whole
    hear = world.light
    world.light = lambda board, chips, rate_hz: (seen.append(chips), hear(board, chips, rate_hz))
    ops = []  # each message the board sent the world
    handle = world._handle
    world._handle = lambda b, writer, op, data: (ops.append(op), handle(b, writer, op, data))
    await console.upload(1, payloads)
    assert (await console.commit(1))["ok"]
    assert (await console.call("dim", {"level_pct": 10}))["ok"]
    dimmed = len(seen) + 1  # the frame on air may predate the command
    await wait_until(lambda: len(seen) >= dimmed + 6, 30, "dimmed frames")

    code = lifi_phy.CODE_4B6B
    expected = {lifi_phy.encode_frame(p, code, lvl): lvl for p in payloads for lvl in (50, 10)}
    assert all(chips in expected for chips in seen)  # chip for chip, whatever the level
    assert {expected[chips] for chips in seen[dimmed:]} == {10}
    assert set(seen[dimmed:]) == {lifi_phy.encode_frame(p, code, 10) for p in payloads}
    assert ops.count(LIGHT_MORE) > len(seen)  # the board sent them in slices


def mean_level(frames):
    return sum(f.on_chips for f in frames) / sum(f.chips for f in frames)


EXHIBIT = "la-joconde"
EXHIBIT_ROOT = f"luciole/v1/issy/museum/exhibits/{EXHIBIT}"


async def test_the_cms_content_reaches_visitors_through_gateway_and_light(tmp_path):
    objects, _ = content(1, seed=3)
    types = {"summary": "text/markdown", "photo": "image/webp"}
    manifest = {
        "version": 1,
        "title": "La Joconde",
        "objects": [
            {
                "id": key,
                "type": types[key],
                "size": len(data),
                "priority": int(key != "summary"),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for key, data in objects.items()
        ],
    }
    museum_toml = f"""
[museum]
line_code = "{LINE_CODE}"
chip_rate_hz = {CHIP_RATE_HZ}
level_pct = 70

[[devices]]
id = "lum-joconde"
kind = "luminaire"
exhibit = "{EXHIBIT}"
"""
    with Mosquitto(tmp_path / "broker") as broker:
        async with World(tmp_path / "world", seed=5) as world:
            museum = Museum(world, seed=13)
            board = world.add(BoardSpec("lum-joconde", "luminaire"))
            config = gateway_config(tmp_path, broker, [board.tty_path], extra=museum_toml)
            gw = GatewayProcess(config, tmp_path / "gw.log").start()
            try:
                async with aiomqtt.Client(broker.host, broker.port) as cms:
                    await cms.publish(f"{EXHIBIT_ROOT}/content", json.dumps(manifest), 1, True)
                    for key, data in objects.items():
                        await cms.publish(f"{EXHIBIT_ROOT}/objects/{key}", data, 1, True)

                def on_air():
                    assert gw.process.poll() is None, gw.log()
                    return any(frame.version == 1 for frame in museum.frames.get(board.id, ()))

                await wait_until(on_air, 60, "the gateway's carousel on the luminaire's light")
                visitors = museum.visitors_joining(board.id, 2, within_s=2.0)
                await wait_until(
                    lambda: all(1 in v.complete_s for v in visitors), 60, "visitors' objects"
                )
                for visitor in visitors:
                    assert visitor.objects[1] == objects
                dimmed = museum.frames[board.id][-5:]  # the gateway's [museum] level
                assert abs(mean_level(dimmed) - 0.7) < 0.002
            finally:
                gw.stop()


async def test_a_carousel_the_flash_cannot_hold_is_refused_at_begin(tmp_path):
    # a board with 256 KB of filesystem: 300 frames of 1,002-byte slots would fail half-way
    async with World(tmp_path / "world") as world:
        board = world.add(BoardSpec("lum-small", "luminaire", flash_kb=256))
        console = Console(board.tty_path)
        try:
            await console.hello()
            begin = {"version": 1, "frames": 300, "chip_rate_hz": CHIP_RATE_HZ,
                     "line_code": LINE_CODE}  # fmt: skip
            refused = await console.call("lifi-begin", begin)
            assert not refused["ok"]
            assert re.fullmatch(
                r"not enough flash for 300 frames: 294 KB needed, 25\d KB free", refused["error"]
            ), refused
            begin["frames"] = 200
            assert (await console.call("lifi-begin", begin))["ok"]
        finally:
            console.close()
