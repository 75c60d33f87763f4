# Li-Fi physical layer, sans-I/O: one payload in, the chips of one OOK frame out. This is the
# encoding half, all a luminaire imports (a frame in slices); lifi_phy.py re-exports it and adds
# whole-frame encoding and the decoder.
# Byte-by-byte layout, the line codes and dimming: docs/lifi-phy.md.
#
# Chips are packed MSB-first, 1 = LED on. A frame is, in chip bytes:
#   leading compensation | preamble (8) | SFD (2) | header (12) | payload blocks + compensation
# The preamble, SFD and header are always 50% on; the header is Manchester whatever the payload's
# line code (the receiver reads the line code from it). Payload and its CRC-32 are line-coded in
# blocks of 4 bytes; when dimmed, compensation bytes (all on above 50%, all off below) follow
# each block and precede the preamble, so the light averages the commanded level over every few
# hundred chips instead of flickering at the frame rate.
# Everything stays byte-aligned, so the encoder is table lookups and byte stores: a Pico encodes
# a frame faster than it is sent. Comments rather than docstrings: MicroPython keeps docstrings
# in RAM while compiling a module.
import struct
from binascii import crc32

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


VERSION = const(1)
MANCHESTER = const(0)  # bit 1 -> chips 10, bit 0 -> chips 01 (IEEE 802.15.7)
CODE_4B6B = const(1)  # IEEE 802.15.7 4B6B: every codeword three chips on, three off
MAX_PAYLOAD = const(1000)  # bytes; one frame fits one device-link body (1,024) with room to spare
LEVEL_MIN = const(10)  # dimming range in % of full light; 50 = no compensation
LEVEL_MAX = const(90)

PREAMBLE_CHIPS = const(64)  # 1010...10: clock and gain settle on it
SFD = b"\xf8\x34"  # 1111100000110100: runs of 5 that no line-coded data contains
HEADER_BYTES = const(6)  # version | line code, level %, length (2), CRC-16 (2)
HEAD_CHIP_BYTES = const(22)  # preamble 8 + SFD 2 + Manchester header 12
BLOCK_BYTES = const(4)  # payload bytes between two runs of compensation
CRC_BYTES = const(4)

_PAD = const(0xA)  # 4B6B: the 4 chips closing an odd byte count, balanced
_SPAN_BYTES = const(32)  # payload bytes coded at a time when no compensation splits them
# Line codes by nibble (16 bytes each, not 512-byte tables by byte: a board's heap is small).
# The 8 chips of each nibble 0..15 in Manchester (bit 1 -> 10, bit 0 -> 01)
CODES_MANCHESTER = b"\x55\x56\x59\x5a\x65\x66\x69\x6a\x95\x96\x99\x9a\xa5\xa6\xa9\xaa"
# the 6 chips of each nibble 0..15 in 4B6B, low bits of each byte
CODES_4B6B = b"\x0e\x0d\x13\x16\x15\x23\x26\x25\x19\x1a\x1c\x31\x32\x29\x2a\x2c"


def chips_per_byte(line_code):
    if line_code == MANCHESTER:
        return 16
    if line_code == CODE_4B6B:
        return 12
    raise ValueError("unknown line code")


def dimming_ratio(level_pct):
    # (num, den, fill): after every D balanced chip bytes, D * num // den compensation bytes of
    # value fill are owed. num = 0 at 50%.
    if not isinstance(level_pct, int) or not LEVEL_MIN <= level_pct <= LEVEL_MAX:
        raise ValueError("level_pct must be an integer from 10 to 90")
    if level_pct >= 50:
        return 2 * level_pct - 100, 2 * (100 - level_pct), 0xFF
    return 100 - 2 * level_pct, 2 * level_pct, 0


