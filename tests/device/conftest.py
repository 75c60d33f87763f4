"""Device tests: pytest-embedded's serial DUT speaking the device link to a board's console.

By default each test gets a fresh sim board (the real firmware under MicroPython on host_sim,
started with `luciole sim`); `--port /dev/ttyACM0` runs the same tests against a real board
flashed with `luciole firmware deploy` (docs/firmware.md).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

LUCIOLE = Path(sys.executable).parent / "luciole"
SCENARIO = """
seed = 1
[[boards]]
id = "dut-1"
app = "beacon"
"""


@pytest.fixture
def sim_board(request, tmp_path):
    """The sim board's serial port, or None when --port names a real one."""
    if request.config.getoption("port", None):
        yield None
        return
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(SCENARIO)
    process = subprocess.Popen(
        [str(LUCIOLE), "sim", "--scenario", str(scenario), "--workdir", str(tmp_path / "sim")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready = None
        for line in process.stdout:
            if line.startswith("{"):
                ready = json.loads(line)
                break
        assert ready is not None, "luciole sim stopped before its boards were up"
        yield ready["boards"]["dut-1"]
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def port(request, sim_board):
    # overrides pytest-embedded's fixture of the same name, which only reads --port
    return request.config.getoption("port", None) or sim_board
