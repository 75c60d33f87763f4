"""The serial device link on CPython: COBS, frames, the streaming decoder and Link's rules.

Exact bytes and the same behaviours under MicroPython are in tests/vectors/link-*.json.
"""

import struct
import zlib

import pytest
from fuzzing import PROPERTY_EXAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from luciole.protocols import cobs, link
from luciole.protocols.errors import DecodeError


def reference_cobs(data):
    """COBS byte by byte, after Cheshire & Baker's paper, as an independent oracle. Like the
    common implementations it ends without an empty block when the data ends on a full one."""
    out, block, ended_full = bytearray(), bytearray(), False
    for byte in data:
        ended_full = False
        if byte == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out += b"\xff" + block
                block.clear()
                ended_full = True
    if not ended_full:
        out += bytes([len(block) + 1]) + block
    return bytes(out)


def reference_frame(type_, seq, body, flags):
    raw = struct.pack(">BBBH", 1, type_, flags, seq) + body
    return raw + struct.pack("<I", zlib.crc32(raw))


types = st.integers(link.HELLO, link.LIFI)
seqs = st.integers(0, 0xFFFF)
bodies = st.binary(max_size=link.MAX_BODY_BYTES)


# --- COBS -----------------------------------------------------------------------------------


@given(st.binary(max_size=1200))
def test_cobs_matches_the_reference_and_round_trips(data):
    encoded = cobs.encode(data)
    assert bytes(encoded) == reference_cobs(data)
    assert 0 not in encoded
    assert len(encoded) <= cobs.max_encoded_len(len(data))
    assert bytes(cobs.decode(encoded)) == data


@settings(max_examples=PROPERTY_EXAMPLES)
@given(
    st.lists(
        st.sampled_from([b"\x00", b"\x01" * 253, b"\x02" * 254, b"\x03" * 255, b"\x04"]), max_size=5
    )
)
def test_cobs_block_boundaries(parts):
    data = b"".join(parts)
    assert bytes(cobs.encode(data)) == reference_cobs(data)
    assert bytes(cobs.decode(cobs.encode(data))) == data


@pytest.mark.parametrize("bad", [b"\x05\x11\x22", b"\x02\x11\x00\x01", b"\xff\x01"])
def test_cobs_decode_rejects_malformed_input(bad):
    with pytest.raises(DecodeError, match="cobs"):
        cobs.decode(bad)


# --- frames ---------------------------------------------------------------------------------


@settings(max_examples=PROPERTY_EXAMPLES)
@given(types, seqs, bodies, st.booleans())
def test_frame_round_trip_and_exact_bytes(type_, seq, body, ack):
    wire = link.encode_frame(type_, seq, body, ack)
    assert wire == reference_cobs(reference_frame(type_, seq, body, int(ack))) + b"\x00"
    frame = link.decode_frame(wire)
    assert (frame.type, frame.seq, frame.body, frame.ack_requested) == (type_, seq, body, ack)
    assert frame.flags == int(ack)


def test_frame_layout_byte_by_byte():
    wire = link.encode_frame(link.READING, 0x0107, b"\xa1\x01\x00", ack=True)
    raw = cobs.decode(wire[:-1])
    assert raw[:5] == b"\x01\x02\x01\x01\x07"  # version, type, flags, seq big-endian
    assert raw[5:8] == b"\xa1\x01\x00"
    assert raw[8:] == struct.pack("<I", zlib.crc32(raw[:8]))
    assert wire.endswith(b"\x00") and wire.count(0) == 1


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0, 1), {}),
        ((10, 1), {}),
        ((link.READING, -1), {}),
        ((link.READING, 0x10000), {}),
        ((link.READING, 1, bytes(1025)), {}),
        ((link.READING, 1, bytes(5)), {"max_body_bytes": 4}),
    ],
)
def test_encode_frame_refuses_what_no_decoder_accepts(args, kwargs):
    with pytest.raises(ValueError):
        link.encode_frame(*args, **kwargs)


