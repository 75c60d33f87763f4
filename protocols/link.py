# The serial device link (UART, RS-485, USB CDC) between a board and the gateway, sans-I/O.
# Byte-by-byte layout and the reliability rules: docs/device-link.md.
#
# Layers, bottom up: COBS with a 0x00 delimiter (cobs.py); frames with a header and a CRC-32
# (encode_frame, decode_frame, parse_frame); a streaming decoder fed arbitrary chunks
# (FrameDecoder); Link: sequence numbers, ACKs, retransmission, duplicate suppression.
# Nothing here reads a clock or a port: callers pass bytes and now_ms in.
# Comments rather than docstrings: MicroPython keeps docstrings in RAM while compiling a module.
import struct
from binascii import crc32

from . import cobs
from .errors import DecodeError

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


VERSION = const(1)

HELLO = const(1)  # identify/announce; resets the peer's duplicate memory (see Link)
READING = const(2)
EVENT = const(3)
COMMAND = const(4)
RESPONSE = const(5)
ACK = const(6)  # seq = the acknowledged frame's seq; consumed by Link, never delivered
NACK = const(7)  # seq = a frame that arrived intact but is refused: do not retry it
LOG = const(8)
LIFI = const(9)  # a Li-Fi carousel frame for the luminaire

FLAG_ACK = const(1)  # flags bit 0: ack requested; bits 1-7 are reserved and must be 0

MAX_BODY_BYTES = const(1024)
OVERHEAD_BYTES = const(9)  # header (version, type, flags, seq) + CRC-32
_HEADER_BYTES = const(5)
_MAX_WINDOW = const(16)

# Notices about our own reliable frames, as (kind, frame) events.
DELIVERED = const(1)  # the peer ACKed it
REJECTED = const(2)  # the peer NACKed it: retrying would not help
FAILED = const(3)  # no ACK after max_retries retransmissions

# time.ticks_ms() wraps at 2**30 on MicroPython; masking CPython's monotonic milliseconds the same
# way lets one comparison serve both (for intervals under 2**29 ms, about six days).
_TICKS_MASK = const(0x3FFFFFFF)
_TICKS_HALF = const(0x20000000)


def ticks_diff(end_ms, start_ms):
    d = (end_ms - start_ms) & _TICKS_MASK
    return d if d < _TICKS_HALF else d - _TICKS_MASK - 1


class FrameError(DecodeError):
    # reason: crc, version, type, flags, truncated, oversized or cobs. seq is set when the frame
    # passed its CRC and asked for an ACK but is refused anyway (unknown type, reserved flags,
    # body too long): Link answers it with a NACK so the sender stops retrying.
    def __init__(self, reason, seq=None):
        super().__init__(reason)
        self.reason = reason
        self.seq = seq


class Frame:
    # crc is the CRC-32 as received; Link uses it to recognise a retransmission.
    def __init__(self, type, seq, body=b"", flags=0, crc=None):
        self.type = type
        self.seq = seq
        self.body = body
        self.flags = flags
        self.crc = crc
        self.ack_requested = bool(flags & FLAG_ACK)  # an attribute: a property costs a board heap


def max_wire_bytes(max_body_bytes=MAX_BODY_BYTES):
    # The longest COBS form of a frame, delimiter excluded.
    return cobs.max_encoded_len(max_body_bytes + OVERHEAD_BYTES)


def encode_frame(type, seq, body=b"", ack=False, max_body_bytes=MAX_BODY_BYTES):
    # Wire bytes: COBS(header | body | CRC-32) then the 0x00 delimiter, built and stuffed in one
    # buffer whose byte 0 is the first COBS code. ValueError for what no decoder would accept.
    n = len(body)
    if not (HELLO <= type <= LIFI and 0 <= seq <= 0xFFFF and n <= max_body_bytes):
        raise ValueError("bad type, seq or body size")
    end = 1 + _HEADER_BYTES + n
    buf = bytearray(end + 5)  # and the CRC-32 and the delimiter
    struct.pack_into(">BBBH", buf, 1, VERSION, type, FLAG_ACK if ack else 0, seq)
    buf[1 + _HEADER_BYTES : end] = body
    struct.pack_into("<I", buf, end, crc32(memoryview(buf)[1:end]))
    cobs.stuff(buf, end + 4)
    return bytes(buf)


