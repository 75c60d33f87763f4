"""The durable outbox: every accepted message waits here, on disk, until the broker's PUBACK.

SQLite in WAL mode with synchronous=FULL, so a committed message survives kill -9 and power loss.
Messages keep their arrival order (a monotonic id). The outbox is bounded: past `max_messages` the
oldest are dropped and counted, never silently. Calls block: the gateway runs them on one thread.
"""

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    device: str
    seq: int
    content_type: str
    qos: int = 1
    id: int = 0  # assigned by the outbox


class Outbox:
    def __init__(self, path: Path, max_messages: int):
        self.max_messages = max_messages
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL, payload BLOB NOT NULL, device TEXT NOT NULL,
                seq INTEGER NOT NULL, content_type TEXT NOT NULL, qos INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )
        self.depth = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        self.dropped = row[0] if row else 0

    def put(self, messages: list[Message]) -> list[Message]:
        """Commits messages durably in one transaction; returns them as stored, with their ids
        (less any that the bound dropped at once, in a batch larger than it)."""
        excess = max(0, self.depth + len(messages) - self.max_messages)
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO outbox (topic, payload, device, seq, content_type, qos) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(m.topic, m.payload, m.device, m.seq, m.content_type, m.qos) for m in messages],
            )
            # one statement, one writer: the batch's ids are consecutive
            last_id = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
            if excess:
                self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                    (excess,),
                )
                self._db.execute(
                    "INSERT INTO counters VALUES ('dropped', ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (self.dropped + excess,),
                )
        dropped_new = max(0, excess - self.depth)  # new messages past the bound at once
        self.dropped += excess
        self.depth += len(messages) - excess
        first_id = last_id - len(messages) + 1
        return [
            Message(m.topic, m.payload, m.device, m.seq, m.content_type, m.qos, first_id + i)
            for i, m in enumerate(messages[dropped_new:], dropped_new)
        ]

    def peek(self, after_id: int, limit: int) -> list[Message]:
        """The oldest messages with an id above after_id, in order."""
        rows = self._db.execute(
            "SELECT topic, payload, device, seq, content_type, qos, id FROM outbox "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [Message(*row) for row in rows]

    def remove(self, ids: list[int]) -> None:
        """Forgets messages the broker acknowledged."""
        with self._db:
            self._db.execute("BEGIN")
            cursor = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
        self.depth -= cursor.rowcount

    def close(self):
        self._db.close()
