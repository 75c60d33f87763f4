"""The outbox on its own: order, the bound with drop-oldest counted, and surviving a reopen."""

from luciole.edge.store import Message, Outbox


def messages(device, seqs):
    return [Message(f"t/{device}", b"p%d" % s, device, s, "application/senml+cbor") for s in seqs]


def test_fifo_across_reopen(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db", max_messages=100)
    outbox.put(messages("a", range(3)) + messages("b", range(2)))
    outbox.close()
    outbox = Outbox(tmp_path / "outbox.db", max_messages=100)
    assert outbox.depth == 5
    assert [(m.device, m.seq) for m in outbox.peek(0, 10)] == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("b", 1),
    ]


def test_the_bound_drops_the_oldest_and_counts_them(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db", max_messages=10)
    outbox.put(messages("a", range(8)))
    assert outbox.dropped == 0
    outbox.put(messages("a", range(8, 15)))
    assert outbox.dropped == 5
    stored = outbox.put(messages("a", range(15, 40)))  # a batch larger than the bound
    assert outbox.depth == 10 and outbox.dropped == 30
    assert outbox.peek(0, 100) == stored  # put returns what it kept
    assert [m.seq for m in stored] == list(range(30, 40))
    outbox.close()
    assert Outbox(tmp_path / "outbox.db", max_messages=10).dropped == 30  # kept on disk


def test_remove_forgets_only_what_was_acknowledged(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db", max_messages=100)
    outbox.put(messages("a", range(6)))
    first = outbox.peek(0, 3)
    outbox.remove([m.id for m in first])
    assert outbox.depth == 3
    assert [m.seq for m in outbox.peek(0, 10)] == [3, 4, 5]
    assert [m.seq for m in outbox.peek(first[-1].id + 1, 10)] == [4, 5]


def test_put_returns_the_messages_as_stored(tmp_path):
    """The uplink publishes what put returns without reading it back: same ids, same content."""
    outbox = Outbox(tmp_path / "outbox.db", max_messages=100)
    first = outbox.put(messages("a", range(3)))
    outbox.remove([first[0].id])
    second = outbox.put(messages("b", range(4)))
    assert outbox.peek(0, 100) == first[1:] + second
    assert [m.id for m in first + second] == sorted({m.id for m in first + second})