def parse_frame(raw, max_body_bytes=MAX_BODY_BYTES):
    # A Frame from unstuffed bytes (COBS removed, no delimiter); raises FrameError.
    n = len(raw)
    if n < OVERHEAD_BYTES:
        raise FrameError("truncated")
    # The version decides the layout, the CRC's place included, so it is checked first.
    if raw[0] != VERSION:
        raise FrameError("version")
    end = n - 4
    view = memoryview(raw)
    crc = crc32(view[:end])
    if crc != struct.unpack_from("<I", raw, end)[0]:
        raise FrameError("crc")
    _, type, flags, seq = struct.unpack_from(">BBBH", raw, 0)
    waiting = seq if flags & FLAG_ACK else None
    if not HELLO <= type <= LIFI:
        raise FrameError("type", waiting)
    if flags & ~FLAG_ACK:
        raise FrameError("flags", waiting)
    if end - _HEADER_BYTES > max_body_bytes:
        raise FrameError("oversized", waiting)
    return Frame(type, seq, bytes(view[_HEADER_BYTES:end]), flags, crc)


def decode_frame(data, max_body_bytes=MAX_BODY_BYTES):
    # A Frame from the wire bytes of exactly one frame, delimiters optional; raises FrameError.
    data = bytes(data).strip(b"\x00")
    if b"\x00" in data:
        raise FrameError("cobs")
    # nothing at all is a truncated frame (the decoder skips empty ones)
    found = FrameDecoder(max_body_bytes).feed(data + b"\x00") or [FrameError("truncated")]
    if isinstance(found[0], FrameError):
        raise found[0]
    return found[0]


class FrameDecoder:
    # feed(data) takes bytes or a bytearray split anywhere and returns the Frame and FrameError
    # objects it completes, in stream order. Memory: one fixed buffer, where each frame is
    # gathered and unstuffed in place; only a Frame's body is a new copy.
    def __init__(self, max_body_bytes=MAX_BODY_BYTES):
        self.max_body_bytes = max_body_bytes
        self._buf = memoryview(bytearray(max_wire_bytes(max_body_bytes)))
        self._len = 0  # bytes of a partial frame held in _buf
        self._skipping = False  # an oversized run was reported; drop bytes up to the next 0x00

    def feed(self, data):
        events = []
        n = len(data)
        view = memoryview(data)
        buf = self._buf
        start = 0
        while start < n:
            end = data.find(b"\x00", start)
            if end < 0:
                end = n
            held = self._len
            size = held + end - start
            if self._skipping:
                pass
            elif size > len(buf):
                events.append(FrameError("oversized"))
                self._skipping = True
                self._len = 0
            else:
                buf[held:size] = view[start:end]
                if end == n:  # the frame goes on in the next chunk
                    self._len = size
                else:
                    self._len = 0
                    if size:  # empty frames (0x00 0x00) are ignored
                        try:
                            unstuffed = cobs.unstuff(buf[:size])  # in place
                            if unstuffed < 0:
                                raise FrameError("cobs")
                            events.append(parse_frame(buf[:unstuffed], self.max_body_bytes))
                        except FrameError as e:
                            events.append(e)
            if end < n:
                self._skipping = False
            start = end + 1
        return events


