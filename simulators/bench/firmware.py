"""`luciole bench firmware`: what each firmware app costs its board, and whether sim boards keep
time.

Part 1, heap: one sim board per app (every module of firmware/apps with a `main`) runs its steady
loop for 10 simulated minutes at 30x in a world with the boards' heap (simulators/world.py
FIRMWARE_HEAP); a luminaire's steady loop sends light, so it first gets a carousel over its
console, as the gateway gives it, and a parking sensor's advertises, so it is keyed and
calibrated (PROVISIONED). Then the board answers `info`: peak live heap (sampled by the
runtime after a gc.collect every 2 simulated seconds) and boots (1: no crash, no watchdog reset).
A twin board runs the same app under the goal's `-X heapsize=64k` in a second world, to say
whether the app fits there yet, and if not why (from its log).

Part 2, time: 20 sim boards (the apps in turn) at speed 1. The runtime feeds its watchdog every
2,000 simulated ms by the board's own timers; a board that cannot keep up feeds late. The ratio of
the simulated time the boards' feeds advanced to the simulated time the world advanced between
them is 1.0 when they keep up. CPU% of the board processes is read from /proc.

`--scale` shortens part 1's simulated minutes and part 2's window (never the 20 boards).
"""

import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import serial

from luciole.protocols import cbor, lifi_phy, link

from ..firmware_build import APPS, apps
from ..world import EARTH_FIELD_UT, FIRMWARE_HEAP, BoardSpec, World
from . import print_table

GOAL_HEAP = "64k"
GOAL_PEAK_KB = 48
STEADY_S = 600  # simulated seconds of steady loop per app
HEAP_SPEED = 30
CONTENT_FRAMES = 8  # a luminaire's carousel in part 1
CONTENT_CHIP_RATE_HZ = 1_000_000
# a parking sensor as a technician leaves it: keyed and calibrated, so that its steady loop
# advertises (encrypted BTHome, a heartbeat every 10 minutes) as well as sampling
PROVISIONED = {
    "parking_sensor": {
        "bthome_key": "00112233445566778899aabbccddeeff",
        "parking_baseline_ut": list(EARTH_FIELD_UT),
    }
}
LOAD_BOARDS = 20
LOAD_WALL_S = 30
MIN_LOAD_WALL_S = 6  # three feeds: fewer would time nothing
FEED_PERIOD_MS = 2000  # firmware/runtime.py: WATCHDOG_MS // 4
BOOT_TIMEOUT_S = 90  # 20 boards booting at once on 2 shared cores
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def progress(text):
    print(f"[bench firmware] {text}", file=sys.stderr, flush=True)


