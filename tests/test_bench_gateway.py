"""`luciole bench gateway` at a small scale: every part starts, every reading arrives, and the run
ends with its JSON line. Speed itself is never asserted: it is what the bench reports."""

import json
import subprocess
import sys
from pathlib import Path

LUCIOLE = Path(sys.executable).parent / "luciole"

KEYS = {
    "msgs_per_s_1dev",
    "msgs_per_s_4dev",
    "ceiling_msgs_per_s",
    "ratio_to_ceiling",
    "cpu_us_per_msg",
    "p50_ms",
    "p99_ms_at_1000",
    "rss_mb",
    "drain_msgs_per_s",
    "lost",
    "duplicates",
}


def test_bench_gateway_small_scale_loses_nothing():
    done = subprocess.run(
        [str(LUCIOLE), "bench", "gateway", "--scale", "0.02"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["bench"] == "gateway"
    assert result["scale"] == 0.02
    assert set(result) >= KEYS
    assert result["lost"] == 0
    assert result["duplicates"] >= 0
    for key in ("msgs_per_s_1dev", "msgs_per_s_4dev", "ceiling_msgs_per_s", "drain_msgs_per_s"):
        assert result[key] > 0, key
    assert result["ratio_to_ceiling"] > 0
    assert result["rss_mb"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms_at_1000"]
    # the table for people comes first, and says the run was scaled down
    assert any(line.startswith("figure") for line in lines[:-1])
    assert any("SCALED RUN" in line for line in lines[:-1])
    assert "[bench gateway]" in done.stderr  # progress goes to stderr
