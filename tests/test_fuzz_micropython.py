"""The decoders under MicroPython, fed random and mutated inputs: only DecodeError may come out.

Hypothesis drives the CPython side (10,000 examples per decoder, in each module's tests); here the
same kind of damage goes through the real MicroPython interpreter, in one process per decoder.
"""

import json
import random
from pathlib import Path

import pytest
from fuzzing import damage
from mplane import run_batch

CASES_PER_DECODER = 2_000
VECTOR_DIR = Path(__file__).parent / "vectors"
DECODERS = [
    "cbor.decode",
    "senml.decode_cbor",
    "senml.decode_json",
    "link.decode",
    "link.stream",
    "ble.adv",
    "ble.ibeacon",
    "ble.eddystone",
    "ble.bthome",
    "readings.decode",
]


def mutate(rng, value):
    """Damages a vector's input, whatever its shape (hex, JSON text, chunk list, {"data": hex})."""
    if isinstance(value, list):
        return [mutate(rng, v) for v in value] if value else [rng.randbytes(8).hex()]
    if isinstance(value, dict):
        return {k: mutate(rng, v) if k == "data" else v for k, v in value.items()}
    try:
        return damage(rng, bytes.fromhex(value)).hex()
    except ValueError:  # text, such as SenML JSON
        return damage(rng, value.encode()).decode("utf-8", "replace")


def fuzz_inputs(op):
    seeds = [
        v["input"]
        for path in sorted(VECTOR_DIR.glob("*.json"))
        for v in json.loads(path.read_text())
        if v["op"] == op
    ]
    assert seeds, f"no vectors for {op} to start from"
    rng = random.Random(op)
    inputs = []
    for i in range(CASES_PER_DECODER):
        if i % 4 == 0:  # pure noise, in the seed's shape
            inputs.append(mutate(rng, rng.choice(seeds)) if i % 8 else rng.randbytes(i % 40).hex())
        else:
            inputs.append(mutate(rng, rng.choice(seeds)))
    return inputs


@pytest.mark.parametrize("op", DECODERS)
def test_only_decode_error_escapes_under_micropython(micropython, op):
    inputs = fuzz_inputs(op)
    vectors = [{"id": str(i), "op": op, "input": data} for i, data in enumerate(inputs)]
    results = run_batch(micropython, vectors, timeout_s=300)
    escaped = [
        (inputs[int(i)], r["error"], r.get("message"))
        for i, r in results.items()
        if r.get("error") not in (None, "DecodeError")
    ]
    assert len(results) == len(inputs)
    assert not escaped, f"{len(escaped)} inputs raised something else, e.g. {escaped[:3]}"
