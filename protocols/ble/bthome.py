# BTHome v2 (https://bthome.io): the service data of UUID 0xFCD2, after the UUID.
#   plaintext: device-info | objects
#   encrypted: device-info | AES-CCM(objects) | counter (u32 LE) | MIC (4)
# device-info: bit 0 encrypted, bit 2 trigger-based, bits 5-7 version (2). Objects (id byte and
# fixed-size value, ids low to high, packet id 0x00 first) are bthome_objects.py's. AES-CCM: 4-byte
# MIC, nonce = MAC | d2 fc | device-info | counter.
import struct
from binascii import unhexlify

from ..errors import DecodeError
from .bthome_objects import pack, parse

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


try:
    from cryptography.exceptions import InvalidTag as _BadMic
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM as _Cipher
except ImportError:  # MicroPython: CCM in Python over cryptolib
    from .ccm import CCM as _Cipher

    _BadMic = DecodeError

UUID16 = const(0xFCD2)
_NONCE_UUID = b"\xd2\xfc"  # the UUID as it goes on air, little-endian
_ENCRYPTED = const(0x01)
_TRIGGER = const(0x04)
_VERSION_2 = const(0x40)
_KEY_LEN = const(16)
_MIC_LEN = const(4)
_ENCRYPTION_OVERHEAD = const(8)  # counter + MIC
# BTHome rides in legacy adverts: 31 bytes less the AD header and UUID. The cap also bounds the
# work and memory one frame can cost.
_MAX_LEN = const(27)
_CIPHER_CACHE_MAX = const(1024)


class DowngradeError(DecodeError):
    """A device that has a key sent a plaintext frame."""


def decode(service_data, mac=None, key=None):
    """BTHome v2 service data -> {"version", "encrypted", "trigger", "packet_id", "counter",
    "measurements": [{"id", "name", "value", "unit"}]}. Encrypted frames need the device's MAC
    ("AA:BB:CC:DD:EE:FF" or 6 bytes) and its 16-byte key; given a key, a plaintext frame raises
    DowngradeError."""
    return _decode(bytes(service_data), mac, None if key is None else _cached_cipher(key))


def encode(measurements, mac=None, key=None, counter=0, trigger=False, packet_id=None):
    """[(object id, value), ...] -> service data (after the UUID). With a key (and the MAC the
    advert goes out from) the objects are encrypted under the given counter, which must grow with
    every new frame. Raises ValueError on unknown ids or values out of range."""
    info = _VERSION_2 | (_TRIGGER if trigger else 0) | (0 if key is None else _ENCRYPTED)
    objects = [] if packet_id is None else [(0x00, packet_id)]
    # Ascending ids as the spec asks; the index keeps equal ids in the caller's order.
    order = sorted(range(len(measurements)), key=lambda i: (measurements[i][0], i))
    objects += [measurements[i] for i in order]
    payload = b"".join(pack(object_id, value) for object_id, value in objects)
    if key is None:
        frame = bytes((info,)) + payload
    else:
        if len(key) != _KEY_LEN:
            raise ValueError("BTHome key must be 16 bytes")
        if not 0 <= counter <= 0xFFFFFFFF:
            raise ValueError("BTHome counter must fit in 32 bits")
        counter_bytes = struct.pack("<I", counter)
        sealed = _cached_cipher(key).encrypt(_nonce(mac, info, counter_bytes), payload, None)
        frame = bytes((info,)) + sealed[:-_MIC_LEN] + counter_bytes + sealed[-_MIC_LEN:]
    if len(frame) > _MAX_LEN:
        raise ValueError(f"BTHome frame of {len(frame)} bytes does not fit a legacy advert")
    return frame


class Receiver:
    """The gateway's view of many devices: per-MAC keys, refusal of plaintext from a device that
    has a key (a downgrade), and duplicate suppression: a frame with the packet id of the last one
    accepted from its MAC is a repeat. Plaintext frames without a packet id are all new."""

    def __init__(self, keys=None):
        self._ciphers = {}  # MAC bytes -> cipher
        self._last = {}  # MAC bytes -> (service data, packet id) of the last accepted frame
        for mac, key in (keys or {}).items():
            self.set_key(mac, key)

    def set_key(self, mac, key):
        """Gives a device its key; None makes it a plaintext device again."""
        mac = _mac_bytes(mac)
        if key is None:
            self._ciphers.pop(mac, None)
        else:
            self._ciphers[mac] = _new_cipher(key)
        self._last.pop(mac, None)

    def accept(self, mac, service_data):
        """The decoded frame, or None when it repeats the last accepted packet of that device."""
        mac = _mac_bytes(mac)
        data = bytes(service_data)
        last = self._last.get(mac)
        if last is not None and last[0] == data and (last[1] is not None or data[0] & _ENCRYPTED):
            return None  # the same advert again (same packet id or counter): no need to decrypt
        decoded = _decode(data, mac, self._ciphers.get(mac))
        packet_id = decoded["packet_id"]
        if packet_id is not None and last is not None and last[1] == packet_id:
            return None
        self._last[mac] = (data, packet_id)
        return decoded


def _decode(data, mac, cipher):
    if not data:
        raise DecodeError("empty BTHome service data")
    if len(data) > _MAX_LEN:
        raise DecodeError(f"BTHome frame of {len(data)} bytes is longer than a legacy advert")
    info = data[0]
    if info >> 5 != 2:
        raise DecodeError(f"unsupported BTHome version {info >> 5}")
    counter = None
    if cipher is not None and not info & _ENCRYPTED:
        raise DowngradeError("plaintext BTHome frame from a device that has a key")
    if info & _ENCRYPTED:
        if cipher is None:
            raise DecodeError("encrypted BTHome frame and no key for this device")
        if len(data) < 1 + _ENCRYPTION_OVERHEAD:
            raise DecodeError("encrypted BTHome frame too short")
        counter_bytes = data[-8:-4]
        nonce = _nonce(mac, info, counter_bytes)
        try:
            payload = cipher.decrypt(nonce, data[1:-8] + data[-_MIC_LEN:], None)
        except _BadMic:
            raise DecodeError("BTHome MIC mismatch: wrong key or damaged frame") from None
        counter = struct.unpack("<I", counter_bytes)[0]
    else:
        payload = data[1:]
    packet_id, measurements = parse(payload)
    return {
        "version": 2,
        "encrypted": counter is not None,
        "trigger": bool(info & _TRIGGER),
        "packet_id": packet_id,
        "counter": counter,
        "measurements": measurements,
    }


def _nonce(mac, info, counter_bytes):
    return _mac_bytes(mac) + _NONCE_UUID + bytes((info,)) + counter_bytes


def _mac_bytes(mac):
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


def _new_cipher(key):
    if len(key) != _KEY_LEN:
        raise DecodeError("BTHome key must be 16 bytes")
    return _Cipher(bytes(key), _MIC_LEN)


_ciphers = {}


def _cached_cipher(key):
    # Building AESCCM costs more than decrypting one frame: keep one per key.
    key = bytes(key)
    cipher = _ciphers.get(key)
    if cipher is None:
        if len(_ciphers) >= _CIPHER_CACHE_MAX:
            _ciphers.clear()
        cipher = _ciphers[key] = _new_cipher(key)
    return cipher
