# The iBeacon payload a beacon sends (layout in ibeacon.py), apart from the decoder: a board
# imports only this, which costs it less heap.
import struct
from binascii import unhexlify

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


COMPANY_ID = const(0x004C)
PREFIX = b"\x02\x15"  # type "proximity beacon", 21 bytes follow


def encode(uuid, major, minor, tx_power_dbm):
    """The manufacturer payload to advertise under COMPANY_ID; ValueError on bad fields."""
    raw = unhexlify(uuid.replace("-", ""))
    if len(raw) != 16:
        raise ValueError("iBeacon UUID must be 16 bytes")
    if not (0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF and -128 <= tx_power_dbm <= 127):
        raise ValueError("iBeacon major/minor/tx power out of range")
    return PREFIX + raw + struct.pack(">HHb", major, minor, tx_power_dbm)
