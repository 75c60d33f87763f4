# CBOR (RFC 8949) for the whole project: cbor2 on CPython, the compact codec on MicroPython.
#
#   dumps(value) -> bytes
#   loads(data) -> value, raising DecodeError on anything but exactly one well-formed item
#
# Both sides decode tag 1 (epoch time) to Tag(1, seconds) and bignums (tags 2, 3) to int, so a
# value decodes identically on either interpreter. Containers nest at most MAX_DEPTH deep.
from .errors import DecodeError

MAX_DEPTH = 32

try:
    import cbor2
except ImportError:
    cbor2 = None

if cbor2 is None:
    from .cbor_compact import Tag, dumps, loads
else:
    import io

    Tag = cbor2.CBORTag
    # cbor2 turns tag 1 into a datetime, which MicroPython lacks: keep the tag and its number.
    _SEMANTIC = {1: lambda value, immutable: Tag(1, value)}

    def dumps(value):
        return cbor2.dumps(value)

    def loads(data):
        stream = io.BytesIO(data)
        try:
            value = cbor2.CBORDecoder(
                stream, semantic_decoders=_SEMANTIC, max_depth=MAX_DEPTH
            ).decode()
        except cbor2.CBORDecodeError as e:
            raise DecodeError("cbor: " + str(e)) from None
        if stream.tell() != len(data):
            raise DecodeError("cbor: %d bytes after the item" % (len(data) - stream.tell()))
        return value
