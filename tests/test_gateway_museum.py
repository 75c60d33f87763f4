"""The museum service end to end: a CMS publishes an exhibit's content to a real Mosquitto, the
real gateway process prepares the carousel and loads it, over a pty, into a luminaire stand-in
that speaks the luminaire protocol; what the luminaire would broadcast decodes to the CMS's bytes.
"""

import asyncio
import hashlib
import json
import random
import re

import aiomqtt
import pytest
from contract import payload_errors
from harness import GatewayProcess, gateway_config, wait_until

from luciole.edge import config
from luciole.edge.config import ConfigError
from luciole.edge.lifi_content import ContentAssembler, ObjectComplete
from luciole.edge.museum import missing_frames
from luciole.protocols import cbor, link
from luciole.simulators.mosquitto import Mosquitto
from luciole.simulators.serial_device import SerialDevice

EXHIBIT = "la-joconde"
ROOT = f"luciole/v1/issy/museum/exhibits/{EXHIBIT}"
MUSEUM = f"""
[museum]
line_code = "4b6b"
chip_rate_hz = 2000000
level_pct = 40

[[devices]]
id = "lum-1"
kind = "luminaire"
exhibit = "{EXHIBIT}"
"""


class Luminaire(SerialDevice):
    """A luminaire controller as the protocol asks: it stages a new version's frames and swaps
    carousels at the commit only. `drop` frame indices are lost once, as on a noisy line."""

    def __init__(self, path, drop=()):
        super().__init__("lum-1", path, role="luminaire")
        self.on_air = None  # (version, [payloads]) being broadcast
        self.staged = None  # {"version", "frames", "got": {index: payload}, ...}
        self.level_pct = 50
        self.commands = []  # (cmd, args), in order
        self.committed = []  # (version, frames staged at the commit)
        self.drop = set(drop)

    def on_frame(self, frame):
        if frame.type != link.LIFI:
            return
        version, index, payload = cbor.loads(frame.body)
        if index in self.drop:
            self.drop.discard(index)
            return
        if self.staged is not None and version == self.staged["version"]:
            self.staged["got"][index] = payload

    def _answer(self, command):
        name, args = command["cmd"], command["args"]
        self.commands.append((name, args))
        answer = {"id": command["id"], "ok": True, "result": None}
        if name == "lifi-begin":
            self.staged = dict(args, got={})
        elif name == "lifi-commit":
            staged = self.staged
            missing = [i for i in range(staged["frames"]) if i not in staged["got"]]
            if missing:
                answer = {"id": command["id"], "ok": False, "error": f"missing frames {missing}"}
            else:
                self.committed.append((staged["version"], len(staged["got"])))
                frames = [staged["got"][i] for i in range(staged["frames"])]
                self.on_air, self.staged = (staged["version"], frames, staged), None
        elif name == "lifi-clear":
            self.on_air = self.staged = None
        elif name == "dim":
            self.level_pct = args["level_pct"]
        elif name == "lifi-status":
            version, frames, begin = self.on_air or (None, [], {})
            answer["result"] = {
                "version": version,
                "frames": len(frames),
                "sent": 0,
                "level_pct": self.level_pct,
                "chip_rate_hz": begin.get("chip_rate_hz"),
                "line_code": begin.get("line_code"),
            }
        self._send(link.RESPONSE, cbor.dumps(answer))

    def decoded(self):
        """The objects a visitor's receiver rebuilds from one loop of the carousel on air."""
        assembler, objects = ContentAssembler(), {}
        for payload in self.on_air[1]:
            for event in assembler.feed(payload):
                if isinstance(event, ObjectComplete):
                    objects[event.entry.id] = event.data
        return objects


