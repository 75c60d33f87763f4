# The BTHome v2 frames a sensor sends (layout, nonce and encryption in bthome.py), apart from the
# decoder and the gateway's Receiver: a board imports only this, which costs it less heap.
# Objects on the wire: an id byte then a fixed-size little-endian value. Their names and units
# are bthome.py's: here only their formats, where a table of names would cost a board kilobytes.
import struct
from binascii import unhexlify

from ..errors import DecodeError

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


try:
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM as _Cipher
except ImportError:  # MicroPython: CCM in Python over cryptolib
    from .ccm import CCM as _Cipher

UUID16 = const(0xFCD2)
_UUID_ON_AIR = b"\xd2\xfc"  # the UUID as it goes on air, little-endian
# AD structures (length, type, value): the flags, LE General Discoverable and no BR/EDR
_AD_FLAGS = b"\x02\x01\x06"
_AD_SERVICE_DATA16 = const(0x16)
_LEGACY_MAX = const(31)
_ENCRYPTED = const(0x01)
_TRIGGER = const(0x04)
_VERSION_2 = const(0x40)
_KEY_LEN = const(16)
_MIC_LEN = const(4)
# BTHome rides in legacy adverts: 31 bytes less the AD header and UUID. The cap also bounds the
# work and memory one frame can cost.
_MAX_LEN = const(27)
_CIPHER_CACHE_MAX = const(1024)
_MUST_BE = const("BTHome object 0x%02x must be %s, got %r")


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
            raise ValueError(_MUST_BE % (object_id, "a bool", value))
        raw = int(value)
    elif scale == 1:
        if not isinstance(value, int):
            raise ValueError(_MUST_BE % (object_id, "an int", value))
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


def encode(measurements, mac=None, key=None, counter=0, trigger=False, packet_id=None):
    """[(object id, value), ...] -> service data (after the UUID). With a key (and the MAC the
    advert goes out from) the objects are encrypted under the given counter, which must grow with
    every new frame. Raises ValueError on unknown ids or values out of range."""
    info = _VERSION_2 | (_TRIGGER if trigger else 0) | (0 if key is None else _ENCRYPTED)
    # Ascending ids as the spec asks; the index keeps equal ids in the caller's order. Loops,
    # not comprehensions: each of those costs a board's heap a function.
    order = []
    for i in range(len(measurements)):
        order.append((measurements[i][0], i))
    order.sort()
    payload = b"" if packet_id is None else pack(0x00, packet_id)
    for _, i in order:
        object_id, value = measurements[i]
        payload += pack(object_id, value)
    if key is None:
        frame = bytes((info,)) + payload
    else:
        if not 0 <= counter <= 0xFFFFFFFF:
            raise ValueError("BTHome counter must fit in 32 bits")
        counter_bytes = struct.pack("<I", counter)
        # a key of another length: cached_cipher raises DecodeError, a ValueError
        sealed = cached_cipher(key).encrypt(nonce(mac, info, counter_bytes), payload, None)
        frame = bytes((info,)) + sealed[:-_MIC_LEN] + counter_bytes + sealed[-_MIC_LEN:]
    if len(frame) > _MAX_LEN:
        raise ValueError("BTHome frame of %d bytes does not fit a legacy advert" % len(frame))
    return frame


def advert(frame):
    """The advertising data of a BTHome sensor: the flags, then the frame as service data of
    UUID16. What adv_build.build(service_data={UUID16: frame}) makes, without that module on
    the sensor's heap. ValueError when that takes more than a legacy advert's 31 bytes."""
    if len(frame) > _LEGACY_MAX - 7:  # the flags, the service data's length, type and UUID
        raise ValueError("BTHome frame of %d bytes does not fit a legacy advert" % len(frame))
    return _AD_FLAGS + bytes((len(frame) + 3, _AD_SERVICE_DATA16)) + _UUID_ON_AIR + frame


def nonce(mac, info, counter_bytes):
    return mac_bytes(mac) + _UUID_ON_AIR + bytes((info,)) + counter_bytes


def mac_bytes(mac):
    if mac is None:
        raise DecodeError("encrypted BTHome needs the device's MAC address")
    if isinstance(mac, str):
        try:
            mac = unhexlify(mac.replace(":", ""))
        except ValueError:
            raise DecodeError(f"bad MAC address {mac!r}") from None
    if len(mac) != 6:
        raise DecodeError("a MAC address has 6 bytes")
    return bytes(mac)


def new_cipher(key):
    if len(key) != _KEY_LEN:
        raise DecodeError("BTHome key must be 16 bytes")
    return _Cipher(bytes(key), _MIC_LEN)


_ciphers = {}


def cached_cipher(key):
    # Building AESCCM costs more than decrypting one frame: keep one per key.
    key = bytes(key)
    cipher = _ciphers.get(key)
    if cipher is None:
        if len(_ciphers) >= _CIPHER_CACHE_MAX:
            _ciphers.clear()
        cipher = _ciphers[key] = new_cipher(key)
    return cipher
