try:
    from luciole.protocols import cbor
except ImportError:
    from protocols import cbor


def _decode(hex_input):
    return cbor.loads(bytes.fromhex(hex_input))


def _encode(desc):
    from runner import build

    return cbor.dumps(build(desc)).hex()


OPS = {"decode": _decode, "encode": _encode}
