"""`luciole bench gateway`: serial devices -> the real gateway -> a real Mosquitto -> a city
subscriber, QoS 1 and durable, against a bare aiomqtt publisher on the same broker in the same run.

Every part is its own process: Mosquitto, the gateway (`luciole gateway --config FILE`, exactly as
deployed), the simulated devices on ptys, the subscriber and the bare publisher (gateway_peers.py).
This process only orchestrates and reads the subscriber's file, so no GIL is shared with what is
measured. Rates are end to end: from the first reading sent to the last one received by the
subscriber, each reading counted once (de-duplicated by device and seq).

Runs, in one gateway's life: the bare publisher and 4 devices at full speed, alternating twice
(the best of each is kept: other load on the machine only ever slows a run down); 1 device at full
speed; 4 devices paced at 1,000 msg/s in all, for latency; the broker stopped while a 100,000
reading backlog is stored, then restarted and drained. `--scale` shrinks the counts for a smoke
run. LUCIOLE_BENCH_PROFILE=FILE runs the gateway under cProfile (its event loop thread) and writes
the statistics to FILE when it stops.
"""

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from luciole.edge.config import BrokerConfig
from luciole.protocols import senml

from ..gateway_process import GatewayProcess, write_config
from ..mosquitto import Mosquitto, free_port
from . import print_table

SITE = "issy"
TELEMETRY = f"luciole/v1/{SITE}/devices/+/telemetry"
CEILING_DEVICE = "bare-"  # then the round: bare-1, bare-2
DEVICES = 4
DEVICE_ID = "bench-{:04d}"

# readings per run at scale 1; --scale multiplies them (and the paced run's duration)
RUN_READINGS = 20_000
BACKLOG_READINGS = 100_000
PACED_RATE = 1_000  # msg/s in total, shared by the 4 devices
PACED_SECONDS = 10.0
ROUNDS = 2  # the bare publisher and the 4-device run alternate; the best of each counts

# DESIGN.md section 7
GOAL_TOTAL = 3_000
GOAL_RATIO = 0.60
GOAL_P99_MS = 20.0
GOAL_RSS_MB = 60.0
GOAL_DRAIN = 5_000
TB_PER_DEVICE, TB_FOUR, TB_P50_MS, TB_RSS_MB = 880, 2_000, 55, 64
TB_CPU_US = 1.2 / TB_FOUR * 1e6  # 120% CPU at ~2,000 msg/s


class BenchBroker(Mosquitto):
    """The simulators' Mosquitto, saving its persistence file every 30 minutes (Mosquitto's own
    default) instead of after every change: that setting, there so a test's kill -9 loses
    nothing, rewrites the whole file on every loop of the broker and caps any publisher at about
    1,100 msg/s once a subscriber is attached. The drain run stops the broker with SIGTERM, which
    saves the sessions anyway."""

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        kept = [line for line in self.config.read_text().splitlines() if "autosave" not in line]
        self.config.write_text("\n".join([*kept, "autosave_interval 1800"]) + "\n")


def progress(text):
    print(f"[bench gateway] {text}", file=sys.stderr, flush=True)


