# Building advertising data (the AD structures adv.py describes), apart from parsing it: a board
# imports only this half, which costs it less heap.
import struct

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


LEGACY_MAX = const(31)
FLAGS_LE_GENERAL_NO_BREDR = const(0x06)  # LE General Discoverable, BR/EDR not supported
_FLAGS = const(0x01)
_UUID16_COMPLETE = const(0x03)
_NAME_SHORT = const(0x08)
_NAME_COMPLETE = const(0x09)
_TX_POWER = const(0x0A)
_SERVICE_DATA16 = const(0x16)
_MANUFACTURER = const(0xFF)
_AD_DATA_MAX = const(254)


def build(
    flags=FLAGS_LE_GENERAL_NO_BREDR,
    local_name=None,
    service_uuids=(),
    service_data=None,
    manufacturer_data=None,
    tx_power_dbm=None,
    max_len=LEGACY_MAX,
):
    """Raw advertising data from its parts (flags None leaves them out, as a scan response
    should). The name goes last; it is shortened (AD type 0x08) when the complete name does not
    fit in max_len, and left out when not even one byte of it fits. max_len None: no limit.
    ValueError when the rest does not fit."""
    out = bytearray()
    if flags is not None:
        out += _ad(_FLAGS, bytes((flags,)))
    if service_uuids:
        uuids = b""
        for u in service_uuids:
            uuids += struct.pack("<H", u)
        out += _ad(_UUID16_COMPLETE, uuids)
    for ad_type, table in ((_SERVICE_DATA16, service_data), (_MANUFACTURER, manufacturer_data)):
        for key in sorted(table or {}):  # sorted: the same bytes on every interpreter
            out += _ad(ad_type, struct.pack("<H", key) + bytes(table[key]))
    if tx_power_dbm is not None:
        if not -128 <= tx_power_dbm <= 127:
            raise ValueError(f"tx power {tx_power_dbm!r} dBm out of range")
        out += _ad(_TX_POWER, struct.pack("b", tx_power_dbm))
    if max_len is not None and len(out) > max_len:
        raise ValueError("advertising data takes %d bytes, more than %d" % (len(out), max_len))
    if local_name:
        name = local_name.encode()
        room = _AD_DATA_MAX if max_len is None else min(max_len - len(out) - 2, _AD_DATA_MAX)
        if len(name) <= room:
            out += _ad(_NAME_COMPLETE, name)
        else:
            while room > 0 and name[room] & 0xC0 == 0x80:  # cut on a UTF-8 character boundary
                room -= 1
            if room > 0:
                out += _ad(_NAME_SHORT, name[:room])
    return bytes(out)


def _ad(ad_type, value):
    if len(value) > _AD_DATA_MAX:
        raise ValueError("AD structure of %d bytes, at most 254 fit" % len(value))
    return bytes((len(value) + 1, ad_type)) + value
