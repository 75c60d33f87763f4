# A compact CBOR codec (RFC 8949) for MicroPython, where cbor2 cannot be installed. Import
# protocols.cbor rather than this module: it picks cbor2 when it is there.
#
# Encodes None, bool, int (bignums as tags 2/3), float (always 64-bit, as cbor2 does), str,
# bytes, list/tuple, dict and Tag. Decodes all of the above plus float16/32, indefinite-length
# strings and containers; other simple values (undefined, 0..19, 32..255) are rejected.
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


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError("cbor: truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def argument(self, info):
        if info < 24:
            return info
        if info == 24:
            return self.take(1)[0]
        if info == 25:
            return struct.unpack(">H", self.take(2))[0]
        if info == 26:
            return struct.unpack(">I", self.take(4))[0]
        if info == 27:
            return struct.unpack(">Q", self.take(8))[0]
        raise DecodeError("cbor: reserved additional information %d" % info)

    def item(self, depth, can_break=False):
        # One item; _BREAK only where an indefinite-length container may end (can_break). The
        # cases are inline rather than methods: each function costs a board's heap.
        if depth > MAX_DEPTH:
            raise DecodeError("cbor: nested deeper than %d" % MAX_DEPTH)
        initial = self.take(1)[0]
        major = initial >> 5
        info = initial & 0x1F
        if major == 7:  # simple values and floats
            if info == 20:
                return False
            if info == 21:
                return True
            if info == 22:
                return None
            if info == 25:  # RFC 8949 appendix D (struct's "e" format is absent on some ports)
                bits = struct.unpack(">H", self.take(2))[0]
                exp = (bits >> 10) & 0x1F
                mant = bits & 0x3FF
                if exp == 0:
                    value = mant * 5.960464477539063e-08  # 2 ** -24
                elif exp != 31:
                    value = (mant + 1024) * 2.0 ** (exp - 25)
                else:
                    value = float("inf") if mant == 0 else float("nan")
                return -value if bits & 0x8000 else value
            if info == 26:
                return struct.unpack(">f", self.take(4))[0]
            if info == 27:
                return struct.unpack(">d", self.take(8))[0]
            if info == 31:
                if can_break:
                    return _BREAK
                raise DecodeError("cbor: unexpected break")
            raise DecodeError("cbor: unsupported simple value %d" % info)
        if info == 31:
            return self.indefinite(major, depth)
        n = self.argument(info)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return bytes(self.take(n))
        if major == 3:
            return _text(self.take(n))
        if major == 4 or major == 5:
            # each item takes at least one byte: refuse counts the input cannot hold before
            # allocating
            if (n if major == 4 else 2 * n) > len(self.data) - self.pos:
                raise DecodeError("cbor: truncated")
            if major == 4:
                return [self.item(depth + 1) for _ in range(n)]
            value = {}
            for _ in range(n):
                key = self.item(depth + 1)
                value[_key(key)] = self.item(depth + 1)
            return value
        value = self.item(depth + 1)
        if n in (2, 3):  # bignums
            if not isinstance(value, bytes):
                raise DecodeError("cbor: bignum tag %d needs a byte string" % n)
            big = int.from_bytes(value, "big")
            return big if n == 2 else -1 - big
        return Tag(n, value)

    def indefinite(self, major, depth):
        if major in (2, 3):
            chunks = []
            while True:
                initial = self.take(1)[0]
                if initial == 0xFF:
                    break
                if initial >> 5 != major or initial & 0x1F == 31:
                    raise DecodeError("cbor: bad chunk in an indefinite-length string")
                chunks.append(bytes(self.take(self.argument(initial & 0x1F))))
            raw = b"".join(chunks)
            return raw if major == 2 else _text(raw)
        if major == 4:
            items = []
            while True:
                item = self.item(depth + 1, True)
                if item is _BREAK:
                    return items
                items.append(item)
        if major == 5:
            value = {}
            while True:
                key = self.item(depth + 1, True)
                if key is _BREAK:
                    return value
                value[_key(key)] = self.item(depth + 1)
        raise DecodeError("cbor: indefinite length not allowed for major type %d" % major)


def _key(key):
    if key is None or isinstance(key, (int, float, str, bytes)):
        return key
    raise DecodeError("cbor: map key of type %s" % type(key).__name__)


def _text(raw):
    try:
        return str(raw, "utf-8")
    except (UnicodeError, ValueError):
        raise DecodeError("cbor: invalid UTF-8 in a text string") from None


def loads(data):
    # a view, not a copy: slices of it are views too, and only byte strings are copied out
    reader = _Reader(memoryview(data))
    value = reader.item(0)
    if reader.pos != len(data):
        raise DecodeError("cbor: %d bytes after the item" % (len(data) - reader.pos))
    return value
