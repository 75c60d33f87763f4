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


def unstuff(view):
    """Reverses stuff() in place on a memoryview of writable bytes holding no 0x00: the data
    ends up at view[0:n]. Returns n, or -1 if a code byte is 0 or points past the end. Each block
    moves left by its code bytes, one slice copy per block: nothing is allocated."""
    n = len(view)
    read = write = 0
    while read < n:
        code = view[read]
        if code == 0 or read + code > n:
            return -1
        view[write : write + code - 1] = view[read + 1 : read + code]
        write += code - 1
        read += code
        if code != 0xFF and read < n:  # the 0x00 the code byte stood for
            view[write] = 0
            write += 1
    return write


def encode(data):
    """The COBS form of data: a bytearray without 0x00, delimiter not added."""
    buf = bytearray(1) + data
    stuff(buf, len(buf))
    return buf


def decode(data):
    """The bytes that data (COBS, no delimiter) stands for; DecodeError if it is not COBS."""
    buf = bytearray(data)
    n = unstuff(memoryview(buf))
    if n < 0:
        raise DecodeError("cobs: malformed")
    return buf[:n]
