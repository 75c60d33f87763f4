"""Group commit: readings from every link land in the outbox together, one transaction at a time.

A link awaits `accept(messages)` and only then acknowledges its device: once it returns, the
readings are on disk. While one transaction commits, the next batch gathers.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from .store import Message, Outbox


class Intake:
    def __init__(self, outbox: Outbox, db: ThreadPoolExecutor):
        self.outbox = outbox
        self._db = db
        self._pending: list[Message] = []
        self._waiters: list[asyncio.Future] = []
        self._flusher: asyncio.Task | None = None
        self.committed = asyncio.Event()  # set after each commit: the uplink has work

    async def accept(self, messages: list[Message]) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._pending.extend(messages)
        self._waiters.append(waiter)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await waiter

    async def _flush(self):
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            try:
                await loop.run_in_executor(self._db, self.outbox.put, batch)
            except Exception as e:  # e.g. disk full: nothing is acknowledged; the gateway stops
                for waiter in waiters:
                    if not waiter.done():  # a cancelled link no longer waits
                        waiter.set_exception(e)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self.committed.set()

    async def run_db(self, fn, *args):
        """Runs a store call on the one thread that owns the database."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)
