# BTHome v2 objects on the wire: an id byte then a fixed-size little-endian value. The frame
# around them (device info, encryption) is bthome.py's, and so are the objects' names and units:
# a sensor imports only this, the formats and pack(), which costs its heap a few hundred bytes
# where a table of names would cost kilobytes.
import struct

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


SIGNED = {1: "<b", 2: "<h", 4: "<i"}  # struct formats by size

# The value's format in one small int: size in bytes (bits 0-2), _SIGNED, _BINARY (a sensor
# that is 0 or 1), and decimal places (bits 5-6: the value goes as value * 10**places, so 2 sends
# hundredths). An id missing here stops decoding: its size is unknown, so nothing after it can be
# read.
_SIGNED = const(8)
_BINARY = const(16)
_PLACES = const(5)
# (id, format) pairs, in id order: 50 bytes where a dict would take 0.5 KB of a board's heap
# fmt: off
FORMATS = bytes((
    0x00, 1,  # packet id
    0x01, 1,  # battery %
    0x02, 2 | _SIGNED | 2 << _PLACES,  # temperature, 0.01 degC
    0x03, 2 | 2 << _PLACES,  # humidity, 0.01 %
    0x04, 3 | 2 << _PLACES,  # pressure, 0.01 hPa
    0x05, 3 | 2 << _PLACES,  # illuminance, 0.01 lx
    0x09, 1,  # count
    0x0C, 2 | 3 << _PLACES,  # voltage, mV
    0x0F, 1 | _BINARY,  # generic
    0x12, 2,  # CO2 ppm
    0x15, 1 | _BINARY,  # battery low
    0x1A, 1 | _BINARY,  # door
    0x21, 1 | _BINARY,  # motion
    0x23, 1 | _BINARY,  # occupancy
    0x25, 1 | _BINARY,  # presence
    0x2B, 1 | _BINARY,  # tamper
    0x2D, 1 | _BINARY,  # window
    0x2E, 1,  # humidity, %
    0x3A, 1,  # button event
    0x3D, 2,  # count
    0x3E, 4,  # count
    0x40, 2,  # distance, mm
    0x45, 2 | _SIGNED | 1 << _PLACES,  # temperature, 0.1 degC
    0xF0, 2,  # device type id
    0xF1, 4,  # firmware version
))
# fmt: on


def spec(object_id):
    # (size in bytes, signed, scale) of a known id, else None. scale: None for a binary sensor,
    # 1 for an integer, 10/100/1000 for a value sent in tenths/hundredths/thousandths.
    for i in range(0, len(FORMATS), 2):
        if FORMATS[i] == object_id:
            f = FORMATS[i + 1]
            return f & 7, bool(f & _SIGNED), None if f & _BINARY else 10 ** (f >> _PLACES)
    return None


def pack(object_id, value):
    # One object's bytes; ValueError for an unknown id or a value out of its range.
    found = spec(object_id)
    if found is None:
        raise ValueError("unknown BTHome object id %r" % (object_id,))
    size, signed, scale = found
    if signed:
        low, high = -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
    else:
        low, high = 0, (1 << (8 * size)) - 1
    if scale is None:
        if value not in (0, 1):
            raise ValueError("BTHome object 0x%02x must be a bool, got %r" % (object_id, value))
        raw = int(value)
    elif scale == 1:
        if not isinstance(value, int):
            raise ValueError("BTHome object 0x%02x must be an int, got %r" % (object_id, value))
        raw = value
    else:
        scaled = value * scale
        # the check before round() also refuses NaN and infinities
        raw = round(scaled) if low <= scaled <= high else None
    if raw is None or not low <= raw <= high:
        raise ValueError("BTHome object 0x%02x: %r out of range" % (object_id, value))
    if signed:
        return bytes((object_id,)) + struct.pack(SIGNED[size], raw)
    return bytes((object_id,)) + raw.to_bytes(size, "little")
