"""Our BLE codecs against independent decoders: bthome-ble (Home Assistant's BTHome parser) and
beacontools (iBeacon, Eddystone UID/URL/TLM from raw advertising bytes)."""

import json
import time
from pathlib import Path

import pytest
from beacontools import (
    EddystoneTLMFrame,
    EddystoneUIDFrame,
    EddystoneURLFrame,
    IBeaconAdvertisement,
    parse_packet,
)
from bleak.backends.device import BLEDevice
from bthome_ble import BTHomeBluetoothDeviceData
from bthome_ble.const import MEAS_TYPES
from bthome_ble.event import BUTTON_EVENTS
from fuzzing import PROPERTY_EXAMPLES
from habluetooth import BluetoothServiceInfoBleak
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ble_codecs import value_for

from luciole.protocols.ble import adv, bthome, eddystone, ibeacon
from luciole.protocols.ble.bthome import OBJECTS
from luciole.protocols.errors import DecodeError

VECTORS = Path(__file__).parent / "vectors"
BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
SPEC_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SPEC_MAC = "54:48:E6:8F:80:A5"


# --- BTHome -------------------------------------------------------------------------------------


def service_info(service_data, mac):
    return BluetoothServiceInfoBleak(
        name="luciole",
        address=mac,
        rssi=-60,
        manufacturer_data={},
        service_data={BTHOME_UUID: service_data},
        service_uuids=[BTHOME_UUID],
        source="local",
        device=BLEDevice(mac, None, None),
        advertisement=None,
        connectable=False,
        time=time.monotonic(),
        tx_power=None,
    )


def oracle(service_data, mac=SPEC_MAC, key=None):
    """What bthome-ble makes of a frame: ({key: value}, its device state, its sw_version)."""
    device = BTHomeBluetoothDeviceData(key)
    update = device.update(service_info(service_data, mac))
    values = {
        k.key: v.native_value
        for k, v in update.entity_values.items()
        if k.key not in ("signal_strength", "packet_id")  # the packet id is compared apart
    }
    values.update({k.key: v.native_value for k, v in update.binary_entity_values.items()})
    values.update({k.key: v.event_type for k, v in update.events.items()})
    if device.device_type_id is not None:
        values["device_type_id"] = device.device_type_id
    return values, device, update.devices[None].sw_version if update.devices else None


def oracle_keys(measurements):
    """bthome-ble's key for each measurement: its device class, with _1, _2... when several
    objects share a description (0x02 and 0x45 are both "temperature")."""
    formats = [MEAS_TYPES[m["id"]].meas_format for m in measurements]
    keys, seen = [], {}
    for m, fmt in zip(measurements, formats, strict=True):
        if m["name"] in ("device_type_id", "firmware_version"):
            keys.append(m["name"])
            continue
        base = str(fmt.device_class) if hasattr(fmt, "device_class") else str(fmt)
        if formats.count(fmt) > 1:
            seen[base] = seen.get(base, 0) + 1
            base = f"{base}_{seen[base]}"
        keys.append(base)
    return keys


def expected_oracle_values(decoded):
    values = {}
    for key, m in zip(oracle_keys(decoded["measurements"]), decoded["measurements"], strict=True):
        if m["name"] == "firmware_version":
            continue  # bthome-ble turns it into the device's sw_version, checked apart
        if m["name"] == "button":  # an event, fired for known codes only
            if BUTTON_EVENTS.get(m["value"]) is not None:
                values[key] = BUTTON_EVENTS[m["value"]]
            continue
        values[key] = m["value"]
    return values


def assert_agrees_with_oracle(service_data, mac=SPEC_MAC, key=None):
    ours = bthome.decode(service_data, mac, key)
    theirs, device, sw_version = oracle(service_data, mac, key)
    assert theirs == expected_oracle_values(ours)
    assert device.packet_id == ours["packet_id"]
    if ours["encrypted"]:
        assert device.bindkey_verified
        assert device.encryption_counter == ours["counter"]
    firmware = [m["value"] for m in ours["measurements"] if m["name"] == "firmware_version"]
    if firmware:
        parts = firmware[-1].to_bytes(4, "little")
        sw = ".".join(str(part) for part in reversed(parts))
        assert sw_version == sw
    return ours


def bthome_vectors():
    for v in json.loads((VECTORS / "ble-bthome.json").read_text()):
        if v["op"] == "ble.bthome" and "expected" in v:
            spec = v["input"] if isinstance(v["input"], dict) else {"data": v["input"]}
            if spec.get("mac") and ":" not in spec["mac"]:
                continue  # bthome-ble takes the address as BlueZ writes it
            yield pytest.param(spec, id=v["id"])


