import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from luciole.simulators.micropython import interpreter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "vectors"))

# Every decoder sees at least 10,000 random and mutated inputs per CI run.
# In CI the examples are derandomized, so a landing is judged on the same inputs every time;
# developers' runs explore new ones, and hypothesis keeps any failure in .hypothesis/.
settings.register_profile(
    "luciole",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "luciole"))


@pytest.fixture(scope="session")
def micropython():
    """The unix-port interpreter from the dev dependencies; a missing one fails, never skips."""
    try:
        return interpreter()
    except FileNotFoundError as e:
        pytest.fail(str(e))
