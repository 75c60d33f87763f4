"""The visitor receiver's content assembly, sans-I/O: MAC frame payloads in (from PhyReceiver),
events out. Symbols wait for their directory (a visitor usually catches a symbol first); each
transfer has its RaptorQ decoder; each object decoded is checked against the SHA-256 of the
directory, and one that does not match is never presented: it is reported, and its transfer
starts over. A directory with another content version replaces everything.
"""

import hashlib
from dataclasses import dataclass

import raptorq

from luciole.protocols import lifi_mac
from luciole.protocols.errors import DecodeError

ALIGNMENT = 8  # the only Al the raptorq package decodes with its default parameters
MAX_TRANSFER_BYTES = 4 * 1024 * 1024  # keeps a receiver's memory bounded whatever it hears
MAX_SYMBOL_BYTES = 2048
MAX_SOURCE_SYMBOLS = 8192  # with the two limits above, raptorq's defaults give one block (Z=1)
MAX_WAITING_FRAMES = 4096  # symbols kept while their directory has not been heard


@dataclass(frozen=True)
class ContentReplaced:
    """A directory was heard: new content (old_version is None for the first one)."""

    exhibit: str
    version: int
    old_version: int | None
    objects: list  # lifi_mac.Entry


@dataclass(frozen=True)
class Progress:
    object_id: str
    received: int  # distinct symbols of its transfer
    needed: int  # source symbols of its transfer: about that many rebuild it


@dataclass(frozen=True)
class ObjectComplete:
    entry: lifi_mac.Entry
    data: bytes  # matches entry.sha256


@dataclass(frozen=True)
class HashMismatch:
    """An object decoded to bytes that do not match its SHA-256: rejected, never presented."""

    entry: lifi_mac.Entry
    sha256: bytes  # what the bytes hash to


class _Transfer:
    def __init__(self, transfer, entries):
        self.transfer = transfer
        self.entries = entries  # the objects it carries, in order
        self.needed = -(-transfer.length // transfer.symbol_size)
        self.done = set()  # ids presented
        self._restart()

    def _restart(self):
        self.decoder = raptorq.Decoder.with_defaults(
            self.transfer.length, self.transfer.symbol_size
        )
        self.seen = set()  # (SBN, ESI) received

    def feed(self, symbol):
        """Events for one symbol of this transfer."""
        if len(self.done) == len(self.entries):
            return []
        if symbol.sbn() != 0:
            raise DecodeError(f"lifi-mac: source block {symbol.sbn()} of a one-block transfer")
        if len(symbol.packet) - 4 != self.transfer.symbol_size:
            raise DecodeError(
                f"lifi-mac: a symbol of {len(symbol.packet) - 4} bytes, "
                f"the directory says {self.transfer.symbol_size}"
            )
        esi = symbol.esi()
        if esi in self.seen:
            return []
        self.seen.add(esi)
        data = self.decoder.decode(symbol.packet)
        if data is None:
            return [Progress(e.id, len(self.seen), self.needed) for e in self._waiting()]
        return self._split(data)

    def _waiting(self):
        return [e for e in self.entries if e.id not in self.done]

    def _split(self, data):
        events, at = [], 0
        for entry in self.entries:
            chunk = data[at : at + entry.size]
            at += entry.size
            if entry.id in self.done:
                continue
            digest = hashlib.sha256(chunk).digest()
            if digest == entry.sha256:
                self.done.add(entry.id)
                events.append(ObjectComplete(entry, chunk))
            else:
                events.append(HashMismatch(entry, digest))
        if len(self.done) < len(self.entries):
            self._restart()  # a bad symbol went in: collect afresh
        return events


class ContentAssembler:
    """Feed MAC frame payloads; get ContentReplaced, Progress, ObjectComplete, HashMismatch."""

    def __init__(self):
        self.directory = None
        self._directory_frame = None
        self._transfers = []
        self._waiting = []  # Symbols heard before their directory
        self.frames = 0
        self.rejected = 0  # frames that are not valid MAC frames, or contradict the directory
        self.last_error = None

    def feed(self, payload):
        self.frames += 1
        try:
            frame = lifi_mac.decode(payload)
            if isinstance(frame, lifi_mac.Directory):
                return self._on_directory(frame, bytes(payload))
            return self._on_symbol(frame)
        except DecodeError as e:
            self.rejected += 1
            self.last_error = str(e)
            return []

    def complete(self):
        """True once every object of the current directory has been presented."""
        return self.directory is not None and all(
            len(t.done) == len(t.entries) for t in self._transfers
        )

    def presented(self):
        """Ids of the current directory's objects presented so far."""
        return set().union(*(t.done for t in self._transfers))

    def _on_directory(self, directory, raw):
        if raw == self._directory_frame:
            return []
        for n, transfer in enumerate(directory.transfers):
            _check_supported(n, transfer)
        old = self.directory.version if self.directory else None
        self.directory, self._directory_frame = directory, raw
        self._transfers = [
            _Transfer(t, [e for e in directory.objects if e.transfer == n])
            for n, t in enumerate(directory.transfers)
        ]
        events = [ContentReplaced(directory.exhibit, directory.version, old, directory.objects)]
        waiting, self._waiting = self._waiting, []
        for symbol in waiting:
            if symbol.version == directory.version:
                events += self._on_symbol(symbol)
        return events

    def _on_symbol(self, symbol):
        if self.directory is None or symbol.version != self.directory.version:
            # maybe the next version, whose directory is on its way
            self._waiting.append(symbol)
            del self._waiting[:-MAX_WAITING_FRAMES]
            return []
        if symbol.transfer >= len(self._transfers):
            raise DecodeError(
                f"lifi-mac: symbol of transfer {symbol.transfer}, "
                f"the directory has {len(self._transfers)}"
            )
        return self._transfers[symbol.transfer].feed(symbol)


def _check_supported(n, transfer):
    """Only one-block transfers with the raptorq package's alignment are decoded here; the
    gateway's carousel makes no others."""
    if (transfer.source_blocks, transfer.sub_blocks, transfer.alignment) != (1, 1, ALIGNMENT):
        raise DecodeError(
            f"lifi-mac: transfer {n} has Z={transfer.source_blocks} N={transfer.sub_blocks} "
            f"Al={transfer.alignment}; this receiver decodes Z=1 N=1 Al={ALIGNMENT}"
        )
    symbols = -(-transfer.length // transfer.symbol_size)
    if (
        transfer.length > MAX_TRANSFER_BYTES
        or transfer.symbol_size > MAX_SYMBOL_BYTES
        or symbols > MAX_SOURCE_SYMBOLS
    ):
        raise DecodeError(
            f"lifi-mac: transfer {n} of {transfer.length} bytes in {symbols} symbols of "
            f"{transfer.symbol_size}: more than this receiver holds"
        )
