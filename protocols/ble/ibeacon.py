# iBeacon: Apple's manufacturer data (company 0x004C), the 23 bytes after the company id:
#   0x02 0x15 | proximity UUID (16) | major (u16 BE) | minor (u16 BE) | tx power at 1 m (i8)
# Decoding here; encoding in ibeacon_encode.py (what a board imports), re-exported here.
import struct

from ..errors import DecodeError
from .ibeacon_encode import COMPANY_ID, encode  # noqa: F401 (the API)
from .ibeacon_encode import PREFIX as _PREFIX

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_LEN = const(23)


def decode(payload):
    """Manufacturer payload -> {"uuid": "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", "major", "minor",
    "tx_power_dbm"}."""
    data = bytes(payload)
    if data[:2] != _PREFIX:
        raise DecodeError("not an iBeacon payload (it starts 02 15)")
    if len(data) != _LEN:
        raise DecodeError(f"iBeacon payload must be 23 bytes, got {len(data)}")
    major, minor, tx_power_dbm = struct.unpack(">HHb", data[18:])
    h = data[2:18].hex()
    return {
        "uuid": "-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:])),
        "major": major,
        "minor": minor,
        "tx_power_dbm": tx_power_dbm,
    }
