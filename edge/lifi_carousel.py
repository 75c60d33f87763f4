"""The Li-Fi carousel: an exhibit's objects fountain-coded (RaptorQ, RFC 6330) into the finite list
of MAC frame payloads a luminaire loops. Layout and reasoning: docs/lifi-content.md.

Objects of one priority are concatenated into one RaptorQ transfer, so every frame a visitor
receives helps every object of that priority: one code per object would make the visitor wait for
the unluckiest object while the frames of the finished ones go to waste. Priority 0 (title, summary,
thumbnail: the first glimpse) gets a fixed share of the slots, dense enough to arrive within a
second of joining; the other transfers share the rest in proportion to their size, so they finish
together. Earliest-deadline-first spreads every stream evenly over the loop, and the loop holds
`coverage` times as many distinct symbols as a transfer has source symbols, so a visitor losing
frames never sees a symbol twice before decoding.
"""

import hashlib
from dataclasses import dataclass

import raptorq

from luciole.protocols import lifi_mac

ALIGNMENT = 8  # RFC 6330 Al, as the raptorq package derives it
COVERAGE = 2.0  # distinct symbols per source symbol in one loop: decodes with up to ~45% loss
# Each extra frame costs every visitor airtime: these two keep the mean time to all the content
# within 3% of the erasure bound while the first glimpse comes in about half a second (bench lifi).
DIRECTORY_EVERY = 32  # one directory frame per this many frames
GLIMPSE_EVERY = 40  # one first-glimpse symbol per this many frames
MIN_SYMBOLS = 8  # per transfer and loop: at 20% loss a visitor misses all 8 once in 400,000 loops


@dataclass(frozen=True)
class Item:
    """One object to broadcast."""

    id: str
    type: str
    priority: int
    data: bytes


@dataclass(frozen=True)
class Carousel:
    frames: list  # MAC frame payloads, looped by the luminaire in this order
    directory: lifi_mac.Directory
    source_symbols: list  # K of each transfer: any K (plus a frame or two) received rebuild it


def symbol_size(max_payload):
    """The largest RaptorQ symbol size whose symbol frame fits a PHY payload of max_payload."""
    size = (max_payload - lifi_mac.SYMBOL_OVERHEAD) // ALIGNMENT * ALIGNMENT
    if size < ALIGNMENT:
        raise ValueError(f"a PHY payload of {max_payload} bytes cannot carry a symbol frame")
    return size


def build(exhibit, version, items, max_payload, coverage=COVERAGE, plain=False):
    """The carousel of items. plain=True builds the classic baseline instead: source symbols only,
    each transfer in turn, the directory as often."""
    directory, payloads = _transfers(exhibit, version, items, symbol_size(max_payload))
    directory_frame = lifi_mac.encode_directory(directory)
    if len(directory_frame) > max_payload:
        raise ValueError(
            f"the directory takes {len(directory_frame)} bytes, more than a frame's {max_payload}"
        )
    ks = [-(-t.length // t.symbol_size) for t in directory.transfers]
    if plain:
        streams = [i for i, k in enumerate(ks) for _ in range(k)]
        slots = _plain_slots(streams)
    else:
        slots = _slots(ks, directory.objects[0].priority == 0 and len(ks) > 1, coverage)
    wanted = [slots.count(i) for i in range(len(ks))]
    packets = [
        _packets(data, t.symbol_size, max(0, n - k))[:n]
        for data, t, k, n in zip(payloads, directory.transfers, ks, wanted, strict=True)
    ]
    sent = [0] * len(ks)
    frames = []
    for slot in slots:
        if slot is None:
            frames.append(directory_frame)
        else:
            packet = packets[slot][sent[slot]]
            sent[slot] += 1
            frames.append(lifi_mac.encode_symbol(version, slot, packet))
    return Carousel(frames, directory, ks)


def _transfers(exhibit, version, items, max_symbol_size):
    """The directory and each transfer's bytes: one transfer per priority, lowest first."""
    items = sorted(items, key=lambda item: item.priority)  # stable: keeps the given order
    levels = sorted({item.priority for item in items})
    transfers, payloads, entries = [], [], []
    for n, level in enumerate(levels):
        members = [item for item in items if item.priority == level]
        data = b"".join(item.data for item in members)
        # a small transfer gets a small symbol: its frames then take less airtime
        size = min(max_symbol_size, -(-len(data) // ALIGNMENT) * ALIGNMENT)
        transfers.append(lifi_mac.Transfer(len(data), size, 1, 1, ALIGNMENT))
        payloads.append(data)
        for item in members:
            digest = hashlib.sha256(item.data).digest()
            entries.append(lifi_mac.Entry(item.id, item.type, len(item.data), digest, level, n))
    return lifi_mac.Directory(exhibit, version, transfers, entries), payloads


def _packets(data, size, repair):
    packets = raptorq.Encoder.with_defaults(data, size).get_encoded_packets(repair)
    if len(packets[0]) != 4 + size:
        raise ValueError(f"raptorq chose symbols of {len(packets[0]) - 4} bytes, not {size}")
    return packets


def _slots(ks, glimpse, coverage):
    """Which stream each frame of the loop carries: None for the directory, else a transfer index.
    Transfer 0 is the first glimpse when glimpse is true."""
    weights = {None: 1 / DIRECTORY_EVERY}
    rest = 1 - weights[None]
    if glimpse:
        weights[0] = 1 / GLIMPSE_EVERY
        rest -= weights[0]
    bulk = [i for i in range(len(ks)) if i not in weights]
    total = sum(ks[i] for i in bulk)
    for i in bulk:
        weights[i] = rest * ks[i] / total
    length = max(int(-(-max(coverage * k, MIN_SYMBOLS) // weights[i])) for i, k in enumerate(ks))
    # earliest deadline first: stream s is due for the n-th time at slot (n + phase) / weight
    phase = {s: 0.0 if s is None else 0.5 for s in weights}
    sent = dict.fromkeys(weights, 0)
    slots = []
    for _ in range(length):
        chosen = min(weights, key=lambda s: (sent[s] + phase[s]) / weights[s])
        sent[chosen] += 1
        slots.append(chosen)
    return slots


def _plain_slots(streams):
    slots = []
    for n, stream in enumerate(streams):
        if n % (DIRECTORY_EVERY - 1) == 0:
            slots.append(None)
        slots.append(stream)
    return slots