class Link:
    # One end of a device link; both ends use it. The caller does the I/O:
    #   port.write(link.send(READING, body, now_ms))
    #   events = link.receive(port.read(), now_ms) + link.poll(now_ms)
    #   port.write(link.pending_output())  # ACKs, NACKs and retransmissions
    # Events: Frame (from the peer, never ACK/NACK), FrameError (bad bytes; the stream goes on),
    # and (DELIVERED | REJECTED | FAILED, frame) for our own reliable frames.
    def __init__(
        self,
        retry_ms=250,
        max_retries=4,
        window=4,
        max_body_bytes=MAX_BODY_BYTES,
        dedup_ms=None,
        receive_body_bytes=None,
        peer_window=_MAX_WINDOW,
    ):
        if not (1 <= window <= _MAX_WINDOW and 1 <= peer_window <= _MAX_WINDOW):
            raise ValueError("window and peer_window must be 1 to 16")
        self.retry_ms = retry_ms
        self.max_retries = max_retries
        self.window = window
        self.max_body_bytes = max_body_bytes
        # The last copy of a frame is sent max_retries * retry_ms after the first.
        self.dedup_ms = (max_retries + 1) * retry_ms if dedup_ms is None else dedup_ms
        # the longest body taken from the peer (default max_body_bytes): the decoder's buffer,
        # 1 KB by default, is what a board that takes only small commands can spare
        self._decoder = FrameDecoder(receive_body_bytes or max_body_bytes)
        self._seq = 0
        self._reliable = 0  # reliable frames sent, mod 2**16: the window's position
        self._flight = []  # [frame, wire, sent_ms, retries, reliable number], oldest first
        self._out = bytearray(1)  # a lone 0x00 ends whatever a previous run left half-sent
        # Seq, CRC and arrival time of the last new reliable frames, three items per frame in one
        # flat list (a list per frame would cost three times the heap). A duplicate comes back
        # before 2 * window - 2 other new ones (see can_send): the memory covers the peer's window
        # (at most 16; a board, whose peer is the gateway's window of 4, keeps 8 frames).
        self._seen = [-1, 0, 0] * (2 * peer_window)
        self._seen_next = 0  # the index of the next seq to overwrite: a multiple of 3

    def can_send(self):
        # A reliable frame may go when it is fewer than `window` reliable sends after the oldest
        # one still unacknowledged (a sliding window, as in TCP), not merely when fewer than
        # `window` are in flight: that bounds what the peer must remember to spot duplicates.
        flight = self._flight
        return not flight or (self._reliable - flight[0][4]) & 0xFFFF < self.window

    def send(self, type, body, now_ms, reliable=True):
        # Wire bytes of a new frame with the next seq, preceded by any pending output.
        if type in (ACK, NACK):
            raise ValueError("ACK and NACK come from the link itself")
        if reliable and not self.can_send():
            raise ValueError("window full: wait for a notice")
        seq = self._seq
        wire = encode_frame(type, seq, body, reliable, self.max_body_bytes)  # may refuse the body
        self._seq = (seq + 1) & 0xFFFF
        if reliable:
            frame = Frame(type, seq, body, FLAG_ACK)
            self._flight.append([frame, wire, now_ms, 0, self._reliable])
            self._reliable = (self._reliable + 1) & 0xFFFF
        if self._out:  # the opening 0x00 and queued ACKs go first
            wire = self.pending_output() + wire
        return wire

    def receive(self, data, now_ms):
        events = []
        for item in self._decoder.feed(data):
            if isinstance(item, FrameError):
                if item.seq is not None:
                    self._out += encode_frame(NACK, item.seq)
            elif item.type in (ACK, NACK):
                # A reply for nothing in flight (a repeated ACK, one from before a restart) is
                # ignored.
                for entry in self._flight:
                    if entry[0].seq == item.seq:
                        self._flight.remove(entry)
                        events.append((DELIVERED if item.type == ACK else REJECTED, entry[0]))
                        break
                continue
            else:
                if item.type == HELLO:  # the peer (re)started: its seqs may repeat old ones
                    seen = self._seen
                    for i in range(0, len(seen), 3):
                        seen[i] = -1
                if item.ack_requested:
                    self._out += encode_frame(ACK, item.seq)
                    # A retransmission repeats the same bytes: same seq and CRC within dedup_ms.
                    # A peer that restarted its seqs sends other bytes, waits dedup_ms, or says
                    # HELLO first.
                    seen = self._seen
                    duplicate = False
                    for i in range(0, len(seen), 3):
                        if seen[i] == item.seq:
                            duplicate = seen[i + 1] == item.crc and (
                                ticks_diff(now_ms, seen[i + 2]) < self.dedup_ms
                            )
                            if not duplicate:
                                seen[i] = -1
                            break
                    if duplicate:
                        continue
                    i = self._seen_next
                    seen[i] = item.seq
                    seen[i + 1] = item.crc
                    seen[i + 2] = now_ms
                    self._seen_next = (i + 3) % len(seen)
            events.append(item)
        return events

    def poll(self, now_ms):
        # Queues the retransmissions due; returns FAILED notices for frames out of retries.
        events = []
        flight = self._flight
        i = 0
        while i < len(flight):
            entry = flight[i]
            if ticks_diff(now_ms, entry[2]) >= self.retry_ms:
                if entry[3] >= self.max_retries:
                    flight.pop(i)
                    events.append((FAILED, entry[0]))
                    continue
                # A lost frame may have left a partial one at the peer: a 0x00 ends it first.
                self._out += b"\x00"
                self._out += entry[1]
                entry[2] = now_ms
                entry[3] += 1
            i += 1
        return events

    def poll_in_ms(self, now_ms):
        # Milliseconds until poll() has work (0: now), None when nothing is in flight.
        due = None
        for entry in self._flight:
            wait = max(self.retry_ms - ticks_diff(now_ms, entry[2]), 0)
            if due is None or wait < due:
                due = wait
        return due

    def pending_output(self):
        out = self._out
        if not out:
            return b""
        self._out = bytearray()
        return bytes(out)
