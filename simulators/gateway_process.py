"""The real gateway as its own process, as the demo, the benchmarks and the tests start it."""

import json
import signal
import subprocess
import sys
from pathlib import Path

LUCIOLE = str(Path(sys.executable).parent / "luciole")


def write_config(path: Path, broker, serial_ports=(), silent_after_s=None, **gateway) -> Path:
    """A gateway.toml for a local broker; keyword arguments set [gateway] keys. The gateway
    reconnects within half a second of the broker coming back."""
    path = Path(path)
    gateway = {
        "id": "gw-test",
        "site": "issy",
        "data_dir": str(path.parent / "gw-data"),
        "http_listen": "127.0.0.1:0",
        **gateway,
    }
    lines = [
        "[gateway]",
        *(f"{key} = {json.dumps(value)}" for key, value in gateway.items()),
        "[broker]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        "reconnect_min_s = 0.1",
        "reconnect_max_s = 0.5",
    ]
    for port in serial_ports:
        lines += ["[[serial]]", f"port = {json.dumps(str(port))}"]
        if silent_after_s is not None:
            lines.append(f"silent_after_s = {silent_after_s}")
    path.write_text("\n".join(lines) + "\n")
    return path


class GatewayProcess:
    """`luciole gateway --config FILE`, its stderr appended to log_path."""

    def __init__(self, config_path, log_path, command=None):
        self.config_path, self.log_path = Path(config_path), Path(log_path)
        self.command = command or [LUCIOLE, "gateway", "--config", str(self.config_path)]
        self.process: subprocess.Popen | None = None

    def start(self):
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the file
            self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=log)
        return self

    def kill(self):
        """kill -9: no goodbye, no last words on the broker but the will."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