class Child:
    """A helper process spoken to in lines on stdin/stdout."""

    def __init__(self, role, *args, log: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "luciole.simulators.bench.gateway_peers", role, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),  # noqa: SIM115 (the child keeps it)
        )
        self.role = role
        self._buffer = b""

    def send(self, line: str):
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def expect(self, word: str, timeout_s: float) -> list[str]:
        """Waits for a line starting with word; returns the words after it."""
        deadline = time.monotonic() + timeout_s
        fd = self.process.stdout.fileno()
        while True:
            line, sep, rest = self._buffer.partition(b"\n")
            if sep:
                self._buffer = rest
                words = line.decode().split()
                if words and words[0] == word:
                    return words[1:]
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.role}: no {word} within {timeout_s:.0f} s")
            if select.select([fd], [], [], left)[0]:
                data = os.read(fd, 65536)
                if not data:
                    raise RuntimeError(f"{self.role} exited (code {self.process.wait()})")
                self._buffer += data

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class Inbox:
    """What the subscriber received, read from its file as it grows."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None
        self._partial = b""
        self.first: dict[tuple[str, int], float] = {}  # (device, seq) -> first receive time
        self.payloads: dict[tuple[str, int], str] = {}  # kept while keep_payloads, for latency
        self.keep_payloads = False
        self.deliveries = 0
        self.duplicates = 0
        self.bare: dict[str, list[float]] = {}  # bare publisher device -> receive times

    def read(self):
        if self._file is None:
            if not self.path.exists():
                return
            self._file = open(self.path, "rb")  # noqa: SIM115 (closed in close())
        data = self._partial + self._file.read()
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            received, topic, seq, payload = line.decode().split("\t")
            device = topic.split("/")[-2]
            if device.startswith(CEILING_DEVICE):
                self.bare.setdefault(device, []).append(float(received))
                continue
            key = (device, int(seq))
            self.deliveries += 1
            if key in self.first:
                self.duplicates += 1
                continue
            self.first[key] = float(received)
            if self.keep_payloads:
                self.payloads[key] = payload

    def wait_all(self, keys: list, timeout_s: float, what: str) -> float:
        """Waits until every key arrived or timeout_s passed; returns the last first arrival
        among them. What never arrives is counted as lost at the end."""
        deadline = time.monotonic() + timeout_s
        missing = list(keys)
        while True:
            self.read()
            missing = [k for k in missing if k not in self.first]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if missing:
            progress(f"  {what}: {len(missing):,} of {len(keys):,} never arrived")
        arrived = [self.first[k] for k in keys if k in self.first]
        if not arrived:
            raise RuntimeError(f"{what}: nothing arrived within {timeout_s:.0f} s")
        return max(arrived)

    def wait_bare(self, device: str, count: int, timeout_s: float) -> float:
        """Waits for count messages from the bare publisher; returns the last one's arrival."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.read()
            got = self.bare.get(device, [])
            if len(got) >= count:
                return sorted(got)[count - 1]
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare publisher: {len(got)} of {count} arrived")
            time.sleep(0.05)

    def close(self):
        if self._file is not None:
            self._file.close()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def metrics(port: int) -> dict[str, float]:
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    values = {}
    for line in data.decode().split("\r\n\r\n", 1)[1].splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def wait_metric(port, name, want, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if metrics(port).get(name) == want:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"gateway: {name} never became {want}")
        time.sleep(0.05)


def gateway_command(config: Path) -> list[str] | None:
    """The gateway under cProfile when LUCIOLE_BENCH_PROFILE names a file, else the default."""
    profile = os.environ.get("LUCIOLE_BENCH_PROFILE")
    if not profile:
        return None
    code = (
        f"import cProfile; from luciole.edge.cli import main; cProfile.run('main()', {profile!r})"
    )
    return [sys.executable, "-c", code, "gateway", "--config", str(config)]


def keys(ndev: int, count: int, first_seq: int) -> list[tuple[str, int]]:
    return [
        (DEVICE_ID.format(d), s) for d in range(ndev) for s in range(first_seq, first_seq + count)
    ]


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