def test_frame_error_is_a_decode_error_with_a_reason():
    with pytest.raises(DecodeError) as info:
        link.decode_frame(b"\x01\x01\x00")
    assert isinstance(info.value, link.FrameError)
    assert info.value.reason == "truncated"
    assert str(info.value) == "truncated"


def test_refused_intact_frame_names_its_seq_only_when_it_asked_for_an_ack():
    raw = reference_frame(12, 77, b"", 1)
    with pytest.raises(link.FrameError) as info:
        link.parse_frame(raw)
    assert (info.value.reason, info.value.seq) == ("type", 77)
    with pytest.raises(link.FrameError) as info:
        link.parse_frame(reference_frame(12, 77, b"", 0))
    assert info.value.seq is None


def test_max_body_bytes_is_configurable():
    wire = link.encode_frame(link.LIFI, 1, bytes(2000), max_body_bytes=2000)
    assert link.decode_frame(wire, max_body_bytes=2000).body == bytes(2000)
    with pytest.raises(link.FrameError, match="oversized"):
        link.decode_frame(wire)
    decoder = link.FrameDecoder(max_body_bytes=2000)
    assert [f.body for f in decoder.feed(wire)] == [bytes(2000)]


def test_a_link_may_take_shorter_bodies_than_it_sends():
    # a board that takes only commands holds a small decoder buffer, and still sends long replies
    board, gateway = link.Link(receive_body_bytes=64), link.Link()
    events = gateway.receive(board.send(link.RESPONSE, bytes(1000), 0), 1)
    assert [f.body for f in events] == [bytes(1000)]
    events = board.receive(gateway.send(link.COMMAND, bytes(64), 2), 3)
    assert [f.body for f in events if isinstance(f, link.Frame)] == [bytes(64)]
    events = board.receive(gateway.send(link.COMMAND, bytes(100), 4), 5)
    assert [str(e) for e in events] == ["oversized"]


def test_a_boards_duplicate_memory_covers_the_gateways_window():
    # a board remembers 2 x _GATEWAY_WINDOW frames: a gateway sending more at once could have a
    # retransmission taken for a new frame (delivered twice) once the board forgot the first
    from luciole.edge import serial_port
    from luciole.firmware import runtime

    assert serial_port.LINK_WINDOW <= runtime._GATEWAY_WINDOW


# --- streaming ------------------------------------------------------------------------------


# A frame from one byte string (type, seq, ack from its first 4 bytes): fewer draws keep
# 10,000 examples quick.
frames_st = st.lists(
    st.binary(min_size=4, max_size=84).map(
        lambda b: (link.HELLO + b[0] % 9, b[1] << 8 | b[2], b[4:], bool(b[3] & 1))
    ),
    max_size=5,
)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(frames_st, st.lists(st.integers(0, 1 << 16), max_size=8))
def test_stream_with_random_chunking_yields_every_frame(frames, cuts):
    stream = b"".join(link.encode_frame(*f) for f in frames)
    cuts = sorted(c % (len(stream) + 1) for c in cuts)
    decoder = link.FrameDecoder()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += decoder.feed(stream[a:b])
    assert [(f.type, f.seq, f.body, f.ack_requested) for f in out] == frames


def test_stream_accepts_bytearray_chunks():
    wire = link.encode_frame(link.EVENT, 3, b"\x00x")
    assert [f.body for f in link.FrameDecoder().feed(bytearray(wire))] == [b"\x00x"]


def test_oversized_run_is_dropped_early_and_reported_once():
    decoder = link.FrameDecoder(max_body_bytes=16)
    limit = link.max_wire_bytes(16)
    events = []
    for _ in range(1000):
        events += decoder.feed(b"\x01" * 100)
        assert decoder._len <= limit and len(decoder._buf) == limit
    good = link.encode_frame(link.READING, 1, b"ok")
    events += decoder.feed(b"\x00" + good)
    assert [e.reason for e in events[:-1]] == ["oversized"]
    assert events[-1].body == b"ok"


