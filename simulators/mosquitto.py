"""A real Mosquitto broker on a free 127.0.0.1 port, for tests, benchmarks and the demo.

It can be killed -9 and restarted on the same port with the same persistence file, as a city
broker that crashes.
"""

import getpass
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000


def free_port() -> int:
    """A free 127.0.0.1 port below the kernel's ephemeral range, for a server to listen on. A
    port in that range can be taken by an outgoing connection's own end while its server is
    down (a client reconnecting to it may even connect to itself: TCP's simultaneous open), and
    the server could not start again there ("Address already in use")."""
    try:
        first_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768  # Linux's default
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(LOWEST_PORT, first_ephemeral)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
            return port
    raise RuntimeError(f"no free port from {LOWEST_PORT} to {first_ephemeral - 1}")


class Mosquitto:
    def __init__(self, workdir: Path, port: int | None = None, tls: dict | None = None):
        """tls: {"ca": path, "cert": path, "key": path} requires client certificates."""
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.process: subprocess.Popen | None = None
        lines = [
            # run as whoever started it: as root, mosquitto would otherwise switch to the
            # `mosquitto` user and fail to write its persistence file here
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "max_queued_messages 0",  # no cap for offline persistent sessions
            # save after every change, as a clustered city broker replicates before it acks:
            # a kill -9 then loses sessions' queues only within one turn of the broker's loop
            "autosave_on_changes true",
            "autosave_interval 1",
            "max_inflight_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if tls:
            lines += [
                f"cafile {tls['ca']}",
                f"certfile {tls['cert']}",
                f"keyfile {tls['key']}",
                "require_certificate true",
            ]
        self.config = self.workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout_s=10.0):
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "mosquitto.log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.workdir / "mosquitto.log").read_text()[-500:]
                raise RuntimeError(f"mosquitto exited: {log}")
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def save(self):
        """Writes the broker's persistence file now (sessions, subscriptions), as a production
        broker keeps them; a later kill -9 then loses only what was in flight."""
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(0.2)

    def kill(self):
        """kill -9: no goodbye, no final save."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