class Rig:
    """Broker, subscriber, devices and gateway, each a process, and what they did so far."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.broker = BenchBroker(workdir / "broker")
        self.inbox = Inbox(workdir / "city.tsv")
        self.children: list[Child] = []
        self.gateway: GatewayProcess | None = None
        self.http_port = free_port()
        self.seq = 0  # the devices' next seq: every run sends new readings
        self.expected: list[tuple[str, int]] = []

    def start(self):
        self.broker.start()
        self.subscriber = self._child(
            "subscribe", *self._at, "bench-city", TELEMETRY, self.inbox.path
        )
        self.subscriber.expect("SUBSCRIBED", 10)
        self.broker.save()  # the city's session survives the broker's restart in the drain run
        self.devices = self._child("devices", self.workdir, DEVICES)
        self.devices.expect("READY", 10)
        ports = [self.workdir / f"ttyLUC{i}" for i in range(DEVICES)]
        config = write_config(
            self.workdir / "gateway.toml",
            self.broker,
            ports,
            id="gw-bench",
            site=SITE,
            http_listen=f"127.0.0.1:{self.http_port}",
        )
        self.gateway = GatewayProcess(
            config, self.workdir / "gateway.log", gateway_command(config)
        ).start()
        self.devices.send("hello")  # every port opened by the gateway, which greeted the device
        self.devices.expect("OK", 30)
        wait_metric(self.http_port, "luciole_broker_connected", 1.0, 30)

    @property
    def _at(self):
        return self.broker.host, self.broker.port

    def _child(self, role, *args):
        child = Child(role, *args, log=self.workdir / f"{role}.log")
        self.children.append(child)
        return child

    def processes(self) -> dict[str, int]:
        return {
            "gateway": self.gateway.process.pid,
            "devices": self.devices.process.pid,
            "subscriber": self.subscriber.process.pid,
            "mosquitto": self.broker.process.pid,
        }

    def readings(self, ndev, count, rate, what, timeout_s=120.0):
        """ndev devices send count readings each; returns msg/s end to end, and by process the
        CPU us per reading and the share of a CPU used."""
        want = keys(ndev, count, self.seq)
        self.expected += want
        pids = self.processes()
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        wall = time.monotonic()
        self.devices.send(f"send {ndev} {count} {self.seq} {rate}")
        self.seq += count
        start = float(self.devices.expect("START", 10)[0])
        self.devices.expect("DONE", timeout_s)  # all acknowledged: stored by the gateway
        last = self.inbox.wait_all(want, timeout_s, what)
        wall = time.monotonic() - wall
        used = {name: cpu_s(pid) - before[name] for name, pid in pids.items()}
        per_msg = {name: cpu * 1e6 / len(want) for name, cpu in used.items()}
        return len(want) / (last - start), per_msg, {k: v / wall for k, v in used.items()}

    def bare(self, n, count, inflight):
        """The bare publisher's run n: msg/s end to end, msg/s acknowledged, CPU us/msg."""
        topic = f"luciole/v1/{SITE}/devices/{CEILING_DEVICE}{n}/telemetry"
        bare = self._child("ceiling", *self._at, topic, count, inflight)
        start = float(bare.expect("START", 30)[0])
        done, cpu = (float(w) for w in bare.expect("DONE", 120))
        last = self.inbox.wait_bare(f"{CEILING_DEVICE}{n}", count, 60)
        bare.stop()
        return count / (last - start), count / (done - start), cpu / count * 1e6

    def latencies_ms(self, want) -> list[float]:
        """Device to subscriber, from the send time each reading carries."""
        found = []
        for key in want:
            payload = self.inbox.payloads.get(key)
            if payload is None:
                continue
            records = senml.resolve(senml.decode_cbor(bytes.fromhex(payload)), 0)
            sent = next(r["t"] for r in records if r["n"].endswith(":seq"))
            found.append((self.inbox.first[key] - sent) * 1000)
        return sorted(found)

    def stop(self):
        for child in self.children:
            child.stop()
        if self.gateway is not None:
            self.gateway.stop()
        self.broker.stop()
        self.inbox.close()


