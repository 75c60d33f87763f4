# Eddystone (github.com/google/eddystone): the service data of UUID 0xFEAA, after the UUID; the
# advert also lists 0xFEAA among its complete 16-bit service UUIDs. Multi-byte fields big-endian.
#   UID: 0x00 | tx power at 0 m (i8) | namespace (10) | instance (6) | reserved (2, often left out)
#   URL: 0x10 | tx power at 0 m (i8) | scheme code | URL, with expansion codes (at most 17 bytes)
#   TLM: 0x20 | version 0 | battery mV (u16, 0 = none) | temperature (8.8 signed, 0x8000 = none)
#        | adverts sent (u32) | time since boot in 0.1 s (u32)
# Decoding and URL frames here; a beacon's UID and TLM frames in eddystone_encode.py (what a board
# imports), re-exported here.
import struct

from ..errors import DecodeError
from .eddystone_encode import UUID16, encode_tlm, encode_uid  # noqa: F401 (the API)
from .eddystone_encode import i8 as _i8

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_UID = const(0x00)
_URL = const(0x10)
_TLM = const(0x20)
_URL_MAX = const(17)
_TLM_LEN = const(14)
_NO_TEMPERATURE = const(-0x8000)
_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
# Codes 0x00-0x0D; the "/" forms come first so that encoding prefers them.
_EXPANSIONS = (
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
)  # fmt: skip


def decode(service_data):
    """Eddystone service data -> {"frame": "uid", "tx_power_dbm", "namespace", "instance"} (hex
    ids), {"frame": "url", "tx_power_dbm", "url"} or {"frame": "tlm", "battery_mv",
    "temperature_c", "adv_count", "uptime_s"} (None where the beacon has no sensor)."""
    data = bytes(service_data)
    if not data:
        raise DecodeError("empty Eddystone frame")
    frame = data[0]
    if frame == _UID:
        return _decode_uid(data)
    if frame == _URL:
        return _decode_url(data)
    if frame == _TLM:
        return _decode_tlm(data)
    raise DecodeError(f"unsupported Eddystone frame type 0x{frame:02x}")


def encode_url(url, tx_power_dbm):
    """An http(s) URL compressed with the scheme and expansion codes; ValueError if it cannot be
    sent (other scheme, non-ASCII, longer than 17 bytes once compressed)."""
    for scheme, prefix in enumerate(_SCHEMES):  # longest prefix first
        if url.startswith(prefix):
            out = bytearray((_URL, _i8(tx_power_dbm), scheme))
            at = len(prefix)
            break
    else:
        raise ValueError("Eddystone-URL takes http:// and https:// URLs only")
    while at < len(url):
        for code, text in enumerate(_EXPANSIONS):
            if url.startswith(text, at):
                out.append(code)
                at += len(text)
                break
        else:
            char = ord(url[at])
            if not 0x20 < char < 0x7F:
                raise ValueError(f"Eddystone-URL cannot carry {url[at]!r}")
            out.append(char)
            at += 1
    if len(out) - 3 > _URL_MAX:
        raise ValueError(f"URL takes {len(out) - 3} bytes encoded, Eddystone allows 17")
    return bytes(out)


def _decode_uid(data):
    # 20 bytes per spec; many beacons leave out the 2 reserved bytes.
    if len(data) not in (18, 20):
        raise DecodeError(f"Eddystone-UID frame must be 18 or 20 bytes, got {len(data)}")
    return {
        "frame": "uid",
        "tx_power_dbm": struct.unpack_from("b", data, 1)[0],
        "namespace": data[2:12].hex(),
        "instance": data[12:18].hex(),
    }


def _decode_url(data):
    if not 3 <= len(data) <= 3 + _URL_MAX:
        raise DecodeError(f"Eddystone-URL frame must be 3 to 20 bytes, got {len(data)}")
    if data[2] >= len(_SCHEMES):
        raise DecodeError(f"unknown Eddystone-URL scheme code 0x{data[2]:02x}")
    parts = [_SCHEMES[data[2]]]
    for byte in data[3:]:
        if byte < len(_EXPANSIONS):
            parts.append(_EXPANSIONS[byte])
        elif 0x20 < byte < 0x7F:
            parts.append(chr(byte))
        else:
            raise DecodeError(f"reserved byte 0x{byte:02x} in Eddystone-URL")
    return {
        "frame": "url",
        "tx_power_dbm": struct.unpack_from("b", data, 1)[0],
        "url": "".join(parts),
    }


def _decode_tlm(data):
    if len(data) < 2 or data[1] != 0:  # version 1 is the encrypted ETLM
        raise DecodeError("unsupported Eddystone-TLM version")
    if len(data) != _TLM_LEN:
        raise DecodeError(f"Eddystone-TLM frame must be 14 bytes, got {len(data)}")
    battery_mv, temperature, adv_count, uptime = struct.unpack(">HhII", data[2:])
    return {
        "frame": "tlm",
        "battery_mv": battery_mv or None,
        "temperature_c": None if temperature == _NO_TEMPERATURE else temperature / 256,
        "adv_count": adv_count,
        "uptime_s": uptime / 10,
    }
