"""The simulated world: it owns time, physics and radio, and hosts the sim boards.

Each sim board is the real firmware under MicroPython's unix port on the `host_sim` board
(`-X heapsize=64k`). Its link UART is a pseudo-terminal whose other side the gateway opens (a
stable symlink per board, as /dev/serial/by-id/... on a Pi); its sensors, radio, light and watchdog
are messages on a TCP connection to this world (boards/hal_unix.py describes them).

Time runs `speed` times faster than the wall clock, for the boards and the world alike. The world's
events (what sensors measure, faults) are drawn from `seed`; boards are real processes, so the
exact moments their reports reach the gateway vary by milliseconds from run to run.

The BLE air: the current advert of each board reaches the BlueZ stand-in (`air`, a FakeBlueZ)
when it changes and then every `repeat_s` of wall time (BlueZ reports property changes, not
every advert), with an RSSI from the board's distance to the gateway.
"""

import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import struct
import subprocess
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from luciole.protocols.ble import adv

from .firmware_build import build
from .micropython import interpreter

HELLO, FEED, ADVERTISE, ADVERTISE_STOP, LIGHT, MAGNETOMETER, LED, WATCHDOG = range(1, 9)
LIGHT_MORE = 9  # a slice of a frame: the LIGHT_MORE and LIGHT that follow go on with it
REBOOT_EXIT = 75  # boards/hal_unix.py: the board asks to be started again
EARTH_FIELD_UT = (20.0, 0.0, -43.0)  # Paris: ~20 uT north, ~43 uT down
# The boards' heap. The goal is 64k (-X heapsize=64k), which the beacon (~47 KB) and the
# luminaire (~53 KB, sending light) meet on this 64-bit port, where every object and GC block is
# twice its size on a 32-bit board; the parking sensor (~62 KB) does not yet (`luciole bench
# firmware` measures each app's peak; docs/firmware.md, Memory). One heap for every app, so it
# stays at 128k until the largest fits.
FIRMWARE_HEAP = "128k"
TX_POWER_1M_DBM = -59
PATH_LOSS_EXPONENT = 2.2


@dataclass
class BoardSpec:
    id: str
    app: str
    position_m: tuple[float, float] = (0.0, 0.0)
    mac: str = ""
    config: dict = field(default_factory=dict)  # written to the board's config store at first boot
    battery_mv: int = 3000
    flash_kb: int | None = None  # the board's filesystem size (default: the host disk's room)


