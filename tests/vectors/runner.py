# Runs shared test vectors; the same file runs under CPython (imported by pytest) and under
# MicroPython (a subprocess fed one vector per line on stdin, answering one JSON line each).
#
# A vector is {"id", "op", "input", and "expected" or "error"}. The op "cbor.decode" lives in
# ops_cbor.py as OPS["decode"]: each domain keeps its own ops module.
import json
import sys

try:
    from luciole.protocols.cbor import Tag
    from luciole.protocols.errors import DecodeError
except ImportError:
    from protocols.cbor import Tag
    from protocols.errors import DecodeError


def _ops(domain):
    return __import__("ops_" + domain).OPS


def describe(value):
    """A JSON form of a decoded value that both interpreters produce identically."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, float):
        if value != value:
            return {"$float": "nan"}
        if value in (float("inf"), float("-inf")):
            return {"$float": "inf" if value > 0 else "-inf"}
        return value
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: describe(v) for k, v in value.items()}
        # MicroPython's dicts keep no insertion order: pairs are listed sorted by key
        pairs = [[describe(k), describe(v)] for k, v in value.items()]
        return {"$map": sorted(pairs, key=lambda pair: json.dumps(pair[0]))}
    tag = getattr(value, "tag", None)
    if tag is not None:
        return {"$tag": tag, "value": describe(value.value)}
    return value


def build(desc):
    """The inverse of describe: a value from its JSON form."""
    if isinstance(desc, list):
        return [build(v) for v in desc]
    if isinstance(desc, dict):
        if "$bytes" in desc:
            return bytes.fromhex(desc["$bytes"])
        if "$float" in desc:
            return float(desc["$float"])
        if "$map" in desc:
            return {_hashable(build(k)): build(v) for k, v in desc["$map"]}
        if "$tag" in desc:
            return Tag(desc["$tag"], build(desc["value"]))
        return {k: build(v) for k, v in desc.items()}
    return desc


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def run(vector):
    domain, op = vector["op"].split(".", 1)
    try:
        return {"id": vector["id"], "result": describe(_ops(domain)[op](vector["input"]))}
    except DecodeError as e:
        return {"id": vector["id"], "error": "DecodeError", "message": str(e)}
    except Exception as e:  # reported, never hidden: the test fails on any other error
        return {"id": vector["id"], "error": type(e).__name__, "message": str(e)}


def main():
    import gc

    while True:
        line = sys.stdin.readline()
        if not line:
            break
        vector = json.loads(line)
        del line
        gc.collect()  # no vector pays for the garbage of the ones before it
        print(json.dumps(run(vector)))


if __name__ == "__main__":
    main()
