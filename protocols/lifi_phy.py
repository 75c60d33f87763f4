# Li-Fi physical layer, sans-I/O: one payload in, the chips of one OOK frame out, and back.
# Byte-by-byte layout, the line codes and dimming: docs/lifi-phy.md. The encoding half is
# lifi_phy_encode.py (all a luminaire imports), re-exported here; whole frames and the decoder
# are here.
import struct
from binascii import crc32

from .errors import DecodeError
from .lifi_phy_encode import (  # noqa: F401 (the API)
    BLOCK_BYTES,
    CODE_4B6B,
    CODES_4B6B,
    CODES_MANCHESTER,
    CRC_BYTES,
    HEAD_CHIP_BYTES,
    HEADER_BYTES,
    LEVEL_MAX,
    LEVEL_MIN,
    MANCHESTER,
    MAX_PAYLOAD,
    PREAMBLE_CHIPS,
    SFD,
    VERSION,
    _code,
    chips_per_byte,
    compensation_chips,
    crc16,
    dimming_ratio,
    encode_slices,
    frame_chips,
    header,
)

SYNC = b"\xaa\xaa\xf8\x34"  # what a receiver looks for: the preamble's end and the SFD


def encode_bytes(data, line_code):
    # The chips of data alone, line-coded (4B6B pads an odd count with 4 chips 1010).
    out = bytearray((len(data) * chips_per_byte(line_code) + 7) // 8)
    _code(out, 0, data, 0, len(data), line_code)
    return bytes(out)


def encode_into(out, payload, line_code, level_pct=50):
    # Writes the chips of one frame into out (a bytearray of at least frame_chips() / 8 bytes,
    # reusable from frame to frame: no allocation but the encoder's state, ~0.5 KB on a 64-bit
    # board); returns the chip bytes used.
    if len(out) < frame_chips(len(payload), line_code, level_pct) // 8:
        raise ValueError("out is too small")
    return next(encode_slices(out, payload, line_code, level_pct))  # one slice: the frame


def encode_frame(payload, line_code, level_pct=50):
    # The chips of one frame, packed MSB-first, 1 = LED on.
    out = bytearray(frame_chips(len(payload), line_code, level_pct) // 8)
    encode_into(out, payload, line_code, level_pct)
    return bytes(out)


def _tables():
    unmanchester = bytearray(b"\xff" * 256)  # chip byte -> nibble, 0xFF if not Manchester
    uncode6 = bytearray(b"\xff" * 64)  # 6 chips -> nibble, 0xFF if not a codeword
    for nibble in range(16):
        unmanchester[CODES_MANCHESTER[nibble]] = nibble
        uncode6[CODES_4B6B[nibble]] = nibble
    return unmanchester, uncode6


_UNMANCHESTER, _UNCODE6 = _tables()


def parse_header(head):
    # (line_code, level_pct, payload_len) from the 6 decoded header bytes; DecodeError if wrong.
    if len(head) != HEADER_BYTES:
        raise DecodeError("header: truncated")
    if crc16(head, 4) != struct.unpack_from(">H", head, 4)[0]:
        raise DecodeError("header: crc")
    if head[0] >> 4 != VERSION:
        raise DecodeError("header: version")
    line_code, level_pct, n = head[0] & 15, head[1], struct.unpack_from(">H", head, 2)[0]
    if line_code not in (MANCHESTER, CODE_4B6B):
        raise DecodeError("header: line code")
    if not LEVEL_MIN <= level_pct <= LEVEL_MAX:
        raise DecodeError("header: level")
    if n > MAX_PAYLOAD:
        raise DecodeError("header: length")
    return line_code, level_pct, n


def _decode(chips, pos, n, line_code, out):
    # Decodes n bytes into out from the chip bytes at chips[pos]; returns the position after.
    if line_code == MANCHESTER:
        u = _UNMANCHESTER
        for _ in range(n):
            hi = u[chips[pos]]
            lo = u[chips[pos + 1]]
            if hi | lo > 15:
                raise DecodeError("line code")
            out.append(hi << 4 | lo)
            pos += 2
        return pos
    u = _UNCODE6
    for _ in range(n >> 1):
        v = chips[pos] << 16 | chips[pos + 1] << 8 | chips[pos + 2]
        a, b, c, d = u[v >> 18], u[(v >> 12) & 63], u[(v >> 6) & 63], u[v & 63]
        if a | b | c | d > 15:
            raise DecodeError("line code")
        out.append(a << 4 | b)
        out.append(c << 4 | d)
        pos += 3
    if n & 1:  # 12 chips, then 4 chips of padding
        a, b = u[chips[pos] >> 2], u[(chips[pos] & 3) << 4 | chips[pos + 1] >> 4]
        if a | b > 15:
            raise DecodeError("line code")
        out.append(a << 4 | b)
        pos += 2
    return pos


def decode_frame(chips):
    # The payload of one frame's chips (as encode_frame made them, leading compensation
    # included); DecodeError if they are not a frame or a CRC fails. A reference decoder: the
    # visitor's receiver decodes light samples with edge/lifi_rx.py.
    at = bytes(chips).find(SYNC)
    if at < 0:
        raise DecodeError("no SFD")
    pos = at + len(SYNC)
    if len(chips) < pos + 2 * HEADER_BYTES:
        raise DecodeError("truncated")
    head = bytearray()
    pos = _decode(chips, pos, HEADER_BYTES, MANCHESTER, head)
    line_code, level_pct, n = parse_header(head)
    num, den, _ = dimming_ratio(level_pct)
    owed = HEAD_CHIP_BYTES * num // den
    # the frame starts 6 bytes before SYNC, after its leading compensation
    if len(chips) < at - 6 + frame_chips(n, line_code, level_pct) // 8 - owed:
        raise DecodeError("truncated")
    data = bytearray()
    balanced = HEAD_CHIP_BYTES
    for start in range(0, n + CRC_BYTES, BLOCK_BYTES):
        block = _decode(chips, pos, min(BLOCK_BYTES, n + CRC_BYTES - start), line_code, data)
        balanced += block - pos
        due = balanced * num // den
        pos = block + due - owed
        owed = due
    if crc32(memoryview(data)[:n]) != struct.unpack_from(">I", data, n)[0]:
        raise DecodeError("payload: crc")
    return bytes(data[:n])