@pytest.mark.parametrize("spec", list(bthome_vectors()))
def test_bthome_vectors_agree_with_bthome_ble(spec):
    key = bytes.fromhex(spec["key"]) if spec.get("key") else None
    assert_agrees_with_oracle(bytes.fromhex(spec["data"]), spec.get("mac") or SPEC_MAC, key)


def test_spec_example_decrypts_the_same_on_both():
    frame = bytes.fromhex("41e445f3c9962b332211006c7c4519")
    ours = assert_agrees_with_oracle(frame, SPEC_MAC, SPEC_KEY)
    assert [(m["name"], m["value"]) for m in ours["measurements"]] == [
        ("temperature", 25.06),
        ("humidity", 50.55),
    ]


def test_wrong_key_is_refused_by_both():
    frame = bthome.encode([(0x23, True)], mac=SPEC_MAC, key=SPEC_KEY, counter=5, packet_id=3)
    wrong = bytes(16)
    with pytest.raises(DecodeError, match="MIC"):
        bthome.decode(frame, SPEC_MAC, wrong)
    values, device, _ = oracle(frame, SPEC_MAC, wrong)
    assert values == {}
    assert not device.bindkey_verified


def test_downgrade_is_refused_by_both():
    plaintext = bthome.encode([(0x23, True)], packet_id=4)
    receiver = bthome.Receiver({SPEC_MAC: SPEC_KEY})
    with pytest.raises(bthome.DowngradeError):
        receiver.accept(SPEC_MAC, plaintext)
    values, device, _ = oracle(plaintext, SPEC_MAC, SPEC_KEY)
    assert device.downgrade_detected
    assert values == {}


# One object per bthome-ble description, so that its keys carry no _1/_2 postfix.
CANDIDATES = sorted(i for i in OBJECTS if i != 0x00)
FORMAT = {i: repr(MEAS_TYPES[i].meas_format) for i in CANDIDATES}


@st.composite
def measurement_lists(draw, room):
    """Objects that fit `room` bytes of a frame, ids unique per bthome-ble description."""
    ids = draw(st.lists(st.sampled_from(CANDIDATES), unique_by=FORMAT.get, max_size=5))
    measurements = []
    for object_id in ids:
        size = 1 + OBJECTS[object_id][2]
        if size <= room:
            room -= size
            measurements.append((object_id, draw(value_for(object_id))))
    return measurements


macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02X}" for x in b))


# A legacy advert leaves 27 bytes of service data: device info, packet id, then objects (and the
# counter and MIC when encrypted).
@settings(max_examples=PROPERTY_EXAMPLES)
@given(measurement_lists(room=24), st.none() | st.integers(0, 255), st.booleans())
def test_bthome_ble_reads_our_plaintext_frames(measurements, packet_id, trigger):
    frame = bthome.encode(measurements, trigger=trigger, packet_id=packet_id)
    ours = assert_agrees_with_oracle(frame)
    assert [(m["id"], m["value"]) for m in ours["measurements"]] == sorted(
        measurements, key=lambda m: m[0]
    )


@settings(max_examples=PROPERTY_EXAMPLES)
@given(
    measurement_lists(room=16),
    st.integers(0, 255),
    st.binary(min_size=16, max_size=16),
    macs,
    st.integers(0, 2**32 - 1),
)
def test_bthome_ble_decrypts_our_encrypted_frames(measurements, packet_id, key, mac, counter):
    frame = bthome.encode(measurements, mac=mac, key=key, counter=counter, packet_id=packet_id)
    ours = assert_agrees_with_oracle(frame, mac, key)
    assert ours["counter"] == counter


# --- iBeacon and Eddystone against beacontools --------------------------------------------------


def eddystone_advert(frame):
    return adv.build(service_uuids=[eddystone.UUID16], service_data={eddystone.UUID16: frame})


uuids = st.uuids().map(str)
tx_powers = st.integers(-128, 127)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(uuids, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), tx_powers)
def test_beacontools_reads_our_ibeacons(uuid, major, minor, tx_power_dbm):
    payload = ibeacon.encode(uuid, major, minor, tx_power_dbm)
    packet = parse_packet(adv.build(manufacturer_data={ibeacon.COMPANY_ID: payload}))
    assert isinstance(packet, IBeaconAdvertisement)
    assert (packet.uuid, packet.major, packet.minor, packet.tx_power) == (
        uuid,
        major,
        minor,
        tx_power_dbm,
    )
    parsed = adv.parse(adv.build(manufacturer_data={ibeacon.COMPANY_ID: payload}))
    assert ibeacon.decode(parsed["manufacturer_data"][ibeacon.COMPANY_ID]) == {
        "uuid": uuid,
        "major": major,
        "minor": minor,
        "tx_power_dbm": tx_power_dbm,
    }


