try:
    from luciole.protocols import readings
except ImportError:
    from protocols import readings


def _decode(hex_input):
    device_id, seq, values, time_s = readings.decode(bytes.fromhex(hex_input))
    return [device_id, seq, [list(v) for v in values], time_s]


def _encode(case):
    values = [tuple(v) for v in case["r"]]
    return readings.encode(case["id"], case["seq"], values, case.get("t")).hex()


OPS = {"decode": _decode, "encode": _encode}