def compensation_chips(level_pct, n):
    # Compensation chips added to n balanced (50%) chips, a multiple of 8, so that the whole
    # averages level_pct: frame_chips(len, code, level) = frame_chips(len, code) + this.
    num, den, _ = dimming_ratio(level_pct)
    return 8 * (n // 8 * num // den)


def frame_chips(n, line_code, level_pct=50):
    # Chips of one frame of an n-byte payload, compensation included: its airtime is
    # frame_chips / chip_rate_hz.
    if not 0 <= n <= MAX_PAYLOAD:
        raise ValueError("payload longer than MAX_PAYLOAD")
    full, rest = divmod(n + CRC_BYTES, BLOCK_BYTES)
    chip_bits = chips_per_byte(line_code)
    # line-coded blocks, and the last partial one (4B6B pads an odd byte count with 4 chips)
    balanced = HEAD_CHIP_BYTES + full * BLOCK_BYTES * chip_bits // 8 + (rest * chip_bits + 7) // 8
    balanced *= 8
    return balanced + compensation_chips(level_pct, balanced)


def _code(out, pos, src, start, end, line_code):
    # Writes the chips of src[start:end] at out[pos]; returns the position after them.
    if line_code == MANCHESTER:
        t = CODES_MANCHESTER
        for i in range(start, end):
            b = src[i]
            out[pos] = t[b >> 4]
            out[pos + 1] = t[b & 15]
            pos += 2
        return pos
    t = CODES_4B6B
    for i in range(start, end - 1, 2):  # two bytes -> 24 chips -> 3 chip bytes
        a = src[i]
        b = src[i + 1]
        v = t[a >> 4] << 18 | t[a & 15] << 12 | t[b >> 4] << 6 | t[b & 15]
        out[pos] = v >> 16
        out[pos + 1] = (v >> 8) & 0xFF
        out[pos + 2] = v & 0xFF
        pos += 3
    if (end - start) & 1:  # 12 chips, then 4 chips of padding
        a = src[end - 1]
        v = t[a >> 4] << 10 | t[a & 15] << 4 | _PAD
        out[pos] = v >> 8
        out[pos + 1] = v & 0xFF
        pos += 2
    return pos


def _fill(out, pos, count, value):
    for i in range(pos, pos + count):
        out[i] = value
    return pos + count


def header(n, line_code, level_pct=50):
    # The 6 header bytes (before Manchester coding) of a frame of an n-byte payload.
    head = bytearray(HEADER_BYTES)
    struct.pack_into(">BBH", head, 0, VERSION << 4 | line_code, level_pct, n)
    struct.pack_into(">H", head, 4, crc16(head, 4))
    return head


def crc16(data, n):
    # CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of data[:n]; only the 4 header bytes use it.
    crc = 0xFFFF
    for i in range(n):
        crc ^= data[i] << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode_slices(out, payload, line_code, level_pct=50):
    # The chips of one frame, slice by slice, in out (a bytearray of 128 bytes or more, reused
    # from slice to slice): yields the count of chip bytes ready at out[0:count], to be sent
    # before the next slice is asked for. Sent one after another, the slices are the frame's
    # chips; all but the last are whole 32-bit words (rp2's PIO takes 32 chips at a time).
    n = len(payload)
    frame_chips(n, line_code, level_pct)  # ValueError for a length, line code or level
    chip_bits = chips_per_byte(line_code)
    num, den, fill = dimming_ratio(level_pct)
    owed = HEAD_CHIP_BYTES * num // den
    if len(out) < owed + HEAD_CHIP_BYTES:
        raise ValueError("out is too small")
    pos = _fill(out, 0, owed, fill)
    pos = _fill(out, pos, PREAMBLE_CHIPS // 8, 0xAA)
    out[pos] = SFD[0]
    out[pos + 1] = SFD[1]
    pos = _code(out, pos + 2, header(n, line_code, level_pct), 0, HEADER_BYTES, MANCHESTER)
    # The CRC and the last partial block go through a small buffer, so blocks stay whole
    whole = n - n % BLOCK_BYTES
    tail = bytearray(n - whole + CRC_BYTES)
    tail[: n - whole] = payload[whole:]
    struct.pack_into(">I", tail, n - whole, crc32(payload))
    span = BLOCK_BYTES if num else _SPAN_BYTES  # compensation, if any, follows every block
    balanced = HEAD_CHIP_BYTES
    for src, end in ((payload, whole), (tail, len(tail))):
        for start in range(0, end, span):
            stop = min(start + span, end)
            coded = ((stop - start) * chip_bits + 7) >> 3
            due = (balanced + coded) * num // den
            if pos + coded + due - owed > len(out):  # out is full: send it, whole words only
                rest = pos & 3
                if rest + coded + due - owed > len(out):
                    raise ValueError("out is too small")
                yield pos - rest
                out[:rest] = out[pos - rest : pos]
                pos = rest
            pos = _fill(out, _code(out, pos, src, start, stop, line_code), due - owed, fill)
            balanced += coded
            owed = due
    yield pos