def run(scale: float = 1.0):
    if scale <= 0:
        raise ValueError("scale must be positive")
    per_run = max(DEVICES * 10, round(RUN_READINGS * scale))
    per_device = per_run // DEVICES
    backlog_per_device = max(10, round(BACKLOG_READINGS * scale)) // DEVICES
    backlog = backlog_per_device * DEVICES
    paced_seconds = max(1.0, PACED_SECONDS * scale)
    paced_per_device = round(PACED_RATE / DEVICES * paced_seconds)
    inflight = BrokerConfig().inflight  # the gateway's default window

    workdir = Path(tempfile.mkdtemp(prefix="luciole-bench-gateway-"))
    rig = Rig(workdir)
    ok = False
    try:
        progress(f"workdir {workdir}; scale {scale:g}; starting broker, subscriber, devices")
        rig.start()
        progress(
            f"gateway pid {rig.gateway.process.pid} up: "
            f"{DEVICES} serial ports, {inflight} in flight"
        )

        bares, fours = [], []
        for n in range(1, ROUNDS + 1):
            progress(f"round {n}/{ROUNDS}: bare aiomqtt publisher, {per_run:,} messages")
            bares.append(rig.bare(n, per_run, inflight))
            progress(f"  {bares[-1][0]:,.0f} msg/s end to end ({bares[-1][1]:,.0f}/s acked)")
            progress(f"round {n}/{ROUNDS}: {DEVICES} devices, {per_device * DEVICES:,} readings")
            fours.append(rig.readings(DEVICES, per_device, 0, f"{DEVICES} devices"))
            rate, per_msg, busy = fours[-1]
            progress(f"  {rate:,.0f} msg/s, gateway {per_msg['gateway']:,.0f} us CPU/msg")
            progress("  CPU busy: " + ", ".join(f"{k} {v:.0%}" for k, v in busy.items()))
        ceiling, bare_acked, bare_cpu_us = max(bares)
        rate4, per_msg4, busy4 = max(fours, key=lambda run: run[0])

        progress(f"1 device: {per_run:,} readings as fast as the link allows")
        rate1, per_msg1, _ = rig.readings(1, per_run, 0, "1 device")
        progress(f"  {rate1:,.0f} msg/s")

        progress(f"paced: {PACED_RATE:,} msg/s from {DEVICES} devices for {paced_seconds:g} s")
        paced = keys(DEVICES, paced_per_device, rig.seq)
        rig.inbox.keep_payloads = True
        rig.readings(DEVICES, paced_per_device, PACED_RATE / DEVICES, "paced")
        rig.inbox.keep_payloads = False
        latencies = rig.latencies_ms(paced)
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        progress(f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")

        progress(f"drain: broker stopped; {backlog:,} readings into the gateway's outbox")
        rig.broker.stop()
        wait_metric(rig.http_port, "luciole_broker_connected", 0.0, 20)
        want = keys(DEVICES, backlog_per_device, rig.seq)
        rig.expected += want
        rig.devices.send(f"send {DEVICES} {backlog_per_device} {rig.seq} 0")
        rig.seq += backlog_per_device
        fill_start = float(rig.devices.expect("START", 10)[0])
        fill_rate = backlog / (float(rig.devices.expect("DONE", 600)[0]) - fill_start)
        depth = metrics(rig.http_port).get("luciole_queue_depth", 0)
        progress(f"  stored at {fill_rate:,.0f} msg/s; outbox depth {depth:,.0f}; broker restarts")
        cpu_before = cpu_s(rig.gateway.process.pid)
        restart = time.time()
        rig.broker.start()
        last = rig.inbox.wait_all(want, 300, "drain")
        drain_cpu_us = (cpu_s(rig.gateway.process.pid) - cpu_before) * 1e6 / backlog
        drain = backlog / (last - restart)
        first_back = min(rig.inbox.first[k] for k in want if k in rig.inbox.first)
        drain_connected = backlog / (last - first_back)
        progress(f"  drained at {drain:,.0f} msg/s, gateway {drain_cpu_us:,.0f} us CPU/msg")

        rss = peak_rss_mb(rig.gateway.process.pid)
        final = metrics(rig.http_port)
        rig.inbox.read()
        lost = sum(1 for k in rig.expected if k not in rig.inbox.first)
        duplicates = rig.inbox.duplicates
        readings = len(rig.expected)
        ok = True
    finally:
        rig.stop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            progress(f"failed; logs kept in {workdir}")
            log = workdir / "gateway.log"
            if log.exists():
                print(log.read_text()[-3000:], file=sys.stderr)

    ratio = rate4 / ceiling
    cpu4_us = per_msg4["gateway"]

    def met(good):
        return "yes" if good else "NO"

    rows = [
        ["msg/s, 1 device", f"{rate1:,.0f}", "-", f"<= {TB_PER_DEVICE:,} per device", "-"],
        [
            f"msg/s, {DEVICES} devices (best of {ROUNDS})",
            f"{rate4:,.0f}",
            f">= {GOAL_TOTAL:,}",
            f"~{TB_FOUR:,}",
            met(rate4 >= GOAL_TOTAL),
        ],
        [
            f"ceiling: bare aiomqtt msg/s (best of {ROUNDS})",
            f"{ceiling:,.0f}",
            "-",
            "-",
            "-",
        ],
        ["ratio to ceiling", f"{ratio:.0%}", f">= {GOAL_RATIO:.0%}", "-", met(ratio >= GOAL_RATIO)],
        [
            f"gateway CPU us/msg, {DEVICES} devices",
            f"{cpu4_us:,.0f}",
            "-",
            f"~{TB_CPU_US:,.0f} (120% CPU)",
            "-",
        ],
        [f"latency p50 ms at {PACED_RATE:,}/s", f"{p50:.1f}", "-", f"{TB_P50_MS}", "-"],
        [
            f"latency p99 ms at {PACED_RATE:,}/s",
            f"{p99:.1f}",
            f"< {GOAL_P99_MS:g}",
            "-",
            met(p99 < GOAL_P99_MS),
        ],
        ["gateway peak RSS MB", f"{rss:.1f}", f"< {GOAL_RSS_MB:g}", f"{TB_RSS_MB}", met(rss < 60)],
        [
            f"drain msg/s, {backlog:,} backlog",
            f"{drain:,.0f}",
            f">= {GOAL_DRAIN:,}",
            "-",
            met(drain >= GOAL_DRAIN),
        ],
        ["lost", f"{lost}", "0", "-", met(lost == 0)],
        ["duplicate deliveries", f"{duplicates}", "-", "merges same-ms readings", "-"],
    ]
    print_table(["figure", "Luciole", "goal", "ThingsBoard GW 3.8.5", "met"], rows)
    print()
    if scale != 1:
        print(f"SCALED RUN (--scale {scale:g}): smaller counts than the bench's; do not compare.")
    busy = ", ".join(f"{name} {share:.0%}" for name, share in busy4.items())
    print(
        f"end to end: first reading sent to last received by a QoS 1 subscriber, each reading "
        f"counted once by (device, seq); {per_run:,} readings per run ({per_device:,} per device "
        f"with {DEVICES}); during the best {DEVICES}-device run a CPU was busy: {busy}"
    )
    print(
        f"ceiling: a bare aiomqtt QoS 1 publisher, its own process, {inflight} in flight, same "
        f"broker, payloads and subscriber; PUBACKs at {bare_acked:,.0f}/s, {bare_cpu_us:,.0f} us "
        f"CPU/msg (the gateway: {cpu4_us:,.0f} with {DEVICES} devices, "
        f"{per_msg1['gateway']:,.0f} with 1, {drain_cpu_us:,.0f} draining)"
    )
    print(
        f"latency: {len(latencies):,} readings stamped when made on the device, paced at "
        f"{PACED_RATE / DEVICES:,.0f}/s per device; max {latencies[-1]:.1f} ms"
    )
    print(
        f"drain: {backlog:,} readings stored with the broker down (at {fill_rate:,.0f}/s), timed "
        f"from the broker's restart ({drain_connected:,.0f}/s from the first arrival)"
    )
    print(
        f"RSS: VmHWM of the gateway after all runs; {readings:,} readings in all, "
        f"{final.get('luciole_dropped_messages', 0):.0f} dropped by the outbox"
    )
    print(
        f"{os.cpu_count()} CPUs, each part its own process; Mosquitto saves its persistence "
        f"every 30 min, not after every change as the test broker does (see BenchBroker)"
    )
    return {
        "scale": scale,
        "msgs_per_s_1dev": round(rate1, 1),
        "msgs_per_s_4dev": round(rate4, 1),
        "ceiling_msgs_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(ratio, 3),
        "cpu_us_per_msg": round(cpu4_us, 1),
        "p50_ms": round(p50, 2),
        "p99_ms_at_1000": round(p99, 2),
        "rss_mb": round(rss, 1),
        "drain_msgs_per_s": round(drain, 1),
        "lost": lost,
        "duplicates": duplicates,
        "ceiling_acked_msgs_per_s": round(bare_acked, 1),
        "ceiling_cpu_us_per_msg": round(bare_cpu_us, 1),
        "cpu_us_per_msg_1dev": round(per_msg1["gateway"], 1),
        "cpu_us_per_msg_drain": round(drain_cpu_us, 1),
        "drain_msgs_per_s_from_first": round(drain_connected, 1),
        "store_msgs_per_s_no_broker": round(fill_rate, 1),
        "readings": readings,
    }
