import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from luciole.simulators.bluez import FakeBlueZ
from luciole.simulators.micropython import interpreter
from luciole.simulators.mosquitto import Mosquitto

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


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto on a free 127.0.0.1 port, for this test only."""
    with Mosquitto(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def bluez(tmp_path):
    """The BlueZ stand-in on a private D-Bus system bus (the BLE air of gateway tests)."""
    with FakeBlueZ(log_path=tmp_path / "bluez.log") as fake:
        yield fake
