# Vector ops for protocols/lifi_mac.py ("lifimac.<name>"), under CPython and MicroPython alike.
# Frames are hex; a directory is spelled as JSON {"exhibit", "version", "transfers": [[F, T, Z, N,
# Al]], "objects": [{"id", "type", "size", "sha256" (hex), "priority", "transfer"}]}.
try:
    from luciole.protocols import lifi_mac
except ImportError:
    from protocols import lifi_mac


def _spell(decoded):
    if isinstance(decoded, lifi_mac.Symbol):
        return {
            "version": decoded.version,
            "transfer": decoded.transfer,
            "sbn": decoded.sbn(),
            "esi": decoded.esi(),
            "symbol": decoded.packet[4:].hex(),
        }
    return {
        "exhibit": decoded.exhibit,
        "version": decoded.version,
        "transfers": [
            [t.length, t.symbol_size, t.source_blocks, t.sub_blocks, t.alignment]
            for t in decoded.transfers
        ],
        "objects": [
            {
                "id": e.id,
                "type": e.type,
                "size": e.size,
                "sha256": e.sha256.hex(),
                "priority": e.priority,
                "transfer": e.transfer,
            }
            for e in decoded.objects
        ],
    }


def _directory(spec):
    return lifi_mac.Directory(
        spec["exhibit"],
        spec["version"],
        [lifi_mac.Transfer(*t) for t in spec["transfers"]],
        [
            lifi_mac.Entry(
                o["id"],
                o["type"],
                o["size"],
                bytes.fromhex(o["sha256"]),
                o["priority"],
                o["transfer"],
            )
            for o in spec["objects"]
        ],
    )


def _encode_directory(spec):
    return lifi_mac.encode_directory(_directory(spec)).hex()


def _encode_symbol(spec):
    packet = bytes.fromhex(spec["payload_id"] + spec["symbol"])
    return lifi_mac.encode_symbol(spec["version"], spec["transfer"], packet).hex()


def _decode(hex_input):
    return _spell(lifi_mac.decode(bytes.fromhex(hex_input)))


def _roundtrip(spec):
    return _spell(lifi_mac.decode(lifi_mac.encode_directory(_directory(spec))))


OPS = {
    "encode_directory": _encode_directory,
    "encode_symbol": _encode_symbol,
    "decode": _decode,
    "roundtrip": _roundtrip,
}
