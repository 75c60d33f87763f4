"""CBOR across interpreters: what one side writes, the other reads back identically."""

import contextlib
import math
import random

import cbor2
import pytest
import runner
from hypothesis import given
from hypothesis import strategies as st
from mplane import run_batch

from luciole.protocols import cbor, cbor_compact
from luciole.protocols.errors import DecodeError


def random_value(rng, depth=0):
    """Ints near every width boundary, floats, text, bytes, containers and tag 1."""
    kind = rng.randrange(12 if depth < 3 else 9)
    if kind == 0:
        return rng.choice([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1])
    if kind == 1:
        return -rng.choice([1, 24, 25, 256, 257, 65537, 2**32 + 1, 2**63, 2**64])
    if kind == 2:
        return rng.randrange(-(2**70), 2**70)
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, -4.1, 1e300, 5e-324, math.inf, -math.inf, rng.random()])
    if kind == 4:
        return "".join(rng.choice("aé水𐅑 -_") for _ in range(rng.randrange(20)))
    if kind == 5:
        return rng.randbytes(rng.randrange(40))
    if kind == 6:
        return rng.choice([True, False, None])
    if kind == 7:
        return cbor.Tag(1, rng.choice([rng.randrange(2**32), rng.randrange(2**32) + 0.5]))
    if kind == 8:
        return rng.randrange(-1000, 1000)
    if kind in (9, 10):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(8))]
    keys = [rng.randrange(-10, 10), f"k{rng.randrange(100)}", rng.randbytes(2)]
    return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randrange(8))}


VALUES = [random_value(random.Random(seed)) for seed in range(400)]


def test_micropython_writes_what_cbor2_reads(micropython):
    vectors = [
        {"id": str(i), "op": "cbor.encode", "input": runner.describe(v)}
        for i, v in enumerate(VALUES)
    ]
    results = run_batch(micropython, vectors)
    for i, value in enumerate(VALUES):
        written = bytes.fromhex(results[str(i)]["result"])
        assert runner.describe(cbor.loads(written)) == runner.describe(value)
        decoded_by_oracle = cbor2.loads(written, semantic_decoders={1: lambda v, _: cbor.Tag(1, v)})
        assert runner.describe(decoded_by_oracle) == runner.describe(value)


@pytest.mark.parametrize("canonical", [False, True], ids=["float64", "shortest-floats"])
def test_micropython_reads_what_cbor2_writes(micropython, canonical):
    # canonical=True makes cbor2 write float16 and float32 wherever they are exact
    written = [cbor2.dumps(v, canonical=canonical) for v in VALUES]
    vectors = [{"id": str(i), "op": "cbor.decode", "input": w.hex()} for i, w in enumerate(written)]
    results = run_batch(micropython, vectors)
    for i, value in enumerate(VALUES):
        assert results[str(i)].get("result") == runner.describe(value), results[str(i)]


@pytest.mark.parametrize("decode", [cbor.loads, cbor_compact.loads], ids=["cbor2", "compact"])
@given(data=st.binary(max_size=64))
def test_random_bytes_only_raise_decode_error(decode, data):
    with contextlib.suppress(DecodeError):
        decode(data)


@st.composite
def mutated_encodings(draw):
    written = bytearray(cbor2.dumps(VALUES[draw(st.integers(0, len(VALUES) - 1))]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(written)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and at < len(written):
            written[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            written[at:at] = bytes([draw(st.integers(0, 255))])
        elif action == "delete":
            del written[at : at + 1]
        else:
            del written[at:]
    return bytes(written)


def semantic_tags(desc):
    """Tags other than 1: cbor2 gives them meaning (dates, decimals, ...), the compact codec not."""
    if isinstance(desc, list):
        return any(semantic_tags(d) for d in desc)
    if isinstance(desc, dict):
        if desc.get("$tag", 1) != 1:
            return True
        return any(semantic_tags(d) for d in desc.values())
    return False


@given(data=mutated_encodings())
def test_mutated_encodings_decode_alike_or_fail_alike(data):
    """The compact codec agrees with cbor2 on damaged input: same value or both reject it."""
    try:
        got = runner.describe(cbor_compact.loads(data))
    except DecodeError:
        got = None
    try:
        value = cbor.loads(data)
    except DecodeError:
        # cbor2 also checks the content of semantic tags, which the compact codec keeps as is
        assert got is None or semantic_tags(got), f"only the compact codec accepts {data.hex()}"
        return
    # cbor2 decodes simple values (undefined, simple(n)) the compact codec rejects by design
    if got is not None and not semantic_tags(got):
        assert got == runner.describe(value)
