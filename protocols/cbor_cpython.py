# protocols.cbor on CPython: cbor2, decoding as the compact codec does (see cbor.py).
import io

import cbor2

from .cbor_compact import MAX_DEPTH
from .errors import DecodeError

Tag = cbor2.CBORTag
# cbor2 turns tag 1 into a datetime, which MicroPython lacks: keep the tag and its number.
_SEMANTIC = {1: lambda value, immutable: Tag(1, value)}


def dumps(value):
    return cbor2.dumps(value)


def loads(data):
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream, semantic_decoders=_SEMANTIC, max_depth=MAX_DEPTH).decode()
    except cbor2.CBORDecodeError as e:
        raise DecodeError("cbor: " + str(e)) from None
    if stream.tell() != len(data):
        raise DecodeError("cbor: %d bytes after the item" % (len(data) - stream.tell()))
    return value
