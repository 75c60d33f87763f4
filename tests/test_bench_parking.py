"""`luciole bench parking` at small scale: the table, then its JSON line; the detector against a
naive threshold on the same street."""

import json
import subprocess
import sys
from pathlib import Path

from luciole.simulators.bench import parking

LUCIOLE = Path(sys.executable).parent / "luciole"


def test_small_run_ends_with_its_json_line():
    done = subprocess.run(
        [str(LUCIOLE), "bench", "parking", "--scale", "0.1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "SCALED RUN" in done.stdout
    result = json.loads(lines[-1])
    assert result["bench"] == "parking"
    for key in (
        "accuracy",
        "precision",
        "recall",
        "latency_p50_s",
        "latency_p95_s",
        "false_transitions_per_bay_day",
        "radio_msgs_per_bay_day",
        "battery_years",
    ):
        assert key in result


def test_detector_flickers_far_less_than_a_naive_threshold(capsys):
    result = parking.run(scale=0.3)
    capsys.readouterr()
    assert (
        result["false_transitions_per_bay_day"] * 5 < result["naive_false_transitions_per_bay_day"]
    )
    assert result["precision"] > 0.5