def test_a_frame_exactly_at_the_limit_passes_split_anywhere():
    body = bytes(range(1, 17))  # no 0x00 in body, header or CRC: the longest COBS form
    wire = link.encode_frame(link.READING, 0x0101, body, ack=True)
    assert wire.count(0) == 1 and len(wire) - 1 == link.max_wire_bytes(16)
    for cut in range(len(wire) + 1):
        decoder = link.FrameDecoder(max_body_bytes=16)
        assert [f.body for f in decoder.feed(wire[:cut]) + decoder.feed(wire[cut:])] == [body]


# --- Link -----------------------------------------------------------------------------------


def pair(**config):
    return link.Link(**config), link.Link(**config)


def test_first_output_starts_with_a_lone_delimiter():
    a = link.Link()
    first = a.send(link.HELLO, b"id", 0)
    assert first[0] == 0 and first[1] != 0
    assert a.send(link.READING, b"r", 0)[0] != 0
    b = link.Link()
    b.receive(first, 0)
    assert b.pending_output()[0] == 0  # b's first output: its ACK, after the lone 0x00


def test_reliable_exchange_and_notices():
    a, b = pair()
    events = b.receive(a.send(link.COMMAND, b"\xa0", 5), 6)
    assert [(f.type, f.seq, f.body) for f in events] == [(link.COMMAND, 0, b"\xa0")]
    ack = b.pending_output()
    assert b.pending_output() == b""
    notices = a.receive(ack, 7)
    assert [(kind, frame.seq, frame.body) for kind, frame in notices] == [
        (link.DELIVERED, 0, b"\xa0")
    ]
    assert a.poll(10_000) == [] and a.pending_output() == b""


def test_unreliable_frames_use_seqs_but_no_window_and_get_no_ack():
    a, b = pair(window=1)
    a.send(link.READING, b"1", 0)
    assert not a.can_send()
    wire = a.send(link.LOG, b"x", 0, reliable=False)
    assert [(f.seq, f.ack_requested) for f in b.receive(wire, 0)] == [(1, False)]
    assert b.pending_output() == b"\x00"  # only the opening delimiter, no ACK
    assert a.poll(10_000) == []  # not retransmitted


def test_send_refuses_ack_nack_and_a_full_window():
    a = link.Link(window=2)
    for t in (link.ACK, link.NACK):
        with pytest.raises(ValueError):
            a.send(t, b"", 0)
    with pytest.raises(ValueError):
        a.send(link.READING, bytes(1025), 0)
    a.send(link.READING, b"", 0)
    a.send(link.READING, b"", 0)
    with pytest.raises(ValueError, match="window"):
        a.send(link.READING, b"", 0)
    assert link.decode_frame(a.send(link.LOG, b"", 0, reliable=False)).seq == 2  # none lost


@pytest.mark.parametrize("window", [0, 17])
def test_window_must_fit_the_duplicate_memory(window):
    with pytest.raises(ValueError, match="window"):
        link.Link(window=window)
    with pytest.raises(ValueError, match="peer_window"):
        link.Link(peer_window=window)


def test_retransmission_timing_and_failure():
    a = link.Link(retry_ms=100, max_retries=2)
    wire = a.send(link.EVENT, b"e", 1000)
    assert a.poll_in_ms(1000) == 100
    assert a.poll(1099) == [] and a.pending_output() == b""
    assert a.poll_in_ms(1099) == 1
    assert a.poll(1100) == []
    assert a.pending_output() == b"\x00" + wire.lstrip(b"\x00")
    assert a.poll(1200) == [] and a.pending_output()
    assert a.poll_in_ms(1250) == 50
    notices = a.poll(1300)
    assert [(kind, f.body) for kind, f in notices] == [(link.FAILED, b"e")]
    assert a.poll_in_ms(1300) is None and a.can_send()


def test_retransmission_across_the_ticks_wrap():
    a = link.Link(retry_ms=100, max_retries=1)
    start = 0x3FFFFFFF - 30
    a.send(link.EVENT, b"e", start)
    assert a.poll(69) == []  # 2**30 wrap: 100 ms after start is 69
    assert a.pending_output()
    assert a.poll_in_ms(69) == 100


