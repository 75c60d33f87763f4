# SenML (RFC 8428): packs of sensor records in JSON (application/senml+json) and CBOR
# (application/senml+cbor), their checks and their resolution. See docs/senml.md.
#
#   make_pack(base_name, readings, base_time_s=None) -> pack
#   encode_json(pack) -> bytes          decode_json(text or bytes) -> pack
#   encode_cbor(pack) -> bytes          decode_cbor(bytes) -> pack
#   check(pack) -> pack                 resolve(pack, now_s) -> resolved records
#
# A pack is a list of records; a record is a dict keyed by the RFC's JSON labels ("bn", "v", ...)
# with "vd" as bytes. Every function here raises DecodeError on a pack that is not valid SenML:
# the encoders run the same checks as the decoders, so what Luciole sends, Luciole accepts.
#
# MicroPython compiles this file under a 64 KB heap in CI: comments rather than docstrings, and
# few distinct names (each one is interned for good), keep that within budget.
import binascii
import json

from . import cbor
from .errors import DecodeError

CONTENT_TYPE_JSON = "application/senml+json"
CONTENT_TYPE_CBOR = "application/senml+cbor"
VERSION = 10  # RFC 8428's version, the default when a pack has no "bver"

# (JSON label, CBOR label, kind) in the order Luciole writes them, which is the order of the RFC's
# own examples: base fields, name, unit, time, value.
_FIELDS = (
    ("bn", -2, "text"),
    ("bt", -3, "number"),
    ("bu", -4, "text"),
    ("bv", -5, "number"),
    ("bs", -6, "number"),
    ("bver", -1, "int"),
    ("n", 0, "text"),
    ("u", 1, "text"),
    ("t", 6, "number"),
    ("ut", 7, "number"),
    ("v", 2, "number"),
    ("vs", 3, "text"),
    ("vb", 4, "bool"),
    ("vd", 8, "bytes"),
    ("s", 5, "number"),
)
_KIND = {name: kind for name, _, kind in _FIELDS}
_NAME = {key: name for name, key, _ in _FIELDS}


# A pack from (name, value, unit, time_s) readings; name may be "", unit and time_s None. The
# value's type picks the field: bool vb, str vs, bytes vd, number v. time_s is the record's "t",
# added to base_time_s (section 4.5.3). The encoders check the result.
def make_pack(base_name, readings, base_time_s=None):
    pack = []
    for name, value, unit, time_s in readings:
        kind = type(value)
        if kind is bool:
            record = {"vb": value}
        elif kind is str:
            record = {"vs": value}
        elif kind in (bytes, bytearray):
            record = {"vd": value}
        else:
            record = {"v": value}
        if name:
            record["n"] = name
        if unit is not None:
            record["u"] = unit
        if time_s is not None:
            record["t"] = time_s
        if not pack:
            if base_name:
                record["bn"] = base_name
            if base_time_s is not None:
                record["bt"] = base_time_s
        pack.append(record)
    return pack


# application/senml+json: compact JSON, vd in base64url without padding. Written field by field,
# as MicroPython's json.dumps would write a dict's fields in hash order. CPython writes non-ASCII
# text as \u escapes, MicroPython as UTF-8: the same JSON either way.
def encode_json(pack):
    out = []
    for record in check(pack):
        if "vd" in record:  # record is check()'s copy
            record["vd"] = _to_base64url(record["vd"])
        out.append(
            ",".join(
                f'"{name}":{json.dumps(record[name])}' for name, _, _ in _FIELDS if name in record
            )
        )
    return ("[{" + "},{".join(out) + "}]").encode()


# application/senml+cbor: integer labels (RFC 8428 table 4), vd as a byte string.
def encode_cbor(pack):
    return cbor.dumps(
        [
            _InOrder((key, record[name]) for name, key, _ in _FIELDS if name in record)
            for record in check(pack)
        ]
    )


class _InOrder(dict):
    # a map of CBOR labels whose items() come in _FIELDS' order: CPython's dict keeps that order
    # anyway; MicroPython's lists them in hash order, but its compact CBOR codec asks items()
    def items(self):
        return [(key, self[key]) for _, key, _ in _FIELDS if key in self]


# The checked pack in application/senml+json text or UTF-8 bytes.
def decode_json(data):
    try:
        pack = json.loads(data if isinstance(data, str) else bytes(data).decode())
    except (ValueError, TypeError, RuntimeError):  # not UTF-8 or not JSON; nesting too deep
        raise DecodeError("senml: not UTF-8 JSON") from None
    if type(pack) is list:
        for record in pack:
            if type(record) is dict and "vd" in record:
                record["vd"] = _from_base64url(record["vd"])
    return check(pack)


def _to_base64url(data):
    text = binascii.b2a_base64(data, newline=False).rstrip(b"=")
    return text.replace(b"+", b"-").replace(b"/", b"_").decode()


def _from_base64url(text):
    if type(text) is not str:
        raise DecodeError("senml: vd must be a base64url string")
    data = text.rstrip("=")
    # padding is optional, but right if present
    if len(text) - len(data) not in (0, -len(data) % 4):
        raise DecodeError("senml: vd has wrong base64 padding")
    try:
        data = data.replace("-", "+").replace("_", "/")
        data = binascii.a2b_base64(data + "=" * (-len(data) % 4))
    except ValueError:  # binascii.Error is one
        data = None
    # the decoders skip characters outside the alphabet: only the one right spelling passes
    if data is None or _to_base64url(data) != text.rstrip("="):
        raise DecodeError("senml: vd is not base64url")
    return data


