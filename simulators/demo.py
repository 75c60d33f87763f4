"""`luciole demo`: a small city on this machine, with no device on the desk.

A street of parking bays, each watched by a sim board running the real parking sensor firmware
under MicroPython, and in the museum a beacon and a Li-Fi luminaire, sim boards too. The sensors'
and the beacon's adverts cross the simulated BLE air (a BlueZ stand-in on a private D-Bus) to the
real gateway (`luciole gateway`, its own process), which publishes to a real Mosquitto on a free
local port; the luminaire is on the gateway's serial side. The museum's CMS publishes an
exhibit's content on the broker, the gateway loads it into the luminaire, and a visitor under
the light receives it. The street's traffic runs --speed times faster than the wall clock, and so
do the boards. The demo prints what a city integrator subscribed to the broker sees as cars come
and go, then compares the city's view of the bays with the street's ground truth.
"""

import asyncio
import contextlib
import hashlib
import json
import random
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiomqtt

from luciole.edge.cli import UsageError

from .bluez import FakeBlueZ
from .gateway_process import LUCIOLE, GatewayProcess, write_config
from .mosquitto import Mosquitto, free_port
from .museum import Museum
from .parking_world import ParkingWorld
from .street import Street
from .world import BoardSpec, World

PREFIX = "luciole/v1/issy/"
STREET_SEED = 7  # a street with ten changes in its first half hour at 11:00
START_S = 11 * 3600.0  # the street's time of day at the start
BEACON = BoardSpec(
    "bcn-hall",
    "beacon",
    position_m=(3.0, 4.0),
    mac="C0:FF:EE:00:00:01",
    config={"major": 3, "minor": 1},
)
LUMINAIRE = BoardSpec("lum-joconde", "luminaire", position_m=(6.0, 4.0))
EXHIBIT = "la-joconde"
# slow light: a visitor's receiver costs CPU in proportion to the chips it hears per wall second
MUSEUM_TABLES = f"""[museum]
chip_rate_hz = 50000
line_code = "manchester"
[[devices]]
id = "{LUMINAIRE.id}"
kind = "luminaire"
exhibit = "{EXHIBIT}"
"""
STARTUP_TIMEOUT_S = 60


def demo_command(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="run a small simulated city: sensors, beacon, BLE air, gateway and broker",
        description=__doc__,
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    parser.add_argument("--bays", type=int, default=10, help="parking bays (default 10)")
    parser.add_argument(
        "--speed", type=float, default=30.0, help="street time per wall second (default 30)"
    )
    parser.set_defaults(handler=_run)


def _run(args):
    if args.seconds <= 0 or args.speed <= 0:
        raise UsageError("--seconds and --speed must be > 0")
    if not 1 <= args.bays <= 30:
        raise UsageError(f"--bays must be 1 to 30, got {args.bays}")
    return asyncio.run(run(args.seconds, args.bays, args.speed))


async def run(seconds: float, bays: int, speed: float) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="luciole-demo-"))
    with (
        Mosquitto(workdir / "broker") as broker,
        FakeBlueZ(log_path=workdir / "bluez.log") as air,
    ):
        world = World(workdir / "world", speed=speed, air=air)
        for app in ("parking_sensor", "beacon", "luminaire"):
            world.firmware_for(app)  # compiled before the clock starts
        world.host_sim_hal()
        async with world:
            parking = ParkingWorld(world, Street(bays, seed=STREET_SEED), start_s=START_S)
            museum = Museum(world, seed=STREET_SEED)
            luminaire = world.add(LUMINAIRE)
            gateway, metrics_port = _gateway(workdir, broker, parking, luminaire)
            try:
                print(f"broker      mosquitto on {broker.host}:{broker.port}")
                print(f"BLE air     BlueZ stand-in, DBUS_SYSTEM_BUS_ADDRESS={air.bus.address}")
                print(
                    f"gateway     gw-demo, config {gateway.config_path}, "
                    f"metrics http://127.0.0.1:{metrics_port}/metrics"
                )
                if not await _scanning(air, gateway):
                    print(f"the gateway did not start scanning; its log: {gateway.log_path}")
                    return 1
                parking.add_boards(calibrated=True)  # installed and calibrated earlier
                world.add(BEACON)
                print(
                    f"street      {bays} bays of {parking.site_id}, a parking sensor in each "
                    "(MicroPython firmware, encrypted BTHome over BLE)"
                )
                print(
                    f"beacon      {BEACON.id} (MicroPython firmware, iBeacon and Eddystone "
                    "over BLE)"
                )
                print(
                    f"luminaire   {LUMINAIRE.id} (MicroPython firmware, Li-Fi light; serial "
                    f"console on {luminaire.tty_path}), exhibit {EXHIBIT}, one visitor under it"
                )
                await _publish_exhibit(broker)
                visitor = museum.visitor(LUMINAIRE.id, join_s=world.now_s() + 60.0)
                minutes = seconds * speed / 60
                print(
                    f"\nwhat the city sees on {PREFIX}# for {seconds:g} s, {minutes:.0f} min "
                    f"of the street at {speed:g}x (what changes nothing is not shown):\n"
                )
                view = await _watch(broker, parking, visitor, seconds)
            finally:
                gateway.stop()
        _summary(view, parking, workdir)
    return 0