class ConsoleClient:
    """A technician's tool on a board's serial console: commands and app frames, over the link."""

    def __init__(self, port: serial.Serial):
        self.port = port
        self.link = link.Link(retry_ms=300, max_retries=10)
        self.next_id = 1
        # HELLO first: it clears what the board remembers of an earlier session's seqs
        self._write(self.link.send(link.HELLO, cbor.dumps({"id": "bench"}), _now_ms(), False))

    def _write(self, data):
        self.port.write(data)

    def _turn(self) -> list:
        events = self.link.receive(self.port.read(4096), _now_ms()) + self.link.poll(_now_ms())
        self._write(self.link.pending_output())  # our ACKs and retransmissions
        return events

    def send(self, frame_type: int, body: bytes, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while not self.link.can_send():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.port.name}: the link's window stayed full")
            self._turn()
        self._write(self.link.send(frame_type, body, _now_ms()))

    def ask(self, command: str, args=None, timeout_s=10.0):
        """The command's result; RuntimeError when the board refuses it."""
        request_id = self.next_id
        self.next_id += 1
        request = {"id": request_id, "cmd": command}
        if args is not None:
            request["args"] = args
        self.send(link.COMMAND, cbor.dumps(request), timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self._turn():
                if isinstance(event, link.Frame) and event.type == link.RESPONSE:
                    reply = cbor.loads(event.body)
                    if reply.get("id") == request_id:
                        if not reply.get("ok"):
                            raise RuntimeError(f"{self.port.name}: {command} failed: {reply}")
                        return reply["result"]
        raise TimeoutError(f"{self.port.name}: no answer to {command} in {timeout_s:g} s")


def info(tty_path: Path, timeout_s=10.0) -> dict:
    """The board's answer to `info`, as a technician's tool asks it over the serial console."""
    with serial.Serial(str(tty_path), timeout=0.1) as port:
        return ConsoleClient(port).ask("info", timeout_s=timeout_s)


def put_on_air(tty_path: Path, timeout_s=30.0):
    """Gives a luminaire a carousel to send, as the gateway does: its steady loop is sending
    light, with a frame's chips in its heap (CONTENT_FRAMES frames of 1,000 bytes, Manchester,
    not dimmed)."""
    with serial.Serial(str(tty_path), timeout=0.1) as port:
        console = ConsoleClient(port)
        begin = {"version": 1, "frames": CONTENT_FRAMES, "chip_rate_hz": CONTENT_CHIP_RATE_HZ,
                 "line_code": "manchester"}  # fmt: skip
        console.ask("lifi-begin", begin, timeout_s)
        for index in range(CONTENT_FRAMES):
            payload = bytes((index + i) & 0xFF for i in range(lifi_phy.MAX_PAYLOAD))
            console.send(link.LIFI, cbor.dumps([1, index, payload]), timeout_s)
        console.ask("lifi-commit", {"version": 1}, timeout_s)


def _now_ms():
    return int(time.monotonic() * 1000)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def failure(board) -> str | None:
    """Why a board restarted, from its log: the first error line, placed before or after boot."""
    log = board.log_path.read_text(errors="replace") if board.log_path.exists() else ""
    lines = log.splitlines()
    errors = [n for n, line in enumerate(lines) if "Error" in line or " error " in line]
    if not errors:
        return None
    line = lines[errors[0]]
    # runtime log lines read "<ms> error crash: MemoryError: ..."; a traceback's last line
    # reads "MemoryError: ..."
    found = re.search(r"(\w+Error): ?(.*)", line)
    kind, detail = found.groups() if found else ("error", line.strip())
    booted = any(" up on " in earlier for earlier in lines[: errors[0]])
    return f"{kind} {'in the steady loop' if booted else 'at boot'} ({detail})"


class FeedClock:
    """Times the boards by their watchdog feeds, watching them every 20 ms."""

    def __init__(self, boards):
        self.boards = list(boards)
        self.first = {b.id: (b.feeds, b.fed_ms) for b in self.boards}
        self.last = dict(self.first)
        self.max_gap_ms = 0.0

    async def watch(self):
        while True:
            for board in self.boards:
                feeds, fed_ms = self.last[board.id]
                if board.feeds > feeds:
                    gap_ms = (board.fed_ms - fed_ms) / (board.feeds - feeds)
                    self.max_gap_ms = max(self.max_gap_ms, gap_ms)
                    self.last[board.id] = (board.feeds, board.fed_ms)
            await asyncio.sleep(0.02)

    def ratios(self) -> dict[str, float]:
        """Per board: simulated ms its feeds advanced / simulated ms the world advanced."""
        found = {}
        for board in self.boards:
            (feeds0, fed0_ms), (feeds1, fed1_ms) = self.first[board.id], self.last[board.id]
            if feeds1 > feeds0 and fed1_ms > fed0_ms:
                found[board.id] = ((feeds1 - feeds0) * FEED_PERIOD_MS, fed1_ms - fed0_ms)
        return found


async def _fed(boards, timeout_s, feeds=2):
    """Waits until every board has fed its watchdog `feeds` times: it is up, and its loop turns
    past the boot burst (while 20 boards boot, the world itself hears their first feeds late)."""
    deadline = time.monotonic() + timeout_s
    while any(b.feeds < feeds for b in boards):
        if time.monotonic() > deadline:
            slow = [b.id for b in boards if b.feeds < feeds]
            raise RuntimeError(f"boards never fed their watchdog in {timeout_s} s: {slow}")
        await asyncio.sleep(0.05)


async def _heap_part(workdir: Path, names, steady_s):
    """Part 1: {app: figures} after steady_s simulated seconds, at the boards' heap and at 64k."""
    async with (
        World(workdir, speed=HEAP_SPEED) as world,
        World(workdir, speed=HEAP_SPEED, heap=GOAL_HEAP) as goal_world,
    ):
        boards, twins = {}, {}
        for app in names:
            config = PROVISIONED.get(app, {})
            boards[app] = world.add(BoardSpec(f"heap-{app}", app, config=config))
            firmware = world.firmware_for(app)
            twins[app] = goal_world.add(BoardSpec(f"goal-{app}", app, config=config), firmware)
        failed = {}
        if "luminaire" in names:  # a luminaire's steady loop sends light
            await _fed([boards["luminaire"], twins["luminaire"]], BOOT_TIMEOUT_S, feeds=1)
            await asyncio.to_thread(put_on_air, boards["luminaire"].tty_path)
            try:
                await asyncio.to_thread(put_on_air, twins["luminaire"].tty_path)
            except (RuntimeError, TimeoutError, serial.SerialException) as e:
                failed["luminaire"] = failure(twins["luminaire"]) or f"content refused ({e})"
        progress(f"{len(names)} app(s) for {steady_s:g} simulated s at {HEAP_SPEED}x, "
                 f"heap {FIRMWARE_HEAP} and {GOAL_HEAP}")  # fmt: skip
        end_s = world.now_s() + steady_s
        while world.now_s() < end_s:
            # a twin that restarted has said what it had to: stop its crash loop
            for app, twin in twins.items():
                if app not in failed and twin.starts > 1:
                    failed[app] = failure(twin) or "restarted, no error logged"
                    twin.unplug()
            await asyncio.sleep(0.1)
        results = {}
        for app in names:
            board, twin = boards[app], twins[app]
            figures = await _ask_info(board)
            goal = None if app in failed else await _ask_info(twin)
            if goal is None and app not in failed:
                failed[app] = failure(twin) or "no answer to info"
            boots = board.starts if figures is None else figures["boots"]
            why = None
            if figures is None:
                why = failure(board) or "no answer to info"
            elif boots != 1:
                why = failure(board) or "restarted, no error logged"
            results[app] = {
                "peak_kb": _peak_kb(figures),
                "used_kb": None if figures is None else figures["heap_used"] / 1024,
                "boots": boots,
                "failure": why,
                "goal_peak_kb": _peak_kb(goal),
                "goal_failure": failed.get(app),
            }
        return results, world.crashes


async def _ask_info(board):
    try:
        return await asyncio.to_thread(info, board.tty_path)
    except TimeoutError:  # down or rebooting: its log says why
        return None


def _peak_kb(figures):
    # the runtime samples at each feed; `info` takes one more sample, its console's work included
    if figures is None:
        return None
    return max(figures["heap_peak"], figures["heap_used"]) / 1024


def _round(kb):
    return None if kb is None else round(kb, 1)


async def _load_part(workdir: Path, names, window_s):
    """Part 2: LOAD_BOARDS boards at speed 1; their keeping-up figures over window_s."""
    async with World(workdir) as world:
        boards = [
            world.add(BoardSpec(f"load-{n:02d}", names[n % len(names)])) for n in range(LOAD_BOARDS)
        ]
        progress(f"{LOAD_BOARDS} boards at speed 1: booting")
        await _fed(boards, BOOT_TIMEOUT_S)
        progress(f"all fed their watchdog; timing them for {window_s:g} s")
        clock = FeedClock(boards)
        pids = {b.id: b.process.pid for b in boards}
        cpu0 = {b.id: cpu_s(pids[b.id]) for b in boards}
        world_cpu0, wall0 = time.process_time(), time.monotonic()
        watcher = asyncio.ensure_future(clock.watch())
        await asyncio.sleep(window_s)
        watcher.cancel()
        wall_s = time.monotonic() - wall0
        world_cpu_s = time.process_time() - world_cpu0
        # a board restarted in the window has a new process: its old one's CPU is lost with it
        restarted = [b.id for b in boards if b.process is None or b.process.pid != pids[b.id]]
        board_cpu_s = sum(cpu_s(pids[b.id]) - cpu0[b.id] for b in boards if b.id not in restarted)
        timed = clock.ratios()
        advanced_ms = sum(board_ms for board_ms, _ in timed.values())
        world_ms = sum(world_ms for _, world_ms in timed.values())
        return {
            "ratio": advanced_ms / world_ms if world_ms else 0.0,
            "worst": min((b / w for b, w in timed.values()), default=0.0),
            "timed": len(timed),
            "max_gap_ms": clock.max_gap_ms,
            "board_cpu_pct": 100 * board_cpu_s / wall_s,
            "world_cpu_pct": 100 * world_cpu_s / wall_s,
            "wall_s": wall_s,
            "restarted": restarted,
            "crashes": world.crashes,
            "watchdog_resets": sum(b.watchdog_resets for b in boards),
        }


def run(scale: float = 1.0):
    if scale <= 0:
        raise ValueError("scale must be positive")
    names = apps()
    if not names:
        raise RuntimeError(f"no app with a main in {APPS}")
    steady_s = STEADY_S * scale
    window_s = max(MIN_LOAD_WALL_S, LOAD_WALL_S * scale)
    with tempfile.TemporaryDirectory(prefix="luciole-bench-firmware-") as tmp:
        workdir = Path(tmp)
        progress(f"workdir {workdir}; scale {scale:g}; building {', '.join(names)}")
        heap, crashes = asyncio.run(_heap_part(workdir, names, steady_s))
        load = asyncio.run(_load_part(workdir, names, window_s))

    rows = []
    for app, h in heap.items():
        if h["goal_failure"]:
            at_goal = f"no: {h['goal_failure']}"
        else:
            at_goal = f"yes, peak {_round(h['goal_peak_kb'])} KB"
        peak = h["peak_kb"]
        met = None if peak is None else "yes" if peak <= GOAL_PEAK_KB else "no"
        rows.append([app, _round(peak), _round(h["used_kb"]), h["boots"], f"<= {GOAL_PEAK_KB}",
                     met, at_goal])  # fmt: skip
    print(f"Part 1: each app's steady loop, {steady_s:g} simulated s at {HEAP_SPEED}x, "
          f"-X heapsize={FIRMWARE_HEAP}")  # fmt: skip
    print_table(
        ["app", "peak heap KB", "at info KB", "boots", "goal KB", "met", f"runs in {GOAL_HEAP}"],
        rows,
    )
    for app, h in heap.items():
        if h["failure"]:
            print(f"{app} at {FIRMWARE_HEAP}: {h['failure']}")
    print()
    print(
        f"Part 2: {LOAD_BOARDS} sim boards ({', '.join(names)}) at speed 1, {load['wall_s']:.1f} s"
    )
    print_table(
        ["figure", "value", "goal"],
        [
            ["sim/real time ratio (boards' feeds)", f"{load['ratio']:.4f}", "1.0"],
            ["worst board's ratio", f"{load['worst']:.4f}", "1.0"],
            ["longest feed interval, sim ms", f"{load['max_gap_ms']:.0f}", f"{FEED_PERIOD_MS}"],
            ["board processes CPU %", f"{load['board_cpu_pct']:.1f}", None],
            ["world (this process) CPU %", f"{load['world_cpu_pct']:.1f}", None],
            ["crashes, watchdog resets", f"{load['crashes']}, {load['watchdog_resets']}", "0, 0"],
        ],
    )
    print()
    if scale != 1:
        print(f"SCALED RUN (--scale {scale:g}): shorter runs than the bench's; do not compare.")
    print(
        f"heap: live bytes after a gc.collect (garbage between collections is not counted), "
        f"sampled by the runtime every {FEED_PERIOD_MS} simulated ms and once more by `info`, "
        f"read over the console; peak = the largest sample; this 64-bit unix port's objects and "
        f"GC blocks are twice a 32-bit board's; boots 1 = no crash or reset in the run"
    )
    print(
        f"time: a board feeds its watchdog every {FEED_PERIOD_MS} simulated ms by its own "
        f"timers; ratio = simulated ms those feeds stand for / simulated ms the world saw between "
        f"them ({load['timed']} boards timed); CPU % of one core; {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.2f} (other work on the machine slows the boards)"
    )
    if crashes:
        print(f"part 1 world counted {crashes} crash(es) of its boards")
    return {
        "scale": scale,
        "heap": FIRMWARE_HEAP,
        "peak_heap_kb": {app: _round(h["peak_kb"]) for app, h in heap.items()},
        "boots": {app: h["boots"] for app, h in heap.items()},
        "runs_in_64k": {app: h["goal_failure"] is None for app, h in heap.items()},
        "peak_heap_kb_64k": {app: _round(h["goal_peak_kb"]) for app, h in heap.items()},
        "boards": LOAD_BOARDS,
        "sim_realtime_ratio": round(load["ratio"], 4),
        "sim_realtime_ratio_worst": round(load["worst"], 4),
        "max_feed_interval_ms": round(load["max_gap_ms"]),
        "board_cpu_pct": round(load["board_cpu_pct"], 1),
        "world_cpu_pct": round(load["world_cpu_pct"], 1),
    }
