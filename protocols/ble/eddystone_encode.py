# The Eddystone frames a beacon sends, UID and TLM (layouts in eddystone.py), apart from the
# decoder and the URL tables: a board imports only this, which costs it less heap.
import struct
from binascii import unhexlify

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


UUID16 = const(0xFEAA)
_UID = const(0x00)
_TLM = const(0x20)
_NO_TEMPERATURE = const(-0x8000)


def encode_uid(namespace, instance, tx_power_dbm):
    """Namespace (10 bytes) and instance (6 bytes), as bytes or hex; tx power measured at 0 m."""
    namespace = _id_bytes(namespace, 10, "namespace")
    instance = _id_bytes(instance, 6, "instance")
    return bytes((_UID, i8(tx_power_dbm))) + namespace + instance + b"\x00\x00"


def encode_tlm(battery_mv, temperature_c, adv_count, uptime_s):
    """Unencrypted TLM; None for a battery or temperature the beacon cannot measure."""
    battery_mv = 0 if battery_mv is None else battery_mv
    if temperature_c is None:
        temperature = _NO_TEMPERATURE
    else:
        scaled = temperature_c * 256
        if not -0x7FFF <= scaled <= 0x7FFF:  # also refuses NaN
            raise ValueError(f"temperature {temperature_c!r} out of the 8.8 range")
        temperature = round(scaled)
    uptime = uptime_s * 10
    if not 0 <= uptime <= 0xFFFFFFFF:
        raise ValueError(f"uptime {uptime_s!r} s out of range")
    if not (0 <= battery_mv <= 0xFFFF and 0 <= adv_count <= 0xFFFFFFFF):
        raise ValueError("battery_mv or adv_count out of range")
    return bytes((_TLM, 0)) + struct.pack(
        ">HhII", battery_mv, temperature, adv_count, round(uptime)
    )


def _id_bytes(value, size, what):
    if isinstance(value, str):
        value = unhexlify(value)
    if len(value) != size:
        raise ValueError(f"Eddystone {what} must be {size} bytes")
    return bytes(value)


def i8(value):
    # a tx power as its byte
    if not -128 <= value <= 127:
        raise ValueError(f"tx power {value!r} dBm out of range")
    return value & 0xFF