class SimBoard:
    """One board: its process, its pty, its state in the world."""

    def __init__(self, world: "World", spec: BoardSpec, firmware: Path):
        self.world = world
        self.spec = spec
        self.id = spec.id
        self.firmware = firmware
        self.tty_path = world.workdir / f"{spec.id}.tty"
        self.storage = world.workdir / "storage" / spec.id
        self.log_path = world.workdir / f"{spec.id}.log"
        self.process: subprocess.Popen | None = None
        self.master = self.slave = None
        self.advert: tuple[bytes, int] | None = None  # (advertising data, interval_ms)
        self.advert_sent_s = 0.0
        self.led = False
        self.starts = 0
        self.watchdog_resets = 0
        self.watchdog_ms = None
        self.fed_ms = 0
        self.feeds = 0  # FEEDs received: `luciole bench firmware` times the boards by them
        self.light_slices = bytearray()  # the chips of a frame that comes in slices, so far
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()

    # -- power and cables ---------------------------------------------------------------------

    def plug(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # raw before anyone opens it: no echo, no CRLF mangling
        os.set_blocking(self.master, False)  # the firmware reads what is there, never waits
        tmp = self.tty_path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.tty_path)

    def unplug(self):
        """The USB cable is pulled: the gateway loses the port, the board loses power."""
        self.power_off()
        self.tty_path.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None

    def power_on(self):
        if self.master is None:
            self.plug()
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self.storage / "config.json"
        if self.spec.config and not config.exists():
            config.write_text(json.dumps({"id": self.id, **self.spec.config}))
        instance = {
            "id": self.id,
            "world": f"127.0.0.1:{self.world.port}",
            "storage": str(self.storage),
            "mac": self.spec.mac,
            "battery_mv": self.spec.battery_mv,
            "flash_kb": self.spec.flash_kb,
        }
        # host_sim's HAL comes first on the path, and host_sim's definition (as built for this
        # app) replaces the build's: a build for a real board runs unchanged
        hal = self.world.host_sim_hal()
        env = dict(
            os.environ,
            # relative paths: module paths are strings in the board's heap
            MICROPYPATH=f"{os.path.relpath(hal, self.firmware)}:lib:.frozen",
            LUCIOLE_BOARD_FILE=str(self.world.firmware_for(self.spec.app) / "board.json"),
            LUCIOLE_SIM=json.dumps(instance),
        )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    interpreter(),
                    "-X",
                    f"heapsize={self.world.heap}",
                    str(self.firmware / "main.py"),
                ],
                stdin=self.master,
                stdout=self.master,
                stderr=log,
                env=env,
                cwd=self.firmware,
            )
        self.starts += 1
        self.watchdog_ms = None
        self.connected.clear()

    def power_off(self):
        """Power cut: no goodbye, whatever the board was doing (a config write...)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
        self.advert = None
        self.writer = None

    def reset(self):
        self.power_off()
        self.power_on()

    def inject(self, data: bytes):
        """Noise on the serial line, towards the gateway."""
        if self.master is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self.master, data)


class World:
    def __init__(
        self,
        workdir: Path,
        speed=1.0,
        seed=0,
        air=None,
        gateway_position_m=(0.0, 0.0),
        heap=FIRMWARE_HEAP,
        repeat_s=1.0,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.speed = speed
        self.random = random.Random(seed)
        self.air = air
        self.gateway_position_m = gateway_position_m
        self.heap = heap
        self.repeat_s = repeat_s
        self.boards: dict[str, SimBoard] = {}
        self.port = 0
        self._server = None
        self._tasks: set[asyncio.Task] = set()
        self._start_wall_s = time.monotonic()
        # hooks for the parking street and the optical channel
        self.magnetometer = lambda board, t_s: EARTH_FIELD_UT
        self.light = lambda board, chips, chip_rate_hz: None
        self.crashes = 0

    # -- time ---------------------------------------------------------------------------------

    def now_s(self) -> float:
        return (time.monotonic() - self._start_wall_s) * self.speed

    async def sleep(self, sim_s: float):
        await asyncio.sleep(sim_s / self.speed)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self):
        self._start_wall_s = time.monotonic()  # simulated time 0 (builds happen before)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._spawn(self._supervise())
        self._spawn(self._repeat_adverts())
        return self

    async def close(self):
        for board in self.boards.values():
            board.unplug()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.close()

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def firmware_for(self, app: str) -> Path:
        folder = self.workdir / "firmware" / app
        if not (folder / "main.py").exists():
            build("host_sim", app, folder)
        return folder

    def host_sim_hal(self) -> Path:
        """A folder with host_sim's HAL package only (from any host_sim build)."""
        folder = self.workdir / "firmware" / "host_sim_hal"
        if not (folder / "boards").exists():
            built = self.firmware_for("beacon")
            shutil.copytree(built / "lib" / "boards", folder / "boards")
        return folder

    def add(self, spec: BoardSpec, firmware: Path | None = None) -> SimBoard:
        """Starts a board running `firmware` (a `luciole firmware build` folder, for any board),
        by default a host_sim build of its app."""
        if not spec.mac:
            spec.mac = "02:00:00:" + ":".join(f"{self.random.randrange(256):02X}" for _ in "abc")
        board = SimBoard(self, spec, firmware or self.firmware_for(spec.app))
        self.boards[spec.id] = board
        board.power_on()
        return board

    async def _supervise(self):
        """Restarts boards that asked to (reboot), crashed, or stopped feeding their watchdog."""
        while True:
            now_ms = self.now_s() * 1000
            for board in self.boards.values():
                process = board.process
                if process is None:
                    continue
                status = process.poll()
                if status is not None:
                    if status != REBOOT_EXIT:
                        self.crashes += 1
                    board.power_on()
                elif board.watchdog_ms is not None and now_ms - board.fed_ms > board.watchdog_ms:
                    board.watchdog_resets += 1
                    board.reset()
            await asyncio.sleep(0.05)

    async def run_faults(self, faults):
        """Plays a scenario's faults (simulators/scenario.py) at their simulated times."""
        for fault in faults:
            await self.sleep(fault.at_s - self.now_s())
            board = self.boards[fault.board]
            if fault.kind in ("reboot", "power-cut"):
                board.power_off()
                await self.sleep(fault.duration_s)
                board.power_on()
            elif fault.kind == "unplug":
                board.unplug()
                self._spawn(self._later(fault.duration_s, board.power_on))
            elif fault.kind == "noise":
                self._spawn(self._noise(board, fault.duration_s))

    async def _later(self, sim_s, action):
        await self.sleep(sim_s)
        action()

    async def _noise(self, board, duration_s, bytes_per_s=200):
        end_s = self.now_s() + duration_s
        while self.now_s() < end_s:
            board.inject(self.random.randbytes(max(1, bytes_per_s // 20)))
            await asyncio.sleep(0.05)

    # -- the boards' connections --------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        # A hook that fails (the street, the optical channel) is not caught here: asyncio logs
        # it, rather than the board waiting silently for an answer that never comes.
        try:
            board = await self._greet(reader, writer)
            while board is not None:
                op, payload = await _receive(reader)
                self._handle(board, writer, op, payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the board's process ended: reset, power cut, unplugged
        except asyncio.CancelledError:
            pass  # the world is closing; (Python 3.11's start_server would log a cancelled handler)
        finally:
            writer.close()

    async def _greet(self, reader, writer) -> SimBoard | None:
        _, payload = await _receive(reader)
        try:
            board = self.boards[json.loads(payload)["id"]]
        except (KeyError, TypeError, ValueError):
            return None  # not one of this world's boards
        board.writer = writer
        board.light_slices = bytearray()  # a frame cut short by a reset never went on air whole
        welcome = {"sim_ms": int(self.now_s() * 1000), "speed": self.speed}
        _send(writer, HELLO, json.dumps(welcome).encode())
        board.connected.set()
        return board

    def _handle(self, board: SimBoard, writer, op: int, payload: bytes):
        if op == FEED:
            board.fed_ms = self.now_s() * 1000
            board.feeds += 1
        elif op == WATCHDOG:
            board.watchdog_ms = struct.unpack("<I", payload)[0]
            board.fed_ms = self.now_s() * 1000
        elif op == MAGNETOMETER:
            field_ut = self.magnetometer(board, self.now_s())
            _send(writer, MAGNETOMETER, struct.pack("<fff", *field_ut))
        elif op == ADVERTISE:
            interval_ms = struct.unpack_from("<I", payload)[0]
            board.advert = (payload[4:], interval_ms)
            self._on_air(board)
        elif op == ADVERTISE_STOP:
            board.advert = None
        elif op == LIGHT_MORE:  # a slice of a frame: the light hook gets the frame whole
            board.light_slices += memoryview(payload)[4:]
        elif op == LIGHT:
            chip_rate_hz = struct.unpack_from("<I", payload)[0]
            chips = bytes(board.light_slices + memoryview(payload)[4:])
            board.light_slices = bytearray()
            self.light(board, chips, chip_rate_hz)
        elif op == LED:
            board.led = payload == b"\x01"

    # -- the BLE air ----------------------------------------------------------------------------

    def rssi_dbm(self, board: SimBoard) -> int:
        (x, y), (gx, gy) = board.spec.position_m, self.gateway_position_m
        distance_m = max(math.hypot(x - gx, y - gy), 0.1)
        loss_db = 10 * PATH_LOSS_EXPONENT * math.log10(distance_m)
        return round(TX_POWER_1M_DBM - loss_db + self.random.gauss(0, 2))

    def _on_air(self, board: SimBoard):
        if self.air is None or board.advert is None:
            return
        parsed = adv.parse(board.advert[0])
        service_data = {
            f"0000{uuid:04x}-0000-1000-8000-00805f9b34fb": bytes(data)
            for uuid, data in parsed["service_data"].items()
        }
        self.air.advertise(
            board.spec.mac,
            service_data=service_data or None,
            manufacturer_data=dict(parsed["manufacturer_data"]) or None,
            rssi=self.rssi_dbm(board),
            name=parsed["local_name"],
        )
        board.advert_sent_s = time.monotonic()

    async def _repeat_adverts(self):
        while True:
            now = time.monotonic()
            for board in self.boards.values():
                if board.advert is not None and now - board.advert_sent_s >= self.repeat_s:
                    self._on_air(board)
            await asyncio.sleep(0.05)


def _send(writer, op, payload=b""):
    writer.write(struct.pack("<BI", op, len(payload)) + payload)


async def _receive(reader):
    op, length = struct.unpack("<BI", await reader.readexactly(5))
    return op, await reader.readexactly(length)


def stop_signals(loop, stop: asyncio.Event):
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
