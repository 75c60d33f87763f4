# CBOR (RFC 8949) for the whole project: cbor2 on CPython (cbor_cpython.py), the compact codec on
# MicroPython (cbor_compact.py), with one interface:
#
#   dumps(value) -> bytes
#   loads(data) -> value, raising DecodeError on anything but exactly one well-formed item
#
# Both sides decode tag 1 (epoch time) to Tag(1, seconds) and bignums (tags 2, 3) to int, so a
# value decodes identically on either interpreter. Containers nest at most MAX_DEPTH deep.
try:
    import cbor2  # noqa: F401  (only asks whether it is there)
except ImportError:  # a board never loads the cbor2 half: its names would cost heap
    from .cbor_compact import MAX_DEPTH, Tag, dumps, loads
else:
    from .cbor_cpython import MAX_DEPTH, Tag, dumps, loads

__all__ = ["MAX_DEPTH", "Tag", "dumps", "loads"]
