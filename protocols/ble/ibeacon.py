# iBeacon: Apple's manufacturer data (company 0x004C), the 23 bytes after the company id:
#   0x02 0x15 | proximity UUID (16) | major (u16 BE) | minor (u16 BE) | tx power at 1 m (i8)
import struct
from binascii import unhexlify

from ..errors import DecodeError

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


COMPANY_ID = const(0x004C)
_PREFIX = b"\x02\x15"  # type "proximity beacon", 21 bytes follow
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


def encode(uuid, major, minor, tx_power_dbm):
    """The manufacturer payload to advertise under COMPANY_ID; ValueError on bad fields."""
    raw = unhexlify(uuid.replace("-", ""))
    if len(raw) != 16:
        raise ValueError("iBeacon UUID must be 16 bytes")
    if not (0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF and -128 <= tx_power_dbm <= 127):
        raise ValueError("iBeacon major/minor/tx power out of range")
    return _PREFIX + raw + struct.pack(">HHb", major, minor, tx_power_dbm)