def _gateway(workdir, broker, parking, luminaire):
    metrics_port = free_port()
    config = write_config(
        workdir / "gateway.toml",
        broker,
        [luminaire.tty_path],
        id="gw-demo",
        http_listen=f"127.0.0.1:{metrics_port}",
    )
    beacon = f'[[devices]]\nid = "{BEACON.id}"\nkind = "beacon"\nmac = "{BEACON.mac}"\n'
    config.write_text(config.read_text() + parking.gateway_tables() + beacon + MUSEUM_TABLES)
    bays = parking.inventory_csv(workdir / "bays.csv")
    done = subprocess.run(
        [LUCIOLE, "parking", "import", str(bays), "--config", str(config)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"luciole parking import failed: {done.stderr.strip()}")
    return GatewayProcess(config, workdir / "gateway.log").start(), metrics_port


async def _publish_exhibit(broker):
    """The museum's CMS: an exhibit's manifest and objects, retained."""
    objects = {
        "summary": ("text/markdown", b"# La Joconde\n\nLeonardo da Vinci, 1503-1519.\n"),
        "photo": ("image/webp", random.Random(1).randbytes(6_000)),
    }
    manifest = {"version": 1, "title": "La Joconde", "objects": [
        {"id": key, "type": kind, "size": len(data), "priority": int(key != "summary"),
         "sha256": hashlib.sha256(data).hexdigest()}
        for key, (kind, data) in objects.items()
    ]}  # fmt: skip
    root = f"{PREFIX}museum/exhibits/{EXHIBIT}"
    async with aiomqtt.Client(broker.host, broker.port) as cms:
        await cms.publish(f"{root}/content", json.dumps(manifest), qos=1, retain=True)
        for key, (_, data) in objects.items():
            await cms.publish(f"{root}/objects/{key}", data, qos=1, retain=True)


async def _scanning(air, gateway) -> bool:
    """Whether the gateway scans the BLE air within STARTUP_TIMEOUT_S (False if it stopped)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while gateway.process.poll() is None and time.monotonic() < deadline:
        if air.scanning():
            return True
        await asyncio.sleep(0.1)
    return False


class CityView:
    """What the city integrator has seen: the last state of each bay, and message counts."""

    def __init__(self):
        self.bays = {}  # bay -> status
        self.sites = {}  # site -> (available, occupied, total)
        self.online = {}  # device -> True/False
        self.beacons = set()  # beacons whose health was shown
        self.exhibits = {}  # exhibit -> (state, version, luminaire states)
        self.counts = Counter()  # topic kind ("devices/+/telemetry") -> messages

    def take(self, topic: str, payload: bytes) -> str | None:
        """Records a message; returns the line to show, or None when nothing changed."""
        parts = topic.split("/")
        kind = f"devices/+/{parts[2]}" if parts[0] == "devices" else "/".join(parts[:2])
        self.counts[kind] += 1
        if not payload:
            return None
        if topic.startswith("parking/spots/"):
            status = json.loads(payload)["status"]
            if self.bays.get(parts[2]) != status:
                self.bays[parts[2]] = status
                return status
        elif topic.startswith("parking/sites/"):
            site = json.loads(payload)
            keys = ("availableSpotNumber", "occupiedSpotNumber", "totalSpotNumber")
            counts = tuple(site.get(k) for k in keys)
            if self.sites.get(parts[2]) != counts:
                self.sites[parts[2]] = counts
                return "{} free, {} occupied of {}".format(*counts)
        elif topic.startswith("devices/") and parts[2] == "status":
            online = json.loads(payload).get("online")
            if self.online.get(parts[1]) != online:
                self.online[parts[1]] = online
                return "online" if online else "offline"
        elif topic.startswith("museum/exhibits/") and topic.endswith("/broadcast"):
            summary = json.loads(payload)
            lamps = tuple(f"{lum['id']} {lum['state']}" for lum in summary.get("luminaires", ()))
            state = (summary.get("state"), summary.get("version"), lamps)
            if self.exhibits.get(parts[2]) != state:
                self.exhibits[parts[2]] = state
                return f"{state[0]}, version {state[1]} ({', '.join(lamps)})"
        elif topic.startswith("museum/beacons/") and parts[2] not in self.beacons:
            self.beacons.add(parts[2])
            health = json.loads(payload)
            return ", ".join(f"{key} {health.get(key)}" for key in ("major", "minor", "rssi"))
        return None


async def _watch(broker, parking, visitor, seconds) -> CityView:
    view = CityView()

    def show(what, line):
        clock = time.strftime("%H:%M:%S", time.gmtime(parking.now_s()))
        print(f"  {clock}  {what:38} {line}", flush=True)

    async def visitor_done():
        while not visitor.complete_s:
            await asyncio.sleep(0.25)
        version, done_s = next(iter(visitor.complete_s.items()))
        objects = visitor.objects[version]
        show(f"{visitor.name} under {visitor.board}", f"received version {version} by light: "
             f"{', '.join(objects)} ({sum(map(len, objects.values()))} bytes), "
             f"{done_s - visitor.join_s:.1f} s after walking in")  # fmt: skip

    watcher = asyncio.create_task(visitor_done())
    async with aiomqtt.Client(broker.host, broker.port) as city:
        await city.subscribe(PREFIX + "#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async for message in city.messages:
                    topic = str(message.topic).removeprefix(PREFIX)
                    line = view.take(topic, message.payload)
                    if line is not None:
                        show(topic, line)
    watcher.cancel()
    return view


def _summary(view, parking, workdir):
    truth = parking.truth()
    seen = {bay: view.bays.get(bay) for bay in truth}
    matching = sum(seen[bay] == truth[bay] for bay in truth)
    changes = [t for _, t, _ in parking.street.truth if START_S < t <= parking.now_s()]
    print(
        f"\non the street: {len(changes)} arrivals and departures; the city got "
        f"{sum(view.counts.values())} messages ("
        + ", ".join(f"{n} on {kind}" for kind, n in view.counts.most_common())
        + ")"
    )
    print(f"the city's view matches the street for {matching} of {len(truth)} bays")
    for bay in truth:
        if seen[bay] != truth[bay]:
            print(
                f"  {bay}: the street says {truth[bay]}, the city {seen[bay]} (a change of the "
                "last seconds may still be on its way)"
            )
    print(f"logs: gateway {workdir / 'gateway.log'}, boards {workdir / 'world'}/*.log")
