"""The README's demo command runs the demo; here is the demo itself, shortened."""

import re
import subprocess
import sys
from pathlib import Path


def test_demo_shows_the_city_what_the_sensors_send():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "luciole"), "demo", "--seconds", "3", "--sensors", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"devices/ps-0001/telemetry\s+seq=0, occupied=", done.stdout)
    assert re.search(r"devices/ps-0002/status\s+\{\"online\": true", done.stdout)
    sent, seen = map(
        int, re.search(r"(\d+) readings sent by 2 sensors, (\d+) messages", done.stdout).groups()
    )
    assert sent > 0 and seen >= sent  # every reading, plus the status messages