def manifest(version, objects, **changes):
    entries = [
        {"id": o, "type": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        | ({"priority": 0} if o == "summary" else {})
        for o, (kind, data) in objects.items()
    ]
    return json.dumps({"version": version, "title": "La Joconde", "objects": entries} | changes)


def content(seed):
    rnd = random.Random(seed)
    return {
        "summary": ("text/markdown", f"# La Joconde ({seed})\n".encode() + b"Portrait. " * 40),
        "photo": ("image/webp", rnd.randbytes(20_000)),
        "audio-fr": ("audio/ogg", rnd.randbytes(12_000)),
    }


class Museum:
    """The CMS and a city consumer of the broadcast states, on the real broker."""

    def __init__(self, client):
        self.client = client
        self.states = []

    async def publish(self, version, objects, raw_manifest=None):
        await self.client.publish(
            f"{ROOT}/content", raw_manifest or manifest(version, objects), qos=1, retain=True
        )
        for object_id, (_, data) in objects.items():
            await self.publish_object(object_id, data)

    async def publish_object(self, object_id, data):
        await self.client.publish(f"{ROOT}/objects/{object_id}", data, qos=1, retain=True)

    async def read(self):
        async for message in self.client.messages:
            state = json.loads(message.payload)
            assert payload_errors(str(message.topic), state) == [], state
            self.states.append(state)

    def last(self):
        return self.states[-1] if self.states else {}

    async def until(self, what, predicate, timeout_s=30):
        await wait_until(lambda: predicate(self.last()), timeout_s, what)
        return self.last()


@pytest.fixture
async def setup(tmp_path):
    with Mosquitto(tmp_path / "broker") as broker:
        path = tmp_path / "ttyLUM1"
        gw = GatewayProcess(gateway_config(tmp_path, broker, [path], extra=MUSEUM), tmp_path / "l")
        async with aiomqtt.Client(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.subscribe(f"{ROOT}/broadcast", qos=1)
            museum = Museum(client)
            reader = asyncio.create_task(museum.read())
            try:
                yield gw, museum, path
            finally:
                reader.cancel()
                gw.stop()


def on_air(version):
    return lambda s: s.get("state") == "on-air" and s["luminaires"][0]["version"] == version


async def test_content_goes_on_air_and_a_visitor_decodes_it(setup):
    gw, museum, path = setup
    gw.start()
    v1 = content(1)
    await museum.publish(1, v1)
    state = await museum.until("waiting for a luminaire", lambda s: s.get("frames"))
    assert state["state"] == "waiting" and state["luminaires"][0]["state"] == "offline"

    # plugged in later: it says HELLO and gets the content, two frames lost on the way
    luminaire = Luminaire(path, drop={2, 5})
    try:
        state = await museum.until("version 1 on air", on_air(1))
        assert state["chip_rate_hz"] == 2_000_000 and state["line_code"] == "4b6b"
        assert state["level_pct"] == 40 and state["frames"] == len(luminaire.on_air[1])
        names = [name for name, _ in luminaire.commands]
        assert names == ["lifi-status", "dim", "lifi-begin", "lifi-commit", "lifi-commit", "dim"]
        begin = luminaire.commands[2][1]
        assert begin == {
            "version": 1,
            "frames": state["frames"],
            "chip_rate_hz": 2_000_000,
            "line_code": "4b6b",
        }
        assert luminaire.level_pct == 40
        assert luminaire.decoded() == {k: data for k, (_, data) in v1.items()}
        assert any(s["state"] == "loading" for s in museum.states)

        # a new version: committed only once every frame of it is there, then it replaces v1
        v2 = dict(v1, photo=("image/webp", random.Random(9).randbytes(25_000)))
        await museum.publish(2, v2)
        state = await museum.until("version 2 on air", on_air(2))
        assert [version for version, _ in luminaire.committed] == [1, 2]
        assert luminaire.committed[1][1] == state["frames"]
        assert luminaire.decoded() == {k: data for k, (_, data) in v2.items()}

        # restarted with an empty carousel (a new pty: unplugged and back): loaded again
        luminaire.replug()
        luminaire.on_air, luminaire.commands = None, []
        await wait_until(lambda: luminaire.on_air, 30, "the reload")
        assert luminaire.on_air[0] == 2
        assert luminaire.decoded() == {k: data for k, (_, data) in v2.items()}
        await museum.until("version 2 on air again", on_air(2))

        # a restarted gateway finds the luminaire carrying the content: nothing is reloaded
        gw.stop()
        luminaire.commands, seen = [], len(museum.states)
        gw.start()
        await wait_until(lambda: luminaire.commands, 30, "the gateway's greeting")
        await wait_until(
            lambda: any(on_air(2)(s) and s.get("frames") for s in museum.states[seen:]),
            30,
            "version 2 prepared and found on air",
        )
        await asyncio.sleep(0.5)  # time for a reload, which must not come
        assert [name for name, _ in luminaire.commands] == ["lifi-status"]
    finally:
        luminaire.unplug()


async def test_content_the_cms_withdraws_goes_dark_until_it_comes_back(setup):
    gw, museum, path = setup
    gw.start()
    luminaire = Luminaire(path)
    try:
        v1 = content(1)
        await museum.publish(1, v1)
        await museum.until("version 1 on air", on_air(1))
        # the CMS deletes the retained manifest (an empty retained message)
        await museum.client.publish(f"{ROOT}/content", b"", qos=1, retain=True)
        state = await museum.until(
            "the content withdrawn",
            lambda s: s.get("state") == "waiting" and s["luminaires"][0]["version"] is None,
        )
        assert state["reason"] == "the CMS withdrew the content (its manifest was deleted)"
        assert state["luminaires"][0]["state"] == "idle"
        assert luminaire.on_air is None and ("lifi-clear", {}) in luminaire.commands
        assert "rejected" not in [s["state"] for s in museum.states]

        # a luminaire plugged back while withdrawn, still carrying the content, is cleared too
        luminaire.on_air = (1, [b"old"], {})
        luminaire.commands = []
        luminaire.replug()
        await wait_until(lambda: luminaire.on_air is None, 30, "the luminaire cleared again")
        assert [name for name, _ in luminaire.commands] == ["lifi-status", "lifi-clear"]

        await museum.publish(2, content(2))  # new content: on air again
        await museum.until("version 2 on air", on_air(2))
        assert luminaire.decoded() == {k: data for k, (_, data) in content(2).items()}
    finally:
        luminaire.unplug()


async def test_bad_content_is_rejected_and_the_luminaire_keeps_broadcasting(setup):
    gw, museum, path = setup
    luminaire = Luminaire(path)
    try:
        gw.start()
        v1 = content(1)
        await museum.publish(1, v1)
        await museum.until("version 1 on air", on_air(1))
        commands_before, on_air_before = len(luminaire.commands), luminaire.on_air

        async def rejected(payload_topic, payload, reason):
            await museum.client.publish(f"{ROOT}/{payload_topic}", payload, qos=1, retain=True)
            state = await museum.until(
                f"rejected: {reason}",
                lambda s: s.get("state") == "rejected" and reason in s["reason"],
            )
            assert state["version"] == 1 and state["luminaires"][0]["version"] == 1
            return state

        await rejected("content", b"\x00garbage{", "manifest is not JSON")
        bad_type = manifest(2, v1).replace("image/webp", "image/x-bitmap")
        await rejected("content", bad_type, "type 'image/x-bitmap' is not one of")
        huge = json.loads(manifest(2, v1))
        huge["objects"][1]["size"] = 2 * 1024 * 1024
        await rejected("content", json.dumps(huge), "is more than 1048576 bytes")

        # a valid version 2 whose photo then comes with other bytes than its SHA-256
        v2 = dict(v1, photo=("image/webp", b"the real photo" * 100))
        await museum.client.publish(f"{ROOT}/content", manifest(2, v2), qos=1, retain=True)
        state = await museum.until("v2 waiting", lambda s: s.get("missing") == ["photo"])
        assert state["state"] == "waiting" and state["version"] == 2
        await rejected("objects/photo", b"a forged photo" * 100, "SHA-256")
        await rejected("objects/photo", b"x" * 2_000_000, "more than 1048576")

        assert luminaire.on_air is on_air_before
        assert len(luminaire.commands) == commands_before  # nothing was sent to it

        # the right bytes: version 2 goes on air
        await museum.publish_object("photo", v2["photo"][1])
        await museum.until("version 2 on air", on_air(2))
        assert luminaire.decoded() == {k: data for k, (_, data) in v2.items()}
        assert "rejected" in gw.log() and "SHA-256" in gw.log()
    finally:
        luminaire.unplug()


def test_missing_frames_are_read_from_the_luminaires_error():
    assert missing_frames("missing frames 3, 7-9", 100) == [3, 7, 8, 9]
    assert missing_frames("missing frames [2, 5]", 4) == [2]
    assert missing_frames("missing frames", 10) is None
    assert missing_frames("flash full", 10) is None


@pytest.mark.parametrize(
    "toml, error",
    [
        ('[museum]\nline_code = "ook"', "museum.line_code: must be manchester or 4b6b, got 'ook'"),
        ("[museum]\nlevel_pct = 95", "museum.level_pct: must be from 10 to 90, got 95"),
        ("[museum]\nchip_rate_hz = 1.5", "museum.chip_rate_hz: expected an integer, got 1.5"),
        (
            '[[devices]]\nid = "ps-1"\nkind = "parking-sensor"\nexhibit = "x"',
            "devices[0].exhibit: only a luminaire broadcasts an exhibit, not a parking-sensor",
        ),
        (
            '[[devices]]\nid = "lum-1"\nkind = "luminaire"\nexhibit = "La Joconde"',
            "devices[0].exhibit: an exhibit id must match",
        ),
    ],
)
def test_museum_settings_are_checked(tmp_path, toml, error):
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nid = "gw-1"\n{toml}\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {error}")):
        config.load(path)
    path.write_text(
        '[gateway]\nid = "gw-1"\n[[devices]]\nid = "l"\nkind = "luminaire"\nexhibit = "e"'
    )
    loaded = config.load(path)
    assert loaded.devices[0].exhibit == "e" and loaded.museum == config.MuseumConfig()
