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

# The value's format in one byte: size in bytes (bits 0-2), _SIGNED (0x08), _BINARY (0x10: a
# sensor that is 0 or 1), and decimal places (bits 5-6, 0x20 each: the value goes as value *
# 10**places, so 2 sends hundredths): 0x4a is 2 bytes, signed, 2 places. An id missing here stops
# decoding: its size is unknown, so nothing after it can be read.
_SIGNED = const(8)
_BINARY = const(16)
_PLACES = const(5)
# (id, format) pairs, in id order. A bytes constant: a board keeps a module's constants for as
# long as its functions, so a tuple spelling the formats out would stay beside the table.
FORMATS = (
    b"\x00\x01"  # packet id
    b"\x01\x01"  # battery %
    b"\x02\x4a"  # temperature, 0.01 degC
    b"\x03\x42"  # humidity, 0.01 %
    b"\x04\x43"  # pressure, 0.01 hPa
    b"\x05\x43"  # illuminance, 0.01 lx
    b"\x09\x01"  # count
    b"\x0c\x62"  # voltage, mV
    b"\x0f\x11"  # generic
    b"\x12\x02"  # CO2 ppm
    b"\x15\x11"  # battery low
    b"\x1a\x11"  # door
    b"\x21\x11"  # motion
    b"\x23\x11"  # occupancy
    b"\x25\x11"  # presence
    b"\x2b\x11"  # tamper
    b"\x2d\x11"  # window
    b"\x2e\x01"  # humidity, %
    b"\x3a\x01"  # button event
    b"\x3d\x02"  # count
    b"\x3e\x04"  # count
    b"\x40\x02"  # distance, mm
    b"\x45\x2a"  # temperature, 0.1 degC
    b"\xf0\x02"  # device type id
    b"\xf1\x04"  # firmware version
)


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
