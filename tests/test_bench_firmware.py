"""`luciole bench firmware` at a small scale: every app's board runs its steady loop, answers
`info` over its console, and 20 boards are timed by their watchdog feeds. Every app (the
luminaire taking a carousel, then sending light; the parking sensor keyed and calibrated, so
advertising) must run in the goal's 64k heap; the speed figures are reported, not asserted."""

import json
import subprocess
import sys
from pathlib import Path

from luciole.simulators.firmware_build import apps

LUCIOLE = Path(sys.executable).parent / "luciole"


def test_bench_firmware_reports_every_app_and_the_worlds_time_ratio():
    done = subprocess.run(
        [str(LUCIOLE), "bench", "firmware", "--scale", "0.05"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SCALED RUN" in done.stdout
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["bench"] == "firmware"
    assert result["scale"] == 0.05
    assert "beacon" in apps()
    assert set(result["peak_heap_kb"]) == set(apps())
    for app in apps():
        peak_kb = result["peak_heap_kb"][app]
        assert isinstance(peak_kb, float) and peak_kb > 0
        # no MemoryError, crash or watchdog reset at the bench's heap
        assert result["boots"][app] == 1, done.stdout
        assert isinstance(result["runs_in_64k"][app], bool)
        # the table's row says what the JSON line says
        row = next(line for line in lines if line.split()[:1] == [app])
        assert f"{peak_kb:.1f}" in row.split()
    assert "runs in 64k" in done.stdout
    assert all(result["runs_in_64k"].values()), done.stdout
    assert result["boards"] == 20
    assert isinstance(result["sim_realtime_ratio"], float) and result["sim_realtime_ratio"] > 0
    assert isinstance(result["board_cpu_pct"], float)
