# Ops for the BLE vectors (ble-*.json), run under CPython and MicroPython alike. Inputs are hex
# strings (or small JSON objects); maps keyed by 16-bit ids come back as sorted [id, bytes] pairs
# so that both interpreters print them in the same order.
import gc
import sys

try:
    from luciole.protocols import ble as _package
    from luciole.protocols.errors import DecodeError
except ImportError:
    from protocols import ble as _package
    from protocols.errors import DecodeError

_PREFIX = _package.__name__ + "."


def _codec(name):
    """The codec module, imported on first use. Compiled from source, the four codecs and the
    runner do not fit MicroPython's 64 KB heap together, so there the previous codec (and its
    helpers) is dropped first; vector files use one codec each, so this happens a few times."""
    if _PREFIX + name not in sys.modules and sys.implementation.name == "micropython":
        for loaded in [m for m in sys.modules if m.startswith(_PREFIX)]:
            del sys.modules[loaded]
            delattr(_package, loaded[len(_PREFIX) :])
        gc.collect()
    return __import__(_PREFIX + name, None, None, [name])


def _bytes(text):
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise DecodeError("not hex") from None


def _pairs(table):
    return [[key, table[key]] for key in sorted(table)]


def _table(pairs):
    return {key: _bytes(value) for key, value in pairs or ()}


def _adv(hex_input):
    parsed = _codec("adv").parse(_bytes(hex_input))
    parsed["service_data"] = _pairs(parsed["service_data"])
    parsed["manufacturer_data"] = _pairs(parsed["manufacturer_data"])
    return parsed


def _adv_build(spec):
    adv = _codec("adv")
    return adv.build(
        flags=spec.get("flags", adv.FLAGS_LE_GENERAL_NO_BREDR),
        local_name=spec.get("local_name"),
        service_uuids=spec.get("service_uuids", ()),
        service_data=_table(spec.get("service_data")),
        manufacturer_data=_table(spec.get("manufacturer_data")),
        tx_power_dbm=spec.get("tx_power_dbm"),
        max_len=spec.get("max_len", adv.LEGACY_MAX),
    )


def _ibeacon(hex_input):
    return _codec("ibeacon").decode(_bytes(hex_input))


def _ibeacon_encode(spec):
    return _codec("ibeacon").encode(
        spec["uuid"], spec["major"], spec["minor"], spec["tx_power_dbm"]
    )


def _eddystone(hex_input):
    return _codec("eddystone").decode(_bytes(hex_input))


def _eddystone_encode(spec):
    eddystone = _codec("eddystone")
    frame = spec["frame"]
    if frame == "uid":
        return eddystone.encode_uid(spec["namespace"], spec["instance"], spec["tx_power_dbm"])
    if frame == "url":
        return eddystone.encode_url(spec["url"], spec["tx_power_dbm"])
    return eddystone.encode_tlm(
        spec["battery_mv"], spec["temperature_c"], spec["adv_count"], spec["uptime_s"]
    )


def _key(spec):
    key = spec.get("key")
    return None if key is None else _bytes(key)


def _bthome(spec):
    """A hex string (plaintext) or {"data": hex, "mac": "AA:..", "key": hex or null}."""
    bthome = _codec("bthome")
    if isinstance(spec, str):
        return bthome.decode(_bytes(spec))
    return bthome.decode(_bytes(spec["data"]), spec.get("mac"), _key(spec))


def _bthome_encode(spec):
    return _codec("bthome").encode(
        [tuple(m) for m in spec["measurements"]],
        mac=spec.get("mac"),
        key=_key(spec),
        counter=spec.get("counter", 0),
        trigger=spec.get("trigger", False),
        packet_id=spec.get("packet_id"),
    )


def _bthome_receiver(spec):
    """{"keys": {mac: hex}, "frames": [[mac, hex], ...]} -> one answer per frame: the decoded
    dict, None for a duplicate, or {"raised": error class} for a refused frame."""
    receiver = _codec("bthome").Receiver({mac: _bytes(key) for mac, key in spec["keys"].items()})
    answers = []
    for mac, data in spec["frames"]:
        try:
            answers.append(receiver.accept(mac, _bytes(data)))
        except DecodeError as e:
            answers.append({"raised": type(e).__name__})
    return answers


OPS = {
    "adv": _adv,
    "adv_build": _adv_build,
    "ibeacon": _ibeacon,
    "ibeacon_encode": _ibeacon_encode,
    "eddystone": _eddystone,
    "eddystone_encode": _eddystone_encode,
    "bthome": _bthome,
    "bthome_encode": _bthome_encode,
    "bthome_receiver": _bthome_receiver,
}
