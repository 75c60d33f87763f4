# The HAL of the host_sim board: MicroPython's unix port inside the Luciole simulator.
#
# The link UART is the process's stdin/stdout, which the simulator wires to a pseudo-terminal
# (the gateway opens the other side as it opens /dev/ttyUSB0). Sensors, radio, light and the
# watchdog are messages on a TCP connection to the simulator's world (docs/simulator.md):
#   op (1 byte) | length (4 bytes, little-endian) | payload
# The simulator describes this board instance in the environment variable LUCIOLE_SIM (JSON):
#   {"id", "world": "127.0.0.1:PORT", "storage": folder, "mac", "battery_mv", "flash_kb"}
# and time runs `speed` times faster than the wall clock, as the world says when the board joins.
import asyncio
import json
import os
import socket
import struct
import sys
import time
from asyncio import core

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


# const and underscored: inlined where used, no global left to take heap
_HELLO = const(1)  # board -> world: {"id"}; world -> board: {"sim_ms", "speed"}
_FEED = const(2)  # watchdog feed
_ADVERTISE = const(3)  # <I interval_ms> + advertising data
_ADVERTISE_STOP = const(4)
_LIGHT = const(5)  # <I chip_rate_hz> + chips: a frame, or the last slice of one
_MAGNETOMETER = const(6)  # board: a read request; world: <fff> microtesla
_LED = const(7)  # one byte, 0 or 1
_WATCHDOG = const(8)  # <I timeout_ms>
_LIGHT_MORE = const(9)  # as LIGHT, a slice of a frame that the next LIGHT or LIGHT_MORE goes on
_REBOOT_EXIT = const(75)  # exit status asking the simulator to start the board again
_MAX_CHIP_RATE_HZ = const(4000000)  # host_sim.json's lifi_tx


def _readable(stream):
    # Awaited, returns once the stream has bytes to read (or has closed): the event loop polls it
    # with the others. asyncio's streams wait this way too, but their module would take 1.9 KB
    # of a 64 KB heap, where the board needs nothing else from them: its writes are to a
    # blocking pty and a localhost socket, which take them at once.
    yield core._io_queue.queue_read(stream)


class World:
    # The connection to the simulator's world, which is every peripheral of this board but the
    # UART: one object serves as magnetometer, BLE radio, light, LED, battery and watchdog (one
    # class rather than six: on a 64 KB heap each class costs its weight).
    def __init__(self, hal, connection):
        self._hal = hal  # its clock, and what the simulator says of this board
        self._connection = connection  # a blocking socket: reads wait on the event loop
        self.address = hal._sim["mac"]  # the BLE address
        self.battery_mv = hal._sim["battery_mv"]
        self.slices = True  # transmit joins slices of a frame: the world sees the frame whole
        self._air_rest = 0  # air time not slept yet, in 1/chip_rate_hz ms: slices add up exactly

    def send(self, op, payload=b"", data=b""):
        # the message's payload is payload then data, written one after the other: not joined,
        # which would copy them (a frame's chips, say)
        connection = self._connection
        connection.write(struct.pack("<BI", op, len(payload) + len(data)))
        connection.write(payload)
        connection.write(data)

    async def request(self, op, payload=b""):
        # The world answers requests in order, and they never overlap: the HELLO at start, then
        # the magnetometer's reads, all from the parking sensor's one loop.
        self.send(op, payload)
        _, length = struct.unpack("<BI", await self._receive(5))
        return await self._receive(length)

    async def _receive(self, size):
        data = b""
        while len(data) < size:
            await _readable(self._connection)
            more = self._connection.read(size - len(data))
            if not more:
                raise OSError("the simulator's world closed the connection")
            data += more
        return data

    # magnetometer
    def power(self, on):
        pass  # the world's magnetometer draws nothing

    async def read(self):
        return struct.unpack("<fff", await self.request(_MAGNETOMETER))

    # BLE radio
    def advertise(self, data, interval_ms):
        self.send(_ADVERTISE, struct.pack("<I", interval_ms), data)

    def stop(self):
        self.send(_ADVERTISE_STOP)

    # Li-Fi light: a frame's chips, whole or in slices (more: the next call goes on with it)
    async def transmit(self, chips, chip_rate_hz, more=False):
        if not 0 < chip_rate_hz <= _MAX_CHIP_RATE_HZ:
            raise ValueError("chip rate must be 1 to %d Hz" % _MAX_CHIP_RATE_HZ)
        self.send(_LIGHT_MORE if more else _LIGHT, struct.pack("<I", chip_rate_hz), chips)
        air_ms, self._air_rest = divmod(len(chips) * 8000 + self._air_rest, chip_rate_hz)
        await self._hal.sleep_ms(air_ms)  # the light's air time

    # status LED
    def on(self):
        self.send(_LED, b"\x01")

    def off(self):
        self.send(_LED, b"\x00")

    # battery
    def read_mv(self):
        return self.battery_mv

    # watchdog (Hal.watchdog starts it): the world resets the board (kills and restarts its
    # process) when feeds stop
    def feed(self):
        self.send(_FEED)


