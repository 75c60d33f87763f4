"""BLE codecs on CPython: encode -> decode round trips, the BTHome receiver's rules, and the
MicroPython-only pieces (CCM over AES-ECB, the UTF-8 check) held against CPython's own."""

import importlib
import sys
import types

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from fuzzing import PROPERTY_EXAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from luciole.protocols.ble import adv, bthome
from luciole.protocols.ble.bthome import OBJECTS
from luciole.protocols.errors import DecodeError

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MAC = "54:48:E6:8F:80:A5"
uint16 = st.integers(0, 0xFFFF)

# --- advertising data ---------------------------------------------------------------------------


@settings(max_examples=PROPERTY_EXAMPLES)
@given(
    st.none() | st.integers(0, 255),
    st.none() | st.text(min_size=1, max_size=20),
    st.lists(uint16, max_size=3),
    st.dictionaries(uint16, st.binary(max_size=8), max_size=2),
    st.dictionaries(uint16, st.binary(max_size=8), max_size=2),
    st.none() | st.integers(-128, 127),
)
def test_adv_round_trip(flags, name, uuids, service_data, manufacturer_data, tx_power_dbm):
    raw = adv.build(flags, name, uuids, service_data, manufacturer_data, tx_power_dbm, None)
    assert adv.parse(raw) == {
        "flags": flags,
        "local_name": name,
        "local_name_complete": None if name is None else True,
        "tx_power_dbm": tx_power_dbm,
        "service_uuids": uuids,
        "service_data": service_data,
        "manufacturer_data": manufacturer_data,
    }


@settings(max_examples=PROPERTY_EXAMPLES)
@given(st.text(min_size=1, max_size=40), st.binary(max_size=20))
def test_legacy_advert_shortens_the_name_to_fit(name, payload):
    try:
        raw = adv.build(local_name=name, service_data={0xFCD2: payload})
    except ValueError:
        assert 3 + 4 + len(payload) > adv.LEGACY_MAX
        return
    assert len(raw) <= adv.LEGACY_MAX
    parsed = adv.parse(raw)
    assert parsed["service_data"] == {0xFCD2: payload}
    if parsed["local_name"] is None:  # not even its first character fitted
        assert len(raw) + 2 + len(name[0].encode()) > adv.LEGACY_MAX
    else:
        assert name.startswith(parsed["local_name"])
        assert parsed["local_name_complete"] == (parsed["local_name"] == name)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(st.binary(max_size=12))
def test_name_check_agrees_with_cpython_utf8(raw):
    """adv checks UTF-8 by hand so that MicroPython refuses what CPython refuses."""
    try:
        expected = raw.decode("utf-8")
    except UnicodeDecodeError:
        expected = None
    try:
        got = adv.parse(bytes((len(raw) + 1, 0x09)) + raw)["local_name"]
    except DecodeError:
        got = None
    assert got == expected


def test_parse_accepts_any_bytes_like():
    raw = bytes.fromhex("0201060a16d2fc4002c40903bf13")
    assert adv.parse(bytearray(raw)) == adv.parse(memoryview(raw)) == adv.parse(raw)


# --- BTHome -------------------------------------------------------------------------------------


def value_for(object_id):
    _, _, size, signed, scale = OBJECTS[object_id]
    if scale is None:
        return st.booleans()
    bits = 8 * size
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    raw = st.integers(low, high)
    return raw if scale == 1 else raw.map(lambda r: r / scale)


@st.composite
def measurements(draw, room):
    ids = draw(st.lists(st.sampled_from(sorted(i for i in OBJECTS if i)), max_size=4))
    out = []
    for object_id in ids:
        if 1 + OBJECTS[object_id][2] <= room:
            room -= 1 + OBJECTS[object_id][2]
            out.append((object_id, draw(value_for(object_id))))
    return out


