"""The device link's decoders fed random and damaged bytes: only FrameError comes out, nothing
hangs, and the streaming decoder's memory stays within its bound."""

from hypothesis import given
from hypothesis import strategies as st

from luciole.protocols import link

MAX_BODY = 64
LIMIT = link.max_wire_bytes(MAX_BODY)

# Strategies draw few values (a frame, or a list of changes, from one byte string), which keeps
# 10,000 examples per test within seconds. A frame: type, seq, ack from the first 4 bytes.
frame_st = st.binary(min_size=4, max_size=4 + MAX_BODY).map(
    lambda b: (link.HELLO + b[0] % 9, b[1] << 8 | b[2], b[4:], bool(b[3] & 1))
)
frames_st = st.lists(frame_st, min_size=1, max_size=4)


def feed_all(chunks, max_body=MAX_BODY):
    decoder = link.FrameDecoder(max_body)
    limit = link.max_wire_bytes(max_body)
    out = []
    for chunk in chunks:
        out += decoder.feed(chunk)
        assert len(decoder._buf) == limit and 0 <= decoder._len <= limit
    return out


def check_events(events, max_body=MAX_BODY):
    for event in events:
        assert isinstance(event, (link.Frame, link.FrameError)), event
        if isinstance(event, link.Frame):
            assert link.HELLO <= event.type <= link.LIFI
            assert 0 <= event.seq <= 0xFFFF and event.flags in (0, 1)
            assert len(event.body) <= max_body
        else:
            assert event.reason in (
                "crc",
                "version",
                "type",
                "flags",
                "truncated",
                "oversized",
                "cobs",
            )


# Changes, 4 bytes each: where (modulo the length), what, how much.
damage_st = st.binary(min_size=4, max_size=16).map(
    lambda b: [
        (b[i] << 8 | b[i + 1], b[i + 2] & 3, b[i + 3] * 3 % (3 * LIMIT))
        for i in range(0, len(b) - 3, 4)
    ]
)
chunk_st = st.integers(1, 100)  # chunk size: the stream is cut every so many bytes


def damage(data, changes):
    data = bytearray(data)
    for where, what, much in changes:
        at = where % (len(data) + 1)
        if what == 0 and at < len(data):
            data[at] ^= 1 << much % 8
        elif what == 1:
            data[at:at] = bytes([much & 0xFF]) * (1 + much % 4)
        elif what == 2:
            del data[at : at + 1 + much % 4]
        else:
            data[at:at] = b"\x01" * much  # a run without delimiter, up to 3 times the limit
    return bytes(data)


def chunked(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


@given(st.binary(max_size=400), chunk_st)
def test_stream_of_random_bytes(data, size):
    check_events(feed_all(chunked(data, size)))


@given(st.binary(max_size=400))
def test_decode_frame_of_random_bytes(data):
    try:
        check_events([link.decode_frame(data, MAX_BODY)])
    except link.FrameError as e:
        check_events([e])


@given(frames_st, damage_st, chunk_st)
def test_damaged_stream_loses_only_what_the_damage_touched(frames, changes, size):
    wires = [link.encode_frame(*f) for f in frames]
    damaged = damage(b"".join(wires), changes)
    events = feed_all(chunked(damaged, size))
    check_events(events)
    # Resynchronisation: the frames that survived whole behind the last damage, after a 0x00,
    # come out intact, whatever came before.
    got = [(f.type, f.seq, f.body, f.ack_requested) for f in events if isinstance(f, link.Frame)]
    for i in range(len(wires) - 1, -1, -1):
        tail = b"".join(wires[i:])
        before = len(damaged) - len(tail) - 1
        if not damaged.endswith(tail) or (before >= 0 and damaged[before] != 0):
            break
        assert frames[i] in got
    # Damage may hide frames but CRC-32 does not let it invent ones (with these few changes).
    assert all(f in frames for f in got)


@given(frame_st, damage_st)
def test_damaged_wire_to_decode_frame(frame, changes):
    wire = damage(link.encode_frame(*frame), changes)
    try:
        frame = link.decode_frame(wire, MAX_BODY)
    except link.FrameError as e:
        check_events([e])
    else:
        check_events([frame])


@given(st.lists(st.binary(max_size=200), max_size=6))
def test_link_receive_of_random_bytes_never_raises(chunks):
    a = link.Link(max_body_bytes=MAX_BODY)
    for now_ms, chunk in enumerate(chunks):
        for event in a.receive(chunk, now_ms):
            assert isinstance(event, (link.Frame, link.FrameError))
        a.poll(now_ms)
        a.pending_output()
