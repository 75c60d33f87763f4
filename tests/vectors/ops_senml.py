# SenML ops. A pack comes in its JSON form (vd in base64url), as a JSON value or as JSON text,
# through decode_json, so the fuzz lane can feed any text to every op. Few functions and names:
# each name is interned for good in MicroPython's 64 KB heap.
import json

try:
    from luciole.protocols import senml
except ImportError:
    from protocols import senml


def _pack(desc):
    return senml.decode_json(desc if isinstance(desc, str) else json.dumps(desc))


OPS = {
    "decode_json": senml.decode_json,
    "decode_cbor": lambda desc: senml.decode_cbor(bytes.fromhex(desc)),
    # {"pack": ..., "now_s": seconds}; plain text is a pack resolved at now_s 1,700,000,000
    "resolve": lambda desc: (
        senml.resolve(_pack(desc), 1700000000)
        if isinstance(desc, str)
        else senml.resolve(_pack(desc["pack"]), desc["now_s"])
    ),
    "encode_json": lambda desc: senml.encode_json(_pack(desc)).decode(),
    "encode_cbor": lambda desc: senml.encode_cbor(_pack(desc)).hex(),
    # {"base_name", "readings": [[name, value, unit, time_s]], "base_time_s"}, bytes as {"$bytes"}
    "make_pack": lambda desc: senml.make_pack(
        desc["base_name"],
        [
            [bytes.fromhex(item["$bytes"]) if type(item) is dict else item for item in record]
            for record in desc["readings"]
        ],
        desc.get("base_time_s"),
    ),
    "cbor_to_json": lambda desc: senml.encode_json(senml.decode_cbor(bytes.fromhex(desc))).decode(),
}
