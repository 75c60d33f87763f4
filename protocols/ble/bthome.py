# BTHome v2 (https://bthome.io): the service data of UUID 0xFCD2, after the UUID.
#   plaintext: device-info | objects
#   encrypted: device-info | AES-CCM(objects) | counter (u32 LE) | MIC (4)
# device-info: bit 0 encrypted, bit 2 trigger-based, bits 5-7 version (2). Objects (id byte and
# fixed-size value, ids low to high, packet id 0x00 first) are bthome_encode.py's. AES-CCM: 4-byte
# MIC, nonce = MAC | d2 fc | device-info | counter.
# Decoding here; encoding in bthome_encode.py (what a board imports), re-exported here.
import struct

from ..errors import DecodeError
from .bthome_encode import FORMATS, SIGNED, UUID16, advert, encode, spec  # noqa: F401 (the API)
from .bthome_encode import cached_cipher as _cached_cipher
from .bthome_encode import mac_bytes as _mac_bytes
from .bthome_encode import new_cipher as _new_cipher
from .bthome_encode import nonce as _nonce

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


try:
    from cryptography.exceptions import InvalidTag as _BadMic
except ImportError:  # MicroPython: ccm.py raises DecodeError on a bad MIC
    _BadMic = DecodeError

_ENCRYPTED = const(0x01)
_TRIGGER = const(0x04)
_MIC_LEN = const(4)
_ENCRYPTION_OVERHEAD = const(8)  # counter + MIC
# BTHome rides in legacy adverts: 31 bytes less the AD header and UUID. The cap also bounds the
# work and memory one frame can cost.
_MAX_LEN = const(27)


# id: (name, unit). Units are SenML's (RFC 8428, RFC 8798) so the gateway passes them through.
NAMES = {
    0x00: ("packet_id", None),
    0x01: ("battery", "%EL"),
    0x02: ("temperature", "Cel"),
    0x03: ("humidity", "%RH"),
    0x04: ("pressure", "hPa"),
    0x05: ("illuminance", "lx"),
    0x09: ("count", None),
    0x0C: ("voltage", "V"),
    0x0F: ("generic", None),
    0x12: ("co2", "ppm"),
    0x15: ("battery_low", None),
    0x1A: ("door", None),
    0x21: ("motion", None),
    0x23: ("occupancy", None),
    0x25: ("presence", None),
    0x2B: ("tamper", None),
    0x2D: ("window", None),
    0x2E: ("humidity", "%RH"),
    0x3A: ("button", None),
    0x3D: ("count", None),
    0x3E: ("count", None),
    0x40: ("distance", "mm"),
    0x45: ("temperature", "Cel"),
    0xF0: ("device_type_id", None),
    0xF1: ("firmware_version", None),
}
# id: (name, unit, size in bytes, signed, scale), the decoder's view (scale: bthome_encode.spec)
OBJECTS = {i: NAMES[i] + spec(i) for i in (FORMATS[k] for k in range(0, len(FORMATS), 2))}


class DowngradeError(DecodeError):
    """A device that has a key sent a plaintext frame."""


def decode(service_data, mac=None, key=None):
    """BTHome v2 service data -> {"version", "encrypted", "trigger", "packet_id", "counter",
    "measurements": [{"id", "name", "value", "unit"}]}. Encrypted frames need the device's MAC
    ("AA:BB:CC:DD:EE:FF" or 6 bytes) and its 16-byte key; given a key, a plaintext frame raises
    DowngradeError."""
    return _decode(bytes(service_data), mac, None if key is None else _cached_cipher(key))


class ReplayError(DecodeError):
    """An encrypted frame whose counter is not above the last one accepted from its device."""


class Receiver:
    """The gateway's view of many devices: per-MAC keys, refusal of plaintext from a device that
    has a key (a downgrade), refusal of an encrypted frame whose counter does not grow (a replay:
    a device's counter grows with every frame, across its reboots), and duplicate suppression: a
    frame with the packet id of the last one accepted from its MAC is a repeat. Plaintext frames
    without a packet id are all new."""

    def __init__(self, keys=None):
        self._ciphers = {}  # MAC bytes -> cipher
        self._last = {}  # MAC bytes -> (service data, packet id) of the last accepted frame
        self._counters = {}  # MAC bytes -> the highest encryption counter accepted
        for mac, key in (keys or {}).items():
            self.set_key(mac, key)

    def set_key(self, mac, key, counter=None):
        """Gives a device its key; None makes it a plaintext device again. A new key starts a
        new count, unless counter (the highest accepted before, e.g. kept across a restart of
        the gateway) says where that device's count stands."""
        mac = _mac_bytes(mac)
        if key is None:
            self._ciphers.pop(mac, None)
        else:
            self._ciphers[mac] = _new_cipher(key)
        self._last.pop(mac, None)
        self._counters.pop(mac, None)
        if counter is not None and key is not None:
            self._counters[mac] = counter

    def accept(self, mac, service_data):
        """The decoded frame, or None when it repeats the last accepted packet of that device."""
        mac = _mac_bytes(mac)
        data = bytes(service_data)
        last = self._last.get(mac)
        if last is not None and last[0] == data and (last[1] is not None or data[0] & _ENCRYPTED):
            return None  # the same advert again (same packet id or counter): no need to decrypt
        decoded = _decode(data, mac, self._ciphers.get(mac))
        counter = decoded["counter"]
        if counter is not None:
            highest = self._counters.get(mac)
            if highest is not None and counter <= highest:
                raise ReplayError(f"counter {counter} is not above {highest}: a replayed advert")
            self._counters[mac] = counter
        packet_id = decoded["packet_id"]
        if packet_id is not None and last is not None and last[1] == packet_id:
            return None
        self._last[mac] = (data, packet_id)
        return decoded


def _parse(payload):
    """Objects -> (packet id or None, [{"id", "name", "value", "unit"}])."""
    packet_id = None
    measurements = []
    size_all = len(payload)
    at = 0
    while at < size_all:
        object_id = payload[at]
        spec = OBJECTS.get(object_id)
        if spec is None:
            raise DecodeError(f"unknown BTHome object id 0x{object_id:02x}")
        name, unit, size, signed, scale = spec
        at += 1
        end = at + size
        if end > size_all:
            raise DecodeError(f"BTHome object 0x{object_id:02x} truncated")
        if signed:
            raw = struct.unpack_from(SIGNED[size], payload, at)[0]
        else:
            raw = int.from_bytes(payload[at:end], "little")
        at = end
        if object_id == 0x00:
            packet_id = raw
            continue
        if scale is None:
            if raw > 1:
                raise DecodeError(f"BTHome {name} must be 0 or 1, got {raw}")
            value = raw == 1
        elif scale == 1:
            value = raw
        else:
            value = raw / scale  # division, not * 0.01: 2345 / 100 is exactly the double of 23.45
        measurements.append({"id": object_id, "name": name, "value": value, "unit": unit})
    return packet_id, measurements


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
    packet_id, measurements = _parse(payload)
    return {
        "version": 2,
        "encrypted": counter is not None,
        "trigger": bool(info & _TRIGGER),
        "packet_id": packet_id,
        "counter": counter,
        "measurements": measurements,
    }
