"""`luciole bench protocols`: per-operation costs of the wire formats on both interpreters.

The workloads are defined once, in protocols_mp.py. CPython imports them and times them in this
process; the MicroPython unix port runs that same file as a script under the firmware's heap limit
(`-X heapsize=64k`), one process per operation (as a board loads only the modules its app uses:
compiled from source all together they would not fit the heap). The baseline for the compact
CBOR codec (what MicroPython uses) is cbor2, timed on the same value in this same process.
"""

import json
from pathlib import Path

from luciole.edge.cli import UsageError

from .. import micropython
from . import per_call_s, print_table
from .protocols_mp import WORKLOADS

SCRIPT = Path(__file__).with_name("protocols_mp.py")
HEAP = micropython.DEFAULT_HEAP


def _micropython_us(key):
    try:
        out = micropython.run(SCRIPT, key, heap=HEAP, timeout_s=60)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    except RuntimeError as e:
        raise UsageError(f"{key}: {e}") from None
    result = json.loads(out.strip().splitlines()[-1])
    return result["us"][key], result["heap_bytes"]


def _fmt(us):
    if us is None:
        return None
    if us >= 100:
        return f"{us:,.0f}"
    return f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def run():
    cpython_us = {}
    micropython_us = {}
    heap_bytes = {}
    for key, _, setup, on_micropython in WORKLOADS:
        fn = setup()
        fn()  # a failing op raises here, before any timing
        cpython_us[key] = per_call_s(fn) * 1e6
        if on_micropython:
            micropython_us[key], heap_bytes[key] = _micropython_us(key)
    ratio = cpython_us["cbor_compact"] / cpython_us["cbor_cbor2"]

    rows = []
    for key, what, _, _ in WORKLOADS:
        mp = micropython_us.get(key)
        rows.append(
            [
                what,
                _fmt(cpython_us[key]),
                _fmt(mp),
                None if mp is None else f"{mp / cpython_us[key]:.1f}x",
                None if mp is None else f"{heap_bytes[key] / 1024:.1f}",
            ]
        )
    print_table(
        ["operation", "CPython us", "MicroPython us", "MP/CPython", "MP heap KB"],
        rows,
    )
    print()
    compact, cbor2 = _fmt(cpython_us["cbor_compact"]), _fmt(cpython_us["cbor_cbor2"])
    print(
        f"compact codec / cbor2 on CPython, same process, same value: {ratio:.1f}x "
        f"(compact {compact} us, cbor2 {cbor2} us per encode+decode)"
    )
    print(
        f"MicroPython: unix port, -X heapsize={HEAP} for every op, one process per op; "
        "'MP heap KB' is the GC heap in use after the op ran (modules and data)"
    )
    print("us: microseconds per call, best of 3 runs")
    return {
        "cpython_us": {k: round(v, 3) for k, v in cpython_us.items()},
        "micropython_us": {k: round(v, 3) for k, v in micropython_us.items()},
        "compact_vs_cbor2": round(ratio, 2),
        "micropython_heap": HEAP,
        "micropython_heap_bytes": heap_bytes,
    }
