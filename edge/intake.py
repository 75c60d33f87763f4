"""Group commit: readings from every link land in the outbox together, one transaction at a time.

A link awaits `accept(messages)` and only then acknowledges its device: once it returns, the
readings are on disk. While one transaction commits, the next batch gathers. The uplink, once it
has read the outbox to its end, takes what commits next from memory (`follow()`) rather than
reading it back from disk. ReadingPacks writes the readings' SenML payloads.
"""

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from luciole.protocols import cbor, senml

from .store import Message, Outbox

# messages handed to the uplink in memory at most; past that it has fallen behind (the broker is
# slow or away) and reads the outbox instead, so memory stays bounded
FOLLOW_MAX = 4096
CHECKED_SHAPES_MAX = 4096  # devices' (names, units) remembered as checked; then forgotten at once


class Intake:
    def __init__(self, outbox: Outbox, db: ThreadPoolExecutor):
        self.outbox = outbox
        self._db = db
        self._pending: list[Message] = []
        self._waiters: list[asyncio.Future] = []
        self._flusher: asyncio.Task | None = None
        self.committed = asyncio.Event()  # set after each commit: the uplink has work
        self.fresh: deque[Message] | None = None  # see follow()

    async def accept(self, messages: list[Message]) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._pending.extend(messages)
        self._waiters.append(waiter)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await waiter

    def follow(self) -> deque[Message]:
        """From now on, appends each committed message, with its outbox id, to the deque it
        returns, which stays `self.fresh` until it would pass FOLLOW_MAX or `unfollow()`.

        Commits and reads of the outbox run in turn on one thread, so a read started after this
        call sees everything committed before it, and the deque holds everything after."""
        self.fresh = deque()
        return self.fresh

    def unfollow(self) -> None:
        self.fresh = None

    async def _flush(self):
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            try:
                stored = await loop.run_in_executor(self._db, self.outbox.put, batch)
            except Exception as e:  # e.g. disk full: nothing is acknowledged; the gateway stops
                for waiter in waiters:
                    if not waiter.done():  # a cancelled link no longer waits
                        waiter.set_exception(e)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            fresh = self.fresh
            if fresh is not None:
                if len(fresh) + len(stored) > FOLLOW_MAX:
                    self.fresh = None  # the uplink is behind: it reads the outbox again
                else:
                    fresh.extend(stored)
            self.committed.set()

    async def run_db(self, fn, *args):
        """Runs a store call on the one thread that owns the database."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)


class ReadingPacks:
    """A reading's SenML pack as the city receives it: senml.make_pack() encoded by
    senml.encode_cbor() or encode_json(), byte for byte.

    senml's encoders check the whole pack each time, about a tenth of the gateway's CPU per
    reading. The names and units come from the device: senml checks them on the first pack that
    has them, then a CBOR reading with the same names and units and only numbers and booleans is
    encoded here, its numbers checked as senml checks them. Anything else goes through senml."""

    def __init__(self, telemetry_format: str):
        self._cbor = telemetry_format == "cbor"
        if self._cbor:
            self._encode, self.content_type = senml.encode_cbor, senml.CONTENT_TYPE_CBOR
        else:
            self._encode, self.content_type = senml.encode_json, senml.CONTENT_TYPE_JSON
        self._checked: set[tuple] = set()  # (base name, (name, unit), ...) that senml accepted

    def encode(self, device_id: str, seq: int, values, base_time_s) -> bytes:
        """values: (name, value, unit) tuples; raises DecodeError as senml does."""
        base_name = f"{device_id}:"
        shape = (base_name, *((name, unit) for name, _, unit in values))
        if (
            self._cbor
            and shape in self._checked
            and _is_number(base_time_s)
            and _is_number(seq)
            and all(type(v) is bool or _is_number(v) for _, v, _ in values)
        ):
            # RFC 8428's CBOR labels, in senml's order: bn -2, bt -3, n 0, u 1, v 2, vb 4
            records = [{-2: base_name, -3: base_time_s, 0: "seq", 2: seq}]
            for name, value, unit in values:
                record = {0: name} if name else {}
                if unit is not None:
                    record[1] = unit
                record[4 if type(value) is bool else 2] = value
                records.append(record)
            return cbor.dumps(records)
        readings = [("seq", seq, None, None), *((n, v, u, None) for n, v, u in values)]
        payload = self._encode(senml.make_pack(base_name, readings, base_time_s))
        if len(self._checked) >= CHECKED_SHAPES_MAX:
            self._checked.clear()
        self._checked.add(shape)
        return payload


def _is_number(value) -> bool:
    """What SenML accepts as a number: finite, no bool, within 64 bits (as senml checks)."""
    if type(value) is float:
        return value - value == 0
    return type(value) is int and -0x10000000000000000 <= value < 0x10000000000000000