def test_ticks_diff():
    assert link.ticks_diff(5, 0x3FFFFFFF) == 6
    assert link.ticks_diff(0x3FFFFFFF, 5) == -6
    assert link.ticks_diff(2_000_000_000_123, 2_000_000_000_000) == 123  # CPython monotonic ms


def test_duplicate_is_acked_again_but_delivered_once():
    a, b = pair(retry_ms=100)
    wire = a.send(link.READING, b"r", 0)
    assert len(b.receive(wire, 0)) == 1
    b.pending_output()  # the ACK is lost
    a.poll(100)
    again = a.pending_output()
    assert b.receive(again, 100) == []
    assert a.receive(b.pending_output(), 101)[0][0] == link.DELIVERED


def test_restarted_peer_is_heard():
    a, b = pair(retry_ms=100, max_retries=1)  # dedup window: 200 ms
    b.receive(a.send(link.READING, b"same", 0), 0)
    # Restarted without HELLO, the same bytes within the window look like a retransmission...
    a = link.Link(retry_ms=100, max_retries=1)
    assert b.receive(a.send(link.READING, b"same", 50), 50) == []
    # ...but different bytes, a HELLO, or the window's end are heard.
    a = link.Link(retry_ms=100, max_retries=1)
    assert len(b.receive(a.send(link.READING, b"other", 60), 60)) == 1
    a = link.Link(retry_ms=100, max_retries=1)
    hello = a.send(link.HELLO, b"id", 70)
    again = a.send(link.READING, b"other", 70)  # seq 1, identical to what b has seen
    assert [f.type for f in b.receive(hello + again, 70)] == [link.HELLO, link.READING]
    a = link.Link(retry_ms=100, max_retries=1)
    assert len(b.receive(a.send(link.HELLO, b"id", 300), 300)) == 1


def test_hello_is_always_delivered():
    a, b = pair(retry_ms=100)
    hello = a.send(link.HELLO, b"id", 0)
    assert len(b.receive(hello, 0)) == 1
    assert len(b.receive(hello, 10)) == 1  # a repeated HELLO announces again: harmless


def test_refused_frame_is_nacked_and_its_sender_stops_retrying():
    a, b = pair()
    a.send(link.READING, b"too long", 0)  # lost on the way
    # What arrives instead under seq 0: intact, asking for an ACK, but of a type b cannot take.
    odd = cobs.encode(reference_frame(12, 0, b"", 1)) + b"\x00"
    events = b.receive(bytes(odd), 1)
    assert [(e.reason, e.seq) for e in events] == [("type", 0)]
    notices = a.receive(b.pending_output(), 2)
    assert [(kind, f.body) for kind, f in notices] == [(link.REJECTED, b"too long")]
    assert a.poll(10_000) == []


def test_stray_acks_are_ignored():
    a, b = pair()
    assert a.receive(link.encode_frame(link.ACK, 123), 0) == []
    wire = a.send(link.READING, b"", 0)
    b.receive(wire, 0)
    ack = b.pending_output()
    assert len(a.receive(ack, 0)) == 1
    assert a.receive(ack, 0) == []  # the same ACK twice


def test_garbage_on_the_line_is_reported_and_the_stream_goes_on():
    a, b = pair()
    events = b.receive(b"\x13\x37\x00" + a.send(link.READING, b"r", 0), 0)
    assert [type(e) for e in events] == [link.FrameError, link.Frame]


def test_sliding_window_blocks_behind_the_oldest_unacknowledged_frame():
    a, b = pair(window=3)
    wires = [a.send(link.READING, bytes([i]), 0) for i in range(3)]
    assert not a.can_send()
    for wire in wires[1:]:  # the first is lost; the others are acknowledged
        b.receive(wire, 0)
    a.receive(b.pending_output(), 0)
    assert not a.can_send()  # still behind frame 0
    a.poll(250)
    b.receive(a.pending_output(), 250)
    a.receive(b.pending_output(), 250)
    assert a.can_send()
