# The BTHome v2 frames a sensor sends (layout, nonce and encryption in bthome.py), apart from the
# decoder and the gateway's Receiver: a board imports only this, which costs it less heap.
import struct
from binascii import unhexlify

from ..errors import DecodeError
from .bthome_objects import pack

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
_NONCE_UUID = b"\xd2\xfc"  # the UUID as it goes on air, little-endian
_ENCRYPTED = const(0x01)
_TRIGGER = const(0x04)
_VERSION_2 = const(0x40)
_KEY_LEN = const(16)
_MIC_LEN = const(4)
# BTHome rides in legacy adverts: 31 bytes less the AD header and UUID. The cap also bounds the
# work and memory one frame can cost.
_MAX_LEN = const(27)
_CIPHER_CACHE_MAX = const(1024)


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


def nonce(mac, info, counter_bytes):
    return mac_bytes(mac) + _NONCE_UUID + bytes((info,)) + counter_bytes


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