@settings(max_examples=PROPERTY_EXAMPLES)
@given(st.binary(min_size=10, max_size=10), st.binary(min_size=6, max_size=6), tx_powers)
def test_beacontools_reads_our_eddystone_uid(namespace, instance, tx_power_dbm):
    frame = eddystone.encode_uid(namespace, instance, tx_power_dbm)
    packet = parse_packet(eddystone_advert(frame))
    assert isinstance(packet, EddystoneUIDFrame)
    ours = eddystone.decode(frame)
    assert (packet.namespace, packet.instance, packet.tx_power) == (
        ours["namespace"],
        ours["instance"],
        ours["tx_power_dbm"],
    )
    assert ours["namespace"] == namespace.hex() and ours["instance"] == instance.hex()


url_text = st.lists(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-._~/?=&%")
    | st.sampled_from([".com/", ".org", ".info/", ".gov"]),
    max_size=12,
).map("".join)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(st.sampled_from(["http://www.", "https://www.", "http://", "https://"]), url_text, tx_powers)
def test_beacontools_reads_our_eddystone_urls(scheme, rest, tx_power_dbm):
    url = scheme + rest
    try:
        frame = eddystone.encode_url(url, tx_power_dbm)
    except ValueError:
        return  # longer than 17 bytes once compressed
    packet = parse_packet(eddystone_advert(frame))
    assert isinstance(packet, EddystoneURLFrame)
    assert (packet.url, packet.tx_power) == (url, tx_power_dbm)
    assert eddystone.decode(frame) == {"frame": "url", "tx_power_dbm": tx_power_dbm, "url": url}


@settings(max_examples=PROPERTY_EXAMPLES)
@given(
    st.integers(1, 0xFFFF),
    st.integers(-0x7FFF, 0x7FFF).map(lambda raw: raw / 256),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_beacontools_reads_our_eddystone_tlm(battery_mv, temperature_c, adv_count, uptime_ds):
    frame = eddystone.encode_tlm(battery_mv, temperature_c, adv_count, uptime_ds / 10)
    packet = parse_packet(eddystone_advert(frame))
    assert isinstance(packet, EddystoneTLMFrame)
    # beacontools reads the temperature as unsigned (a known quirk: -0.5 comes out as 255.5) and
    # names the 0.1 s counter "seconds".
    assert packet.temperature == (round(temperature_c * 256) & 0xFFFF) / 256
    assert (packet.voltage, packet.advertising_count, packet.seconds_since_boot) == (
        battery_mv,
        adv_count,
        uptime_ds,
    )
    assert eddystone.decode(frame) == {
        "frame": "tlm",
        "battery_mv": battery_mv,
        "temperature_c": temperature_c,
        "adv_count": adv_count,
        "uptime_s": uptime_ds / 10,
    }


def beacon_vectors(name):
    for v in json.loads((VECTORS / name).read_text()):
        if v["op"] in ("ble.ibeacon", "ble.eddystone") and "expected" in v:
            yield pytest.param(v, id=v["id"])


@pytest.mark.parametrize(
    "vector", [*beacon_vectors("ble-ibeacon.json"), *beacon_vectors("ble-eddystone.json")]
)
def test_beacon_vectors_agree_with_beacontools(vector):
    payload = bytes.fromhex(vector["input"])
    expected = vector["expected"]
    if vector["op"] == "ble.ibeacon":
        packet = parse_packet(adv.build(manufacturer_data={ibeacon.COMPANY_ID: payload}))
        assert (packet.uuid, packet.major, packet.minor, packet.tx_power) == (
            expected["uuid"],
            expected["major"],
            expected["minor"],
            expected["tx_power_dbm"],
        )
        return
    packet = parse_packet(eddystone_advert(payload))
    if expected["frame"] == "uid":
        assert (packet.namespace, packet.instance, packet.tx_power) == (
            expected["namespace"],
            expected["instance"],
            expected["tx_power_dbm"],
        )
    elif expected["frame"] == "url":
        assert (packet.url, packet.tx_power) == (expected["url"], expected["tx_power_dbm"])
    else:
        raw_temperature = int.from_bytes(payload[4:6], "big")
        assert packet.temperature == raw_temperature / 256
        assert packet.voltage == (expected["battery_mv"] or 0)
        assert packet.advertising_count == expected["adv_count"]
        assert packet.seconds_since_boot == round(expected["uptime_s"] * 10)
