# BTHome v2 objects: an id byte then a fixed-size little-endian value. The frame around them
# (device info, encryption) is bthome.py's. The table and pack() only: a sensor imports them to
# send; parsing is bthome.py's, the decoder's.
import struct

SIGNED = {1: "<b", 2: "<h", 4: "<i"}  # struct formats by size

# id: (name, unit, size in bytes, signed, scale). scale None marks a binary sensor (0 or 1), 1 an
# integer, 10/100/1000 a value sent in tenths/hundredths/thousandths. Units are SenML's (RFC 8428,
# RFC 8798) so the gateway passes them through. An id missing here stops decoding: its size is
# unknown, so nothing after it can be read.
OBJECTS = {
    0x00: ("packet_id", None, 1, False, 1),
    0x01: ("battery", "%EL", 1, False, 1),
    0x02: ("temperature", "Cel", 2, True, 100),
    0x03: ("humidity", "%RH", 2, False, 100),
    0x04: ("pressure", "hPa", 3, False, 100),
    0x05: ("illuminance", "lx", 3, False, 100),
    0x09: ("count", None, 1, False, 1),
    0x0C: ("voltage", "V", 2, False, 1000),
    0x0F: ("generic", None, 1, False, None),
    0x12: ("co2", "ppm", 2, False, 1),
    0x15: ("battery_low", None, 1, False, None),
    0x1A: ("door", None, 1, False, None),
    0x21: ("motion", None, 1, False, None),
    0x23: ("occupancy", None, 1, False, None),
    0x25: ("presence", None, 1, False, None),
    0x2B: ("tamper", None, 1, False, None),
    0x2D: ("window", None, 1, False, None),
    0x2E: ("humidity", "%RH", 1, False, 1),
    0x3A: ("button", None, 1, False, 1),
    0x3D: ("count", None, 2, False, 1),
    0x3E: ("count", None, 4, False, 1),
    0x40: ("distance", "mm", 2, False, 1),
    0x45: ("temperature", "Cel", 2, True, 10),
    0xF0: ("device_type_id", None, 2, False, 1),
    0xF1: ("firmware_version", None, 4, False, 1),
}


def pack(object_id, value):
    """One object's bytes; ValueError for an unknown id or a value out of its range."""
    spec = OBJECTS.get(object_id)
    if spec is None:
        raise ValueError(f"unknown BTHome object id {object_id!r}")
    name, _, size, signed, scale = spec
    if signed:
        low, high = -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
    else:
        low, high = 0, (1 << (8 * size)) - 1
    if scale is None:
        if value not in (0, 1):
            raise ValueError(f"BTHome {name} must be a bool, got {value!r}")
        raw = int(value)
    elif scale == 1:
        if not isinstance(value, int):
            raise ValueError(f"BTHome {name} must be an int, got {value!r}")
        raw = value
    else:
        scaled = value * scale
        if not low <= scaled <= high:  # also refuses NaN and infinities
            raise ValueError(f"BTHome {name} {value!r} out of range")
        raw = round(scaled)
    if not low <= raw <= high:
        raise ValueError(f"BTHome {name} {value!r} out of range")
    if signed:
        return bytes((object_id,)) + struct.pack(SIGNED[size], raw)
    return bytes((object_id,)) + raw.to_bytes(size, "little")
