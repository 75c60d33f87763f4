# Vector ops for protocols/cobs.py and protocols/link.py ("link.<name>"), under CPython and
# MicroPython alike. Comments, not docstrings: this compiles inside MicroPython's 64 KB heap.
import gc
from binascii import crc32

gc.collect()  # link.py compiles from source here: give the compiler the heap in one piece
try:
    from luciole.protocols import cobs, link
except ImportError:
    from protocols import cobs, link


def _frame(frame):
    return {
        "type": frame.type,
        "seq": frame.seq,
        "ack": frame.ack_requested,
        "body": frame.body.hex(),
    }


def _error(error):
    if error.seq is None:
        return {"error": error.reason}
    return {"error": error.reason, "seq": error.seq}


def _cobs_encode(hex_input):
    return bytes(cobs.encode(bytes.fromhex(hex_input))).hex()


def _cobs_decode(hex_input):
    return bytes(cobs.decode(bytes.fromhex(hex_input))).hex()


def _encode(spec):
    body = bytes.fromhex(spec.get("body", ""))
    return link.encode_frame(spec["type"], spec["seq"], body, spec.get("ack", False)).hex()


def _roundtrip(spec):
    # A body of body_len bytes (i * 7 + 1) & 0xFF, too long to spell out in a vector line that
    # MicroPython reads in its 64 KB heap: the wire is summed up by its length and CRC-32.
    body = bytes((i * 7 + 1) & 0xFF for i in range(spec["body_len"]))
    wire = link.encode_frame(spec["type"], spec["seq"], body, spec.get("ack", False))
    frame = link.decode_frame(wire)
    return {"wire_bytes": len(wire), "wire_crc32": crc32(wire), "same": frame.body == body}


def _decode(spec):
    # spec: wire hex, or {"wire", "max_body_bytes"}
    if isinstance(spec, str):
        spec = {"wire": spec}
    max_body = spec.get("max_body_bytes", link.MAX_BODY_BYTES)
    return _frame(link.decode_frame(bytes.fromhex(spec["wire"]), max_body))


def _stream(spec):
    # spec: a list of hex chunks, one hex string (one chunk), or {"chunks", "max_body_bytes"}
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, list):
        spec = {"chunks": spec}
    decoder = link.FrameDecoder(spec.get("max_body_bytes", link.MAX_BODY_BYTES))
    out = []
    for chunk in spec["chunks"]:
        for item in decoder.feed(bytes.fromhex(chunk)):
            out.append(_error(item) if isinstance(item, link.FrameError) else _frame(item))
    return out


def _exchange(spec):
    # Two Links, "a" and "b", joined by a wire that loses or corrupts chosen writes. spec:
    #   config: Link keyword arguments for both ends; start_ms: the clock's start;
    #   drop: {side: [numbers of the writes lost]}; corrupt: {side: [numbers of the writes whose
    #   byte before the final delimiter is changed]}: each write (one send() result or one
    #   pending_output()) is numbered per side from 0;
    #   script: steps ["send", side, type, body hex, reliable], ["advance", ms],
    #   ["restart", side], ["inject", side, wire hex] (bytes arriving at side).
    # After each step both ends are polled and their output carried until the line is quiet.
    # Returns the log: [clock, side, what] with what one of ["frame", type, seq, body hex],
    # ["error", reason], [notice kind, seq], ["busy"] (window full), ["restart"].
    NOTICES = {link.DELIVERED: "delivered", link.REJECTED: "rejected", link.FAILED: "failed"}
    config = spec.get("config", {})
    clock = [spec.get("start_ms", 0)]
    links = {"a": link.Link(**config), "b": link.Link(**config)}
    writes = {"a": 0, "b": 0}
    drop = spec.get("drop", {})
    corrupt = spec.get("corrupt", {})
    log = []

    def now():
        return clock[0] & 0x3FFFFFFF  # what time.ticks_ms() would say

    def record(side, events):
        for ev in events:
            if isinstance(ev, link.Frame):
                what = ["frame", ev.type, ev.seq, ev.body.hex()]
            elif isinstance(ev, link.FrameError):
                what = ["error", ev.reason]
            else:
                what = [NOTICES[ev[0]], ev[1].seq]
            log.append([now(), side, what])

    def transmit(side, data):
        number = writes[side]
        writes[side] = number + 1
        if not data or number in drop.get(side, ()):
            return
        if number in corrupt.get(side, ()):
            data = bytearray(data)
            data[-2] = 0xFE if data[-2] == 0xFF else 0xFF  # never 0x00
            data = bytes(data)
        other = "b" if side == "a" else "a"
        record(other, links[other].receive(data, now()))

    for step in spec["script"]:
        action = step[0]
        if action == "send":
            side, type, body, reliable = step[1], step[2], bytes.fromhex(step[3]), step[4]
            if reliable and not links[side].can_send():
                log.append([now(), side, ["busy"]])
            else:
                transmit(side, links[side].send(type, body, now(), reliable))
        elif action == "advance":
            clock[0] += step[1]
        elif action == "restart":
            links[step[1]] = link.Link(**config)
            log.append([now(), step[1], ["restart"]])
        elif action == "inject":
            record(step[1], links[step[1]].receive(bytes.fromhex(step[2]), now()))
        busy = True
        while busy:
            busy = False
            for side in ("a", "b"):
                record(side, links[side].poll(now()))
                out = links[side].pending_output()
                if out:
                    busy = True
                    transmit(side, out)
    return log


OPS = {
    "cobs_encode": _cobs_encode,
    "cobs_decode": _cobs_decode,
    "encode": _encode,
    "decode": _decode,
    "roundtrip": _roundtrip,
    "stream": _stream,
    "exchange": _exchange,
}