# The checked pack in application/senml+cbor bytes.
def decode_cbor(data):
    pack = cbor.loads(data)
    if type(pack) is list:
        for index, item in enumerate(pack):
            if type(item) is dict:
                record = {}
                for key, value in item.items():
                    if type(key) is int:
                        # table 4 is conclusive: any other integer label is an unknown field
                        key = _NAME.get(key)
                    elif type(key) is not str or key in _KIND:
                        # table 4's fields travel under their integer labels only; other keys
                        # are unknown fields (and bytes beside str keys make MicroPython warn)
                        key = None
                    if key is not None:
                        record[key] = value
                pack[index] = record
    return check(pack)


# The pack's records with their known fields only, checked per RFC 8428. Unknown fields are left
# out, but one whose label ends in "_" must be understood and is an error (section 4.4). A record
# with base fields only sets them for the records after it (as the one in section 5.1.7 does); any
# other record needs exactly one value field (v, vs, vb or vd), or none if it has a sum (its own s
# or a base sum in force), and a name (base name + name) of the RFC's characters (section 4.5.1).
def check(pack):
    if not isinstance(pack, (list, tuple)) or not pack:
        raise DecodeError("senml: a pack is an array of one or more records")
    out = []
    base = {}  # the base fields in force (and other fields of earlier records, never read)
    for index, item in enumerate(pack):
        if not isinstance(item, dict):
            raise DecodeError(f"senml: record {index}: not a map")
        record = {}
        for name, value in item.items():
            # other keys than text are unknown fields (and bytes would make MicroPython warn)
            kind = _KIND.get(name) if type(name) is str else None
            if kind is None:
                if type(name) is str and name.endswith("_"):
                    raise DecodeError(f"senml: record {index}: must-understand field {name!r}")
            elif _fits(kind, value):
                record[name] = bytes(value) if kind == "bytes" else value
            else:
                raise DecodeError(f"senml: record {index}: {name} must be {kind}")
        # all records of a pack have one version (section 4.4), and one we understand
        version = base.setdefault("bver", record.get("bver", VERSION))
        if not 0 < version <= VERSION or record.get("bver", version) != version:
            raise DecodeError(
                f"senml: record {index}: version {record['bver']} (pack {version}, known {VERSION})"
            )
        base.update(record)
        if not _sets_base_only(record):
            count = sum(name in record for name in ("v", "vs", "vb", "vd"))
            if count > 1:
                raise DecodeError(f"senml: record {index}: more than one of v, vs, vb, vd")
            if not count and "s" not in record and "bs" not in base:
                raise DecodeError(f"senml: record {index}: no value (v, vs, vb, vd) and no sum")
            name = base.get("bn", "") + record.get("n", "")
            # strip() leaves what is not one of the RFC's characters
            if (
                not name
                or not (name[0].isalpha() or name[0].isdigit())
                or name.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-:./_")
            ):
                raise DecodeError(
                    f"senml: record {index}: name {name!r} is not [A-Za-z0-9][-:./_A-Za-z0-9]*"
                )
        out.append(record)
    return out


def _fits(kind, value):
    if kind == "number":
        # not bool (an int in CPython); not NaN or infinite (JSON has none); no bignum
        if type(value) is float:
            return value - value == 0
        return type(value) is int and -0x10000000000000000 <= value < 0x10000000000000000
    if kind == "text":
        if type(value) is not str:
            return False
        # a "\ud800"-style JSON escape leaves a surrogate, which UTF-8 cannot carry: CPython
        # cannot encode it, MicroPython writes it as ED A0..BF xx, which we refuse
        try:
            data = value.encode()
        except UnicodeError:
            return False
        index = data.find(b"\xed")
        while index >= 0 and data[index + 1 : index + 2] < b"\xa0":
            index = data.find(b"\xed", index + 1)
        return index < 0
    if kind == "bool":
        return type(value) is bool
    if kind == "bytes":
        return isinstance(value, (bytes, bytearray))
    return type(value) is int


def _sets_base_only(record):
    # record holds known fields only: an empty one sets nothing, and needs a value like any other
    return bool(record) and all(name[0] == "b" for name in record)


# Resolved records (section 4.6), in chronological order. Each has its full name "n", an absolute
# time "t" (one below 2**28 counts from now_s, the receiver's clock in seconds since the epoch), its
# unit "u" unless it has none, its value with the base value added to v, "s" if it has a sum, "ut"
# if given, and "bver" only in a version other than 10. Records that only set base fields are left
# out.
def resolve(pack, now_s):
    pack = check(pack)
    if not _fits("number", now_s):
        raise DecodeError("senml: now must be a number")
    version = pack[0].get("bver", VERSION)
    base = {}  # the base fields in force (and other fields of earlier records, never read)
    items = []  # (time, index, resolved record), to sort
    for record in pack:
        base.update(record)
        if _sets_base_only(record):
            continue
        out = {name: value for name, value in record.items() if name[0] != "b"}
        out["n"] = base.get("bn", "") + record.get("n", "")
        if "bu" in base:
            out.setdefault("u", base["bu"])
        time_s = base.get("bt", 0) + record.get("t", 0)
        out["t"] = time_s if time_s >= 268435456 else now_s + time_s  # 2**28 and above: absolute
        if "v" in out:
            out["v"] += base.get("bv", 0)
        if "s" in out or "bs" in base:
            out["s"] = base.get("bs", 0) + out.get("s", 0)
        if version != VERSION:
            out["bver"] = version
        for name in ("t", "v", "s"):
            if name in out and not _fits("number", out[name]):
                raise DecodeError(f"senml: resolved {name} of {out['n']!r} is out of range")
        items.append((out["t"], len(items), out))
    # the index breaks ties in the pack's order (MicroPython's sort is not stable)
    items.sort()
    return [out for _, _, out in items]
