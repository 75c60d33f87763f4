"""`luciole bench parking` at small scale: the table, then its JSON line; the detector against a
naive threshold on the same street."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from luciole.simulators.bench import parking
from luciole.simulators.street import DAY_S, Street

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
        "accuracy_worst_street",
    ):
        assert key in result
    # every street's accuracy, and the worst of them is the worst street's
    assert result["accuracy_worst_street"] == min(result["streets"].values())
    assert len(result["streets"]) == len(parking.SEEDS)


def test_detector_flickers_far_less_than_a_naive_threshold(capsys):
    result = parking.run(scale=0.3)
    capsys.readouterr()
    assert (
        result["false_transitions_per_bay_day"] * 5 < result["naive_false_transitions_per_bay_day"]
    )
    assert result["precision"] > 0.5


def test_a_bay_taken_all_working_hours_is_calibrated_off_hours_or_reported():
    # bay 0: a car from 05:00 to 20:00, so the technician comes back in the evening; bay 1: a
    # car all day long, so it can never be calibrated
    street = Street(
        2, seed=1, stays=[(0, 5 * 3600.0, 20 * 3600.0, "car"), (1, -600.0, DAY_S + 600.0, "car")]
    )
    rng = np.random.default_rng(1)
    detector, _, working_hours = parking._calibrated(street, 0, rng)
    assert detector is not None and detector.baseline is not None
    assert not working_hours
    assert parking._calibrated(street, 1, rng)[0] is None