@settings(max_examples=PROPERTY_EXAMPLES)
@given(
    measurements(room=16),
    st.none() | st.integers(0, 255),
    st.none() | st.binary(min_size=16, max_size=16),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_bthome_round_trip(objects, packet_id, key, counter, trigger):
    frame = bthome.encode(objects, MAC, key, counter, trigger, packet_id)
    decoded = bthome.decode(frame, MAC, key)
    expected = sorted(objects, key=lambda m: m[0])  # sorted() is stable: equal ids keep order
    assert [(m["id"], m["value"]) for m in decoded["measurements"]] == expected
    for m in decoded["measurements"]:
        name, unit, _, _, scale = OBJECTS[m["id"]]
        assert (m["name"], m["unit"]) == (name, unit)
        assert type(m["value"]) is {None: bool, 1: int}.get(scale, float)
    assert decoded["packet_id"] == packet_id
    assert decoded["trigger"] == trigger
    assert decoded["encrypted"] == (key is not None)
    assert decoded["counter"] == (counter if key else None)


@given(st.binary(max_size=27))
def test_a_bthome_advert_is_what_the_general_builder_makes(frame):
    # the sensor's own builder (no adv_build on its heap) and the general one agree, and a
    # scanner finds the frame in it
    if len(frame) > 24:  # 31 bytes less the flags (3) and the service data's header (4)
        with pytest.raises(ValueError, match="does not fit"):
            bthome.advert(frame)
        with pytest.raises(ValueError, match="more than 31"):
            adv.build(service_data={bthome.UUID16: frame})
        return
    data = bthome.advert(frame)
    assert data == adv.build(service_data={bthome.UUID16: frame})
    assert adv.parse(data)["service_data"] == {bthome.UUID16: frame}


def exact_decimal(raw, scale):
    whole, fraction = divmod(abs(raw), scale)
    digits = len(str(scale)) - 1
    return f"{'-' if raw < 0 else ''}{whole}.{fraction:0{digits}d}"


@pytest.mark.parametrize("object_id", [i for i in OBJECTS if OBJECTS[i][4] not in (None, 1)])
def test_scaled_values_are_the_decimals_sent(object_id):
    """2345 hundredths decode to the double nearest 23.45, which prints as 23.45 (not
    23.450000000000003) on CPython and MicroPython alike."""
    _, _, size, signed, scale = OBJECTS[object_id]
    low = -(1 << (8 * size - 1)) if signed else 0
    for raw in range(low, low + (1 << (8 * size)), max(1, (1 << (8 * size)) // 65536)):
        frame = bytes((0x40, object_id)) + raw.to_bytes(size, "little", signed=signed)
        value = bthome.decode(frame)["measurements"][0]["value"]
        assert value == float(exact_decimal(raw, scale)), raw


def test_decode_accepts_any_bytes_like():
    frame = bthome.encode([(0x23, True)], MAC, KEY, 9, packet_id=1)
    assert bthome.decode(bytearray(frame), MAC, KEY) == bthome.decode(memoryview(frame), MAC, KEY)


def test_mac_may_be_bytes_or_any_case():
    frame = bthome.encode([(0x23, True)], MAC, KEY, 9)
    expected = bthome.decode(frame, MAC, KEY)
    assert bthome.decode(frame, MAC.lower(), KEY) == expected
    assert bthome.decode(frame, bytes.fromhex(MAC.replace(":", "")), KEY) == expected


def test_decode_with_a_key_refuses_plaintext():
    with pytest.raises(bthome.DowngradeError):
        bthome.decode(bthome.encode([(0x23, True)]), MAC, KEY)


def test_encode_refuses_what_it_cannot_send():
    with pytest.raises(ValueError, match="16 bytes"):
        bthome.encode([(0x23, True)], MAC, b"short")
    with pytest.raises(ValueError, match="MAC"):
        bthome.encode([(0x23, True)], None, KEY)
    with pytest.raises(ValueError, match="32 bits"):
        bthome.encode([(0x23, True)], MAC, KEY, counter=2**32)
    with pytest.raises(ValueError, match="out of range"):
        bthome.encode([(0x02, float("nan"))])
    with pytest.raises(ValueError, match="must be an int"):
        bthome.encode([(0x09, 1.5)])


# --- the BTHome receiver ------------------------------------------------------------------------

OTHER_MAC = "A4:C1:38:00:00:42"


def occupancy(occupied, packet_id, counter=None, key=KEY, mac=MAC):
    if counter is None:
        return bthome.encode([(0x23, occupied)], packet_id=packet_id)
    return bthome.encode([(0x23, occupied)], mac, key, counter, packet_id=packet_id)


def test_receiver_drops_repeats_of_the_last_packet_id():
    receiver = bthome.Receiver({MAC: KEY})
    first = receiver.accept(MAC, occupancy(True, 1, counter=10))
    assert first["packet_id"] == 1
    assert receiver.accept(MAC, occupancy(True, 1, counter=10)) is None  # the same advert again
    assert receiver.accept(MAC, occupancy(True, 1, counter=11)) is None  # re-encrypted, same id
    assert receiver.accept(MAC, occupancy(False, 2, counter=12))["packet_id"] == 2
    assert receiver.accept(MAC, occupancy(True, 1, counter=13))["packet_id"] == 1  # not the last


def test_receiver_refuses_a_replayed_advert():
    receiver = bthome.Receiver({MAC: KEY, OTHER_MAC: KEY})
    old = occupancy(True, 1, counter=10)  # recorded by someone in the street
    assert receiver.accept(MAC, old)["counter"] == 10
    assert receiver.accept(MAC, occupancy(False, 2, counter=11))["counter"] == 11
    with pytest.raises(bthome.ReplayError, match="counter 10 is not above 11"):
        receiver.accept(MAC, old)  # would put the car back in the bay
    with pytest.raises(bthome.ReplayError):
        receiver.accept(MAC, occupancy(True, 3, counter=11))  # the same counter, other objects
    assert issubclass(bthome.ReplayError, DecodeError)
    # each device has its own count; a new key starts a new one
    assert receiver.accept(OTHER_MAC, occupancy(True, 1, counter=3, mac=OTHER_MAC)) is not None
    receiver.set_key(MAC, KEY)
    assert receiver.accept(MAC, occupancy(True, 1, counter=1))["counter"] == 1


def test_receiver_keeps_devices_apart():
    receiver = bthome.Receiver()
    assert receiver.accept(MAC, occupancy(True, 5)) is not None
    assert receiver.accept(OTHER_MAC, occupancy(True, 5)) is not None
    assert receiver.accept(MAC.lower(), occupancy(True, 5)) is None  # the same device


def test_receiver_without_packet_id():
    receiver = bthome.Receiver({OTHER_MAC: KEY})
    frame = bthome.encode([(0x02, 20.0)])
    assert receiver.accept(MAC, frame) is not None
    assert receiver.accept(MAC, frame) is not None  # plaintext: maybe the same reading again
    sealed = bthome.encode([(0x02, 20.0)], OTHER_MAC, KEY, counter=1)
    assert receiver.accept(OTHER_MAC, sealed) is not None
    assert receiver.accept(OTHER_MAC, sealed) is None  # the same counter: the same advert
    again = bthome.encode([(0x02, 20.0)], OTHER_MAC, KEY, counter=2)
    assert receiver.accept(OTHER_MAC, again) is not None


def test_receiver_refuses_plaintext_from_a_keyed_device():
    receiver = bthome.Receiver({MAC: KEY})
    with pytest.raises(bthome.DowngradeError, match="plaintext"):
        receiver.accept(MAC, occupancy(True, 1))
    assert issubclass(bthome.DowngradeError, DecodeError)
    assert receiver.accept(OTHER_MAC, occupancy(True, 1)) is not None  # no key: plaintext is fine


def test_receiver_needs_the_key_of_an_encrypted_device():
    receiver = bthome.Receiver({OTHER_MAC: KEY})
    with pytest.raises(DecodeError, match="no key"):
        receiver.accept(MAC, occupancy(True, 1, counter=1))
    with pytest.raises(DecodeError, match="MIC"):  # another device's key
        receiver.accept(OTHER_MAC, occupancy(True, 1, counter=1, mac=MAC))


def test_receiver_key_changes():
    receiver = bthome.Receiver()
    receiver.set_key(MAC, KEY)
    assert receiver.accept(MAC, occupancy(True, 1, counter=1)) is not None
    receiver.set_key(MAC, None)
    assert receiver.accept(MAC, occupancy(True, 2)) is not None
    with pytest.raises(DecodeError, match="16 bytes"):
        receiver.set_key(MAC, b"short")


# --- CCM for MicroPython, checked against cryptography's AESCCM ---------------------------------


class _FakeCryptolib(types.ModuleType):
    """MicroPython's cryptolib.aes in ECB mode, built on cryptography."""

    class aes:
        def __init__(self, key, mode):
            assert mode == 1
            self._encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()

        def encrypt(self, data):
            return self._encryptor.update(bytes(data))


@pytest.fixture(scope="module")
def ccm(request):
    saved = sys.modules.get("cryptolib")
    sys.modules["cryptolib"] = _FakeCryptolib("cryptolib")
    module = importlib.import_module("luciole.protocols.ble.ccm")
    yield module
    sys.modules.pop("luciole.protocols.ble.ccm")
    if saved is None:
        sys.modules.pop("cryptolib")
    else:
        sys.modules["cryptolib"] = saved


@settings(max_examples=PROPERTY_EXAMPLES)
@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=13, max_size=13),
    st.binary(max_size=40),
)
def test_ccm_matches_aesccm(ccm, key, nonce, data):
    sealed = ccm.CCM(key).encrypt(nonce, data, None)
    assert sealed == AESCCM(key, 4).encrypt(nonce, data, None)
    assert ccm.CCM(key).decrypt(nonce, sealed, None) == data
    damaged = bytearray(sealed)
    damaged[len(data) // 2] ^= 0x01
    with pytest.raises(DecodeError, match="MIC"):
        ccm.CCM(key).decrypt(nonce, bytes(damaged), None)
