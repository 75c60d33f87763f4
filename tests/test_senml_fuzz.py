"""SenML properties: generated packs round-trip through JSON and CBOR and match the cbor2 and json
oracles; random, damaged and wrongly shaped input only ever raises DecodeError."""

import base64
import contextlib
import json
import math
import random
import string

import cbor2
from fuzzing import PROPERTY_EXAMPLES, damage
from hypothesis import given, settings
from hypothesis import strategies as st

from luciole.protocols import senml
from luciole.protocols.errors import DecodeError

TABLE_4 = {"bver": -1, "bn": -2, "bt": -3, "bu": -4, "bv": -5, "bs": -6, "n": 0, "u": 1, "v": 2}
TABLE_4.update({"vs": 3, "vb": 4, "s": 5, "t": 6, "ut": 7, "vd": 8})
NAME_FIRST = string.ascii_letters + string.digits
NAME_CHARS = NAME_FIRST + "-:./_"
TEXT_CHARS = NAME_CHARS + ' "\\\n\t\x00\x1f\x7fé水😀\u2028'
NUMBERS = [0, -0.0, 1, -1, 2**28 - 1, 2**28, 2**64 - 1, -(2**64), 0.1, 1e-7, 5e-324, 1.7e308]

# Each example draws one seed and builds its pack with random.Random: plain draws keep 10,000
# examples per test within seconds, where composite strategies take a minute.
seeds = st.integers(0, 2**64)


def number(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice(NUMBERS)
    if kind == 1:
        return rng.randrange(-(2**64), 2**64)
    if kind == 2:
        return rng.uniform(-2e9, 2e9)
    return rng.randrange(-(2**28), 2**31)  # times on both sides of 2**28


def text(rng, chars=TEXT_CHARS, size=8):
    return "".join(rng.choice(chars) for _ in range(rng.randrange(size)))


def base_name(rng):
    return rng.choice(NAME_FIRST) + text(rng, NAME_CHARS, 12)


def random_pack(rng):
    """A valid pack: the first record names a base, some records only set base fields."""
    pack = []
    for _ in range(rng.randint(1, 5)):
        record = {}
        for name in ("bn", "bt", "bu", "bv", "bs", "n", "u", "t", "ut", "s"):
            if rng.random() < 0.25:
                if name in ("bn", "n"):
                    record[name] = base_name(rng) if name == "bn" else text(rng, NAME_CHARS)
                else:
                    record[name] = text(rng) if name in ("bu", "u") else number(rng)
        value = rng.choice(["v", "vs", "vb", "vd", "s"])  # "s": a sum and no value
        record[value] = {
            "v": number,
            "vs": text,
            "vb": lambda rng: rng.random() < 0.5,
            "vd": lambda rng: rng.randbytes(rng.randrange(12)),
            "s": number,
        }[value](rng)
        pack.append(record)
    pack[0]["bn"] = base_name(rng)
    if rng.random() < 0.3:
        pack.insert(rng.randrange(len(pack) + 1), {"bn": base_name(rng), "bt": 2**28})
    version = rng.choice([None, 10, 3])
    if version:
        pack[0]["bver"] = version
    return pack


packs = seeds.map(lambda seed: random_pack(random.Random(seed)))


def as_cbor_maps(pack):
    return [{TABLE_4[k]: v for k, v in record.items()} for record in pack]


def as_json_values(pack):
    def base64url(data):
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return [{k: base64url(v) if k == "vd" else v for k, v in record.items()} for record in pack]


@settings(max_examples=PROPERTY_EXAMPLES)
@given(packs)
def test_json_round_trip_and_oracle(pack):
    data = senml.encode_json(pack)
    assert json.loads(data) == as_json_values(pack)
    assert senml.decode_json(data) == pack


@settings(max_examples=PROPERTY_EXAMPLES)
@given(packs)
def test_cbor_round_trip_and_oracle(pack):
    data = senml.encode_cbor(pack)
    assert cbor2.loads(data) == as_cbor_maps(pack)
    assert senml.decode_cbor(data) == pack


@settings(max_examples=PROPERTY_EXAMPLES)
@given(packs, st.floats(1e9, 2e9))
def test_resolved_records(pack, now_s):
    try:
        resolved = senml.resolve(pack, now_s)
    except DecodeError as e:  # only a sum of huge numbers, beyond a double or CBOR's integers
        assert "out of range" in str(e)
        return
    times = [record["t"] for record in resolved]
    assert times == sorted(times)
    for record in resolved:
        assert not any(name.startswith("b") for name in record if name != "bver")
        assert record.get("bver", 3) == 3
        assert sum(name in record for name in ("v", "vs", "vb", "vd")) <= 1
        assert math.isfinite(record["t"])
    # a resolved pack is a pack, and resolves to itself when all its times are absolute
    if resolved and min(times) >= 2**28:
        assert senml.resolve(resolved, 0) == resolved


def decodes_or_refuses(decode, data):
    try:
        pack = decode(data)
    except DecodeError:
        return
    assert senml.check(pack) == pack  # what decodes is a valid pack


@given(st.binary(max_size=64))
def test_random_bytes(data):
    decodes_or_refuses(senml.decode_cbor, data)
    decodes_or_refuses(senml.decode_json, data)


@given(st.text(max_size=64))
def test_random_text(text):
    decodes_or_refuses(senml.decode_json, text)


@given(seeds)
def test_damaged_encodings(seed):
    rng = random.Random(seed)
    pack = random_pack(rng)
    decodes_or_refuses(senml.decode_cbor, damage(rng, senml.encode_cbor(pack)))
    decodes_or_refuses(senml.decode_json, damage(rng, senml.encode_json(pack)))


LABELS = [*TABLE_4, *TABLE_4.values(), "x", "x_", "b_", 9, -7, 2.5, None]


def anything(rng, depth=0):
    kind = rng.randrange(9 if depth < 2 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind in (2, 3):
        return number(rng)
    if kind == 4:
        return text(rng)
    if kind == 5:
        return rng.randbytes(rng.randrange(4))
    if kind == 6:
        return base_name(rng)
    if kind == 7:
        return [anything(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(LABELS): anything(rng, depth + 1) for _ in range(rng.randrange(6))}


def wrong_shape(rng):
    """A pack, damaged: fields of any label and type, records that are not maps, no records."""
    shape = random_pack(rng) if rng.random() < 0.5 else []
    for _ in range(rng.randint(1, 3)):
        action = rng.randrange(3)
        record = shape[rng.randrange(len(shape))] if shape else None
        if action == 0 and isinstance(record, dict):
            record[rng.choice(LABELS)] = anything(rng)
        elif action == 1:
            shape.insert(rng.randrange(len(shape) + 1), anything(rng, 1))
        elif shape:
            del shape[rng.randrange(len(shape))]
    return shape if rng.random() < 0.9 else anything(rng)


@given(seeds)
def test_wrong_shapes(seed):
    rng = random.Random(seed)
    shape = wrong_shape(rng)
    decodes_or_refuses(senml.decode_cbor, cbor2.dumps(shape))
    try:
        data = json.dumps(shape).encode()
    except TypeError:  # bytes, which JSON cannot carry
        data = b"[]"
    decodes_or_refuses(senml.decode_json, data)
    for function in (senml.encode_json, senml.encode_cbor, lambda pack: senml.resolve(pack, 0)):
        with contextlib.suppress(DecodeError):
            function(shape)
