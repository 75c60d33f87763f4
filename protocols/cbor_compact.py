# A compact CBOR codec (RFC 8949) for MicroPython, where cbor2 cannot be installed. Import
# protocols.cbor rather than this module: it picks cbor2 when it is there.
#
# Encodes None, bool, int (bignums as tags 2/3), float (always 64-bit, as cbor2 does), str,
# bytes, list/tuple, dict and Tag. Decodes all of the above plus float16/32, indefinite-length
# strings and containers; other simple values (undefined, 0..19, 32..255) are rejected.
# A DecodeError says why in a word ("cbor: truncated", "cbor: malformed", "cbor: too deep",
# "cbor: utf-8", "cbor: map key", "cbor: trailing"): on a board every message longer than ten
# characters is a string object in the heap, and every distinct short one a name it keeps.
import struct

from .errors import DecodeError

MAX_DEPTH = 32
_BREAK = object()


class Tag:
    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


def _head(out, major, n):
    major <<= 5
    if n < 24:
        out.append(major | n)
    elif n < 0x100:
        out.append(major | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(major | 25)
        out.extend(struct.pack(">H", n))
    elif n < 0x100000000:
        out.append(major | 26)
        out.extend(struct.pack(">I", n))
    else:
        out.append(major | 27)
        out.extend(struct.pack(">Q", n))


def _encode(out, value):
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        major, n = (0, value) if value >= 0 else (1, -1 - value)
        if n < 0x10000000000000000:
            _head(out, major, n)
        else:
            _head(out, 6, 2 + major)
            digits = "%x" % n  # MicroPython's int has no bit_length()
            _encode(out, bytes.fromhex("0" * (len(digits) % 2) + digits))
    elif isinstance(value, float):
        out.append(0xFB)
        out.extend(struct.pack(">d", value))
    elif isinstance(value, str):
        raw = value.encode()
        _head(out, 3, len(raw))
        out.extend(raw)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        _head(out, 2, len(value))
        out.extend(value)
    elif isinstance(value, (list, tuple)):
        _head(out, 4, len(value))
        for item in value:
            _encode(out, item)
    elif isinstance(value, dict):
        _head(out, 5, len(value))
        for k, v in value.items():
            _encode(out, k)
            _encode(out, v)
    elif isinstance(value, Tag):
        _head(out, 6, value.tag)
        _encode(out, value.value)
    else:
        raise TypeError("cbor: cannot encode %s" % type(value).__name__)


def dumps(value):
    out = bytearray()
    _encode(out, value)
    return bytes(out)


def _item(data, pos, depth, can_break=False):
    # One item at data[pos:]: (value, the position after it). _BREAK only where an
    # indefinite-length container may end (can_break). Functions over (data, pos) rather than a
    # reader object, and the cases inline: each class and function costs a board's heap.
    if depth > MAX_DEPTH:
        raise DecodeError("too deep")
    if pos >= len(data):
        raise DecodeError("truncated")
    initial = data[pos]
    major = initial >> 5
    info = initial & 0x1F
    pos += 1
    if major == 7:  # simple values and floats
        if 20 <= info <= 22:
            return (False, True, None)[info - 20], pos
        if info == 31:
            if can_break:
                return _BREAK, pos
            raise DecodeError("malformed")  # a break outside an indefinite container
        if not 25 <= info <= 27:
            raise DecodeError("malformed")  # a simple value other than false, true, null
        end = _end(data, pos, 1 << (info - 24))
        if info == 26:
            return struct.unpack(">f", data[pos:end])[0], end
        if info == 27:
            return struct.unpack(">d", data[pos:end])[0], end
        # RFC 8949 appendix D (struct's "e" format is absent on some ports)
        bits = data[pos] << 8 | data[pos + 1]
        exp = (bits >> 10) & 0x1F
        mant = bits & 0x3FF
        if exp == 0:
            value = mant * 5.960464477539063e-08  # 2 ** -24
        elif exp != 31:
            value = (mant + 1024) * 2.0 ** (exp - 25)
        else:
            value = float("inf") if mant == 0 else float("nan")
        return -value if bits & 0x8000 else value, end
    if info == 31:  # indefinite length: items until a break
        if major in (2, 3):
            chunks = []
            while True:
                initial = data[_end(data, pos, 1) - 1]
                if initial == 0xFF:
                    raw = b"".join(chunks)
                    return raw if major == 2 else _text(raw), pos + 1
                if initial >> 5 != major or initial & 0x1F == 31:
                    raise DecodeError("malformed")  # another type in an indefinite string
                n, pos = _argument(data, pos + 1, initial & 0x1F)
                end = _end(data, pos, n)
                chunks.append(bytes(data[pos:end]))
                pos = end
        if major not in (4, 5):
            raise DecodeError("malformed")  # an indefinite length for an int or a tag
        value = [] if major == 4 else {}
        while True:
            item, pos = _item(data, pos, depth + 1, True)
            if item is _BREAK:
                return value, pos
            if major == 4:
                value.append(item)
            else:
                value[_key(item)], pos = _item(data, pos, depth + 1)
    n, pos = _argument(data, pos, info)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major == 2 or major == 3:
        end = _end(data, pos, n)
        return bytes(data[pos:end]) if major == 2 else _text(data[pos:end]), end
    if major == 4 or major == 5:
        # each item takes at least one byte: refuse counts the input cannot hold before
        # allocating
        if (n if major == 4 else 2 * n) > len(data) - pos:
            raise DecodeError("truncated")
        value = [] if major == 4 else {}
        for _ in range(n):
            item, pos = _item(data, pos, depth + 1)
            if major == 4:
                value.append(item)
            else:
                value[_key(item)], pos = _item(data, pos, depth + 1)
        return value, pos
    value, pos = _item(data, pos, depth + 1)
    if n in (2, 3):  # bignums
        if not isinstance(value, bytes):
            raise DecodeError("malformed")  # a bignum (tag 2 or 3) of something other than bytes
        big = int.from_bytes(value, "big")
        return big if n == 2 else -1 - big, pos
    return Tag(n, value), pos


def _end(data, pos, n):
    # the position n bytes on, if data holds them
    end = pos + n
    if end > len(data):
        raise DecodeError("truncated")
    return end


def _argument(data, pos, info):
    # a head's argument and the position after it
    if info < 24:
        return info, pos
    if info > 27:
        raise DecodeError("malformed")  # additional information 28 to 30 (reserved)
    end = _end(data, pos, 1 << (info - 24))
    return int.from_bytes(data[pos:end], "big"), end


def _key(key):
    if key is None or isinstance(key, (int, float, str, bytes)):
        return key
    raise DecodeError("map key")  # not a number, text, bytes or null


def _text(raw):
    try:
        return str(raw, "utf-8")
    except (UnicodeError, ValueError):
        raise DecodeError("utf-8") from None  # not valid UTF-8 text


def loads(data):
    # a view, not a copy: slices of it are views too, and only byte strings are copied out
    data = memoryview(data)
    try:
        value, pos = _item(data, 0, 0)
        if pos != len(data):
            raise DecodeError("trailing")  # bytes after the item
    except DecodeError as e:
        raise DecodeError("cbor: %s" % e) from None  # the layer that failed, for the reader
    return value
