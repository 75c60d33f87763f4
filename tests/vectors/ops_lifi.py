# Vector ops for protocols/lifi_phy.py ("lifi.<name>"), under CPython and MicroPython alike.
# Line codes are spelled "manchester" or "4b6b"; chips are hex, packed MSB-first, 1 = LED on.
# Comments, not docstrings: this compiles inside MicroPython's 64 KB heap.
from binascii import crc32

try:
    from luciole.protocols import lifi_phy, lifi_phy_encode
except ImportError:
    from protocols import lifi_phy, lifi_phy_encode

_CODES = {"manchester": lifi_phy.MANCHESTER, "4b6b": lifi_phy.CODE_4B6B}


def _code(spec):
    return _CODES.get(spec["line_code"], spec["line_code"])  # a number passes through


def _payload(spec):
    # "payload" hex, or "payload_len" bytes (i * 7 + 1) & 0xFF: too long to spell out in a line
    # that MicroPython reads in its 64 KB heap
    if "payload" in spec:
        return bytes.fromhex(spec["payload"])
    return bytes((i * 7 + 1) & 0xFF for i in range(spec["payload_len"]))


def _line_code(spec):
    return lifi_phy.encode_bytes(bytes.fromhex(spec["data"]), _code(spec)).hex()


def _encode(spec):
    return lifi_phy.encode_frame(_payload(spec), _code(spec), spec.get("level", 50)).hex()


def _summary(spec):
    # a long frame summed up: its size, CRC-32, share of chips on, and whether it decodes back
    payload = _payload(spec)
    chips = lifi_phy.encode_frame(payload, _code(spec), spec.get("level", 50))
    on = 0
    for b in chips:
        on += bin(b).count("1")
    return {
        "chip_bytes": len(chips),
        "crc32": crc32(chips),
        "on_permille": on * 1000 // (8 * len(chips)),
        "same": lifi_phy.decode_frame(chips) == payload,
    }


def _slices(spec):
    # Every level, each payload length and each size of out: the frames whose slices, sent one
    # after another, are not encode_frame's chips, or whose slices but the last are not whole
    # 32-bit words; [] when all are right.
    code = _code(spec)
    lens = spec["payload_lens"]
    # One buffer for the whole frames, as long as the longest (10 % and 90 % add the most), taken
    # first: a 64 KB heap may have no 10 KB hole left for a new one per frame.
    frame = bytearray(max(lifi_phy.frame_chips(n, code, lifi_phy.LEVEL_MIN) for n in lens) // 8)
    wrong = []
    for level in range(lifi_phy.LEVEL_MIN, lifi_phy.LEVEL_MAX + 1):
        for n in lens:
            payload = _payload({"payload_len": n})
            length = lifi_phy.encode_into(frame, payload, code, level)
            for size in spec["slice_bytes"]:
                out = bytearray(size)
                at = 0
                right = True
                for used in lifi_phy_encode.encode_slices(out, payload, code, level):
                    right = right and not at & 3 and out[:used] == frame[at : at + used]
                    at += used
                if not right or at != length:
                    wrong.append([level, n, size])
    return wrong


def _decode(chips_hex):
    return lifi_phy.decode_frame(bytes.fromhex(chips_hex)).hex()


def _header(head_hex):
    return list(lifi_phy.parse_header(bytes.fromhex(head_hex)))


def _frame_chips(spec):
    return lifi_phy.frame_chips(spec["payload_len"], _code(spec), spec.get("level", 50))


def _compensation(spec):
    return lifi_phy.compensation_chips(spec["level"], spec["chips"])


OPS = {
    "line_code": _line_code,
    "encode": _encode,
    "summary": _summary,
    "slices": _slices,
    "decode": _decode,
    "header": _header,
    "frame_chips": _frame_chips,
    "compensation": _compensation,
}