class Hal:
    # The HAL is also the board's clock (hal.clock is the HAL itself) and its link UART (what
    # open("link_uart") returns): on a 64 KB heap each class costs its weight.
    def __init__(self, board):
        self.board = board
        # what the simulator says of this board, kept until start() (the world's part)
        self._sim = sim = json.loads(os.getenv("LUCIOLE_SIM") or "{}")
        self.storage = sim.get("storage", ".") + "/"
        self.id = sim.get("id", "sim-0000")
        self.flash_kb = sim.get("flash_kb")
        self.clock = self
        self.speed = 1.0
        self._sim0_ms = 0
        self._local0_ms = time.ticks_ms()
        self.world = None

    async def start(self):
        address = self._sim.get("world")
        if address:
            host, port = address.rsplit(":", 1)
            connection = socket.socket()
            connection.connect(socket.getaddrinfo(host, int(port))[0][-1])
            self.world = World(self, connection)
            hello = json.dumps({"id": self.id}).encode()
            welcome = json.loads(await self.world.request(_HELLO, hello))
            self.speed = welcome["speed"]
            self._sim0_ms = welcome["sim_ms"]
            self._local0_ms = time.ticks_ms()
        self._sim = None  # what the world needed of it is read

    # clock: simulated milliseconds, `speed` times the local ones since the world's welcome
    def ticks_ms(self):
        elapsed_ms = time.ticks_diff(time.ticks_ms(), self._local0_ms)
        return self._sim0_ms + int(elapsed_ms * self.speed)

    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(int(ms / self.speed))

    def storage_free(self):
        # bytes the board's filesystem can still take: its flash as the simulator gives it
        # ("flash_kb") less what the board's files take, else what the host's disk has
        flash_kb = self.flash_kb
        if flash_kb is None:
            stat = os.statvfs(self.storage)
            return stat[1] * stat[4]
        used = sum(os.stat(self.storage + name)[6] for name in os.listdir(self.storage))
        return max(flash_kb * 1024 - used, 0)

    def open(self, alias):
        if self.board["aliases"][alias]["kind"] == "uart":
            return self
        if self.world is None:
            raise OSError("%s needs the simulator's world (LUCIOLE_SIM names none)" % alias)
        return self.world

    # UART: small reads, so each takes a buffer of 129 bytes (a 1 KB link frame comes in several)
    async def read(self):
        await _readable(sys.stdin.buffer)
        return sys.stdin.buffer.read(128)  # what the pty holds, up to 128 bytes

    def write(self, data):
        sys.stdout.buffer.write(data)

    def watchdog(self, timeout_ms):
        if self.world is None:
            return self  # nobody could reset the board: the console still works (device tests)
        self.world.send(_WATCHDOG, struct.pack("<I", timeout_ms))
        return self.world

    def feed(self):
        pass

    def log(self, level, message):
        sys.stderr.write("%d %s %s\n" % (self.ticks_ms(), level, message))

    def reset(self):
        raise SystemExit(_REBOOT_EXIT)
