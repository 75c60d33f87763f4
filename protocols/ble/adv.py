# Advertising data (Bluetooth Core Vol 3 Part C §11, Supplement Part A): a run of AD structures
#   length | AD type | data     (length counts type + data; a zero length ends the data early)
# Multi-byte values little-endian. Legacy adverts carry at most 31 bytes, extended ones more.
# Parsing here; building in adv_build.py (what a board imports), re-exported here.
import struct

from ..errors import DecodeError
from .adv_build import FLAGS_LE_GENERAL_NO_BREDR, LEGACY_MAX, build  # noqa: F401 (the API)

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_FLAGS = const(0x01)
_UUID16_INCOMPLETE = const(0x02)
_UUID16_COMPLETE = const(0x03)
_NAME_SHORT = const(0x08)
_NAME_COMPLETE = const(0x09)
_TX_POWER = const(0x0A)
_SERVICE_DATA16 = const(0x16)
_MANUFACTURER = const(0xFF)


def parse(data):
    """Raw advertising data -> {"flags", "local_name", "local_name_complete", "tx_power_dbm",
    "service_uuids": [uuid16], "service_data": {uuid16: bytes}, "manufacturer_data":
    {company_id: bytes}}; None for what is absent. Unknown AD types are skipped."""
    data = bytes(data)
    result = {
        "flags": None,
        "local_name": None,
        "local_name_complete": None,
        "tx_power_dbm": None,
        "service_uuids": [],
        "service_data": {},
        "manufacturer_data": {},
    }
    at = 0
    while at < len(data):
        length = data[at]
        if length == 0:
            break  # early termination: the rest is padding
        end = at + 1 + length
        if end > len(data):
            raise DecodeError(f"AD structure at byte {at} overruns the advert")
        ad_type = data[at + 1]
        value = data[at + 2 : end]
        at = end
        if ad_type == _FLAGS:
            if not value:
                raise DecodeError("empty flags AD structure")
            result["flags"] = value[0]
        elif ad_type in (_UUID16_INCOMPLETE, _UUID16_COMPLETE):
            if len(value) % 2:
                raise DecodeError("16-bit service UUID list of odd length")
            for i in range(0, len(value), 2):
                result["service_uuids"].append(value[i] | value[i + 1] << 8)
        elif ad_type in (_SERVICE_DATA16, _MANUFACTURER):
            if len(value) < 2:
                raise DecodeError(f"AD type 0x{ad_type:02x} needs at least 2 bytes")
            table = "service_data" if ad_type == _SERVICE_DATA16 else "manufacturer_data"
            result[table][value[0] | value[1] << 8] = value[2:]
        elif ad_type == _TX_POWER:
            if len(value) != 1:
                raise DecodeError("TX power level must be 1 byte")
            result["tx_power_dbm"] = struct.unpack("b", value)[0]
        elif ad_type == _NAME_COMPLETE or (ad_type == _NAME_SHORT and result["local_name"] is None):
            # A complete name wins over a shortened one (advert + scan response).
            result["local_name"] = _utf8(value)
            result["local_name_complete"] = ad_type == _NAME_COMPLETE
    return result


def _utf8(raw):
    # Checked by hand (RFC 3629 well-formed sequences): MicroPython's decode lets overlong forms,
    # surrogates and code points past U+10FFFF through, and both interpreters must agree.
    at = 0
    while at < len(raw):
        lead = raw[at]
        if lead < 0x80:
            at += 1
            continue
        if 0xC2 <= lead <= 0xDF:
            size, low, high = 2, 0x80, 0xBF
        elif 0xE0 <= lead <= 0xEF:
            size = 3
            low = 0xA0 if lead == 0xE0 else 0x80  # no overlong forms
            high = 0x9F if lead == 0xED else 0xBF  # no surrogates
        elif 0xF0 <= lead <= 0xF4:
            size = 4
            low = 0x90 if lead == 0xF0 else 0x80
            high = 0x8F if lead == 0xF4 else 0xBF  # nothing past U+10FFFF
        else:
            raise DecodeError("local name is not UTF-8")
        tail = raw[at + 1 : at + size]
        if len(tail) != size - 1 or not low <= tail[0] <= high:
            raise DecodeError("local name is not UTF-8")
        for byte in tail[1:]:
            if not 0x80 <= byte <= 0xBF:
                raise DecodeError("local name is not UTF-8")
        at += size
    return raw.decode("utf-8")
