"""`luciole bench NAME`: speed measured against a baseline run in the same process.

Each bench prints a table for people and ends with one JSON line for machines.
"""

import importlib
import inspect
import json
import time

from luciole.edge.cli import UsageError

BENCHES = {
    "protocols": "per-operation costs of the wire formats on CPython and MicroPython",
    "gateway": "serial devices -> the real gateway -> Mosquitto, QoS 1 and durable, against a "
    "bare aiomqtt publisher; about a minute",
    "firmware": "peak heap of each firmware app under MicroPython, and a 20-board world's "
    "simulated-to-wall time ratio",
    "parking": "a simulated day of a street: detection accuracy, latency, radio and battery",
    "lifi": "Li-Fi goodput per line code and time to content against the erasure bound",
}


def bench_command(subparsers):
    parser = subparsers.add_parser(
        "bench",
        help="measure speed; prints a table and one final JSON line",
        description="Runs a benchmark. Figures are ratios against a baseline run in the same "
        "process, so they compare across machines. Benches: "
        + "; ".join(f"{name}: {what}" for name, what in BENCHES.items()),
    )
    parser.add_argument("name", choices=sorted(BENCHES), help="which benchmark")
    parser.add_argument(
        "--scale",
        type=float,
        metavar="FACTOR",
        help="shrink the run by FACTOR for a smoke test (all benches but protocols): "
        "gateway message counts and its paced 10 s, firmware simulated minutes, lifi visitor "
        "trials, parking bays and hours; e.g. 0.02 for a few seconds. The output then says "
        'SCALED RUN and its JSON line carries "scale"',
    )
    parser.set_defaults(handler=_run)


def _run(args):
    module = importlib.import_module(f"{__name__}.{args.name}")
    if args.scale is not None:
        if "scale" not in inspect.signature(module.run).parameters:
            raise UsageError(f"bench {args.name} has no --scale")
        if args.scale <= 0:
            raise UsageError("--scale must be positive")
        result = module.run(scale=args.scale)
    else:
        result = module.run()
    print(json.dumps({"bench": args.name, **result}))
    return 0


def per_call_s(fn, min_time_s=0.2, rounds=3):
    """Best-of-rounds time of one call, looping long enough to swamp the clock's resolution."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time_s / 4:
            break
        calls *= 4
    best = elapsed / calls
    for _ in range(rounds - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def print_table(headers, rows):
    """Prints rows under headers: the first column left-aligned, the others right-aligned (numbers
    are best passed already formatted); None prints as "-"."""
    cells = [[str(h) for h in headers]] + [
        ["-" if c is None else str(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        print("  ".join(padded))
        if n == 0:
            print("  ".join("-" * w for w in widths))
