"""Every BLE decoder fed random bytes and damaged valid encodings: only DecodeError may escape.

A damaged input is a valid encoding (from the shared vectors and our encoders) put through a short
program of bit flips, insertions, deletions and truncations, which hypothesis shrinks like any
other bytes.
"""

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from luciole.protocols.ble import adv, bthome, eddystone, ibeacon
from luciole.protocols.errors import DecodeError

VECTORS = Path(__file__).parent / "vectors"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MAC = "54:48:E6:8F:80:A5"


def seeds(op):
    """The valid inputs of the shared vectors for one op."""
    found = []
    for path in sorted(VECTORS.glob("ble-*.json")):
        for v in json.loads(path.read_text()):
            if v["op"] == op and "expected" in v:
                data = v["input"]["data"] if isinstance(v["input"], dict) else v["input"]
                found.append(bytes.fromhex(data))
    assert found, op
    return found


def damage(seed, program):
    """Applies (operation, position, value) triples from program to a copy of seed."""
    data = bytearray(seed)
    for i in range(0, len(program) - 2, 3):
        operation, at, value = program[i] % 4, program[i + 1] % (len(data) + 1), program[i + 2]
        if operation == 0 and at < len(data):
            data[at] ^= 1 << (value % 8)
        elif operation == 1:
            data.insert(at, value)
        elif operation == 2:
            del data[at : at + 1 + value % 3]
        elif operation == 3:
            del data[at:]
    return bytes(data)


def inputs(valid):
    damaged = st.tuples(st.sampled_from(valid), st.binary(min_size=3, max_size=12))
    return st.binary(max_size=64) | damaged.map(lambda pair: damage(*pair))


def only_decode_error(decode, data):
    with contextlib.suppress(DecodeError):
        decode(data)


ENCRYPTED = [
    bthome.encode([(0x23, True)], mac=MAC, key=KEY, counter=7, packet_id=1),
    bthome.encode([(0x02, 21.5), (0x03, 40.0), (0x01, 90)], mac=MAC, key=KEY, counter=2**31),
    bytes.fromhex("41e445f3c9962b332211006c7c4519"),
]


@given(inputs(seeds("ble.adv")))
def test_adv(data):
    only_decode_error(adv.parse, data)


@given(inputs(seeds("ble.ibeacon")))
def test_ibeacon(data):
    only_decode_error(ibeacon.decode, data)


@given(inputs(seeds("ble.eddystone")))
def test_eddystone(data):
    only_decode_error(eddystone.decode, data)


@given(inputs(seeds("ble.bthome")))
def test_bthome_plaintext(data):
    only_decode_error(bthome.decode, data)


@given(inputs(ENCRYPTED))
def test_bthome_with_key(data):
    only_decode_error(lambda d: bthome.decode(d, MAC, KEY), data)


@given(st.lists(inputs(ENCRYPTED + seeds("ble.bthome")), max_size=4))
def test_receiver(frames):
    receiver = bthome.Receiver({MAC: KEY})
    for frame in frames:
        only_decode_error(lambda d: receiver.accept(MAC, d), frame)


@pytest.mark.parametrize("seed", ENCRYPTED, ids=["occupancy", "climate", "spec-example"])
def test_any_single_bit_flip_of_an_encrypted_frame_is_refused(seed):
    """Beyond the device-info byte, every bit is covered by the MIC."""
    for at in range(1, len(seed)):
        for bit in range(8):
            damaged = bytearray(seed)
            damaged[at] ^= 1 << bit
            with pytest.raises(DecodeError):
                bthome.decode(bytes(damaged), MAC, KEY)
