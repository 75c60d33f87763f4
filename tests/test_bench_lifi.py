"""`luciole bench lifi` at a small scale: it runs the real carousel through the real receiver and
ends with its JSON line. Speed itself is never asserted: it is what the bench reports."""

import json
import subprocess
import sys
from pathlib import Path

LUCIOLE = Path(sys.executable).parent / "luciole"

KEYS = {
    "goodput_kbps_manchester",
    "goodput_kbps_4b6b",
    "ttc_ratio_mean_p0",
    "ttc_ratio_mean_p5",
    "ttc_ratio_mean_p20",
    "ttc_p99_s_p20",
    "plain_ratio_mean_p20",
    "first_glimpse_s",
    "decode_success",
}


def test_bench_lifi_small_scale_ends_with_its_json_line():
    done = subprocess.run(
        [str(LUCIOLE), "bench", "lifi", "--scale", "0.01"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert "SCALED RUN" in done.stdout
    result = json.loads(lines[-1])
    assert result["bench"] == "lifi"
    assert result["scale"] == 0.01
    assert set(result) >= KEYS
    # every object the receiver presented was byte-identical (the bench checks each one), and
    # a fountain-coded visitor never needs the loop to come round again
    assert result["decode_success"] == 1.0
    # the same erasures cost a plain carousel more than the fountain-coded one
    assert result["plain_ratio_mean_p20"] > result["ttc_ratio_mean_p20"]
