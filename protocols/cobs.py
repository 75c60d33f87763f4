# COBS, Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999): removes every 0x00 from a
# packet, for at most one extra byte per 254, so 0x00 can delimit packets on a byte stream.
# Each 0x00 becomes the distance to the next one, so the work is one find() per block of bytes,
# not a Python loop per byte: the gateway decodes thousands of frames a second, boards are slow.
from .errors import DecodeError


def max_encoded_len(n):
    """The longest COBS form of n bytes."""
    return n + n // 254 + 1


def stuff(buf, end):
    """COBS in place: buf[0] is a spare byte for the first code, buf[1:end] the data. Returns the
    new end: each full block (254 bytes without a 0x00) inserts one code byte."""
    p = 0
    while True:
        q = buf.find(b"\x00", p + 1, end)
        if q < 0:
            q = end
        if q - p > 0xFE:  # a full block: code 0xFF, no implied zero after it
            buf[p] = 0xFF
            p += 0xFF
            if p == end:
                return end
            buf[p:p] = b"\x00"
            end += 1
        else:
            buf[p] = q - p
            if q == end:
                return end
            p = q


def unstuff(buf):
    """Reverses stuff() in place on a bytearray holding no 0x00: afterwards buf[1:] is the data.
    Returns False (buf then undefined) if a code byte is 0 or points past the end."""
    n = len(buf)
    p = 0
    full = False
    while p < n:
        code = buf[p]
        if code == 0 or p + code > n:
            return False
        if full:  # no implied zero after a full block: drop its code byte
            buf[p : p + 1] = b""
            n -= 1
            p -= 1
        elif p:  # the code byte stands where its previous block's 0x00 was
            buf[p] = 0
        full = code == 0xFF
        p += code
    return True


def encode(data):
    """The COBS form of data: a bytearray without 0x00, delimiter not added."""
    buf = bytearray(1) + data
    stuff(buf, len(buf))
    return buf


def decode(data):
    """The bytes that data (COBS, no delimiter) stands for; DecodeError if it is not COBS."""
    buf = bytearray(data)
    if not unstuff(buf):
        raise DecodeError("cobs: malformed")
    return buf[1:]
