"""SQLite store: one file shared by every thread and process of the app (gunicorn workers).

Each thread gets its own connection (re-made in a forked child), the file runs in WAL mode,
a locked file is waited for in short naps (:class:`Patient`), and every operation is one
autocommit statement (``DELETE ... RETURNING``, UPSERT ... ``RETURNING``) or one ``BEGIN
IMMEDIATE`` transaction, so it is atomic across processes. Expiry compares against
``self.clock()`` passed in as a parameter, never SQLite's own time.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from .base import Clock, Store, StoreUnavailableError, check_batch
from .sqlite_connections import Patient, ThreadConnection

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lists (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS lists_key ON lists (key, id);
CREATE INDEX IF NOT EXISTS lists_expires ON lists (expires);
"""

_SET = """
INSERT INTO kv (key, value, expires) VALUES (:key, :value, :expires)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires
"""

_ADD = """
INSERT INTO kv (key, value, expires) VALUES (:key, :value, :expires)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires
    WHERE kv.expires IS NOT NULL AND kv.expires <= :now
RETURNING 1
"""

_HIT = """
INSERT INTO kv (key, value, expires) VALUES (:key, '1', :reset)
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN kv.expires IS NULL OR kv.expires <= :now THEN '1'
                 ELSE CAST(CAST(kv.value AS INTEGER) + 1 AS TEXT) END,
    expires = CASE WHEN kv.expires IS NULL OR kv.expires <= :now THEN :reset
                   ELSE kv.expires END
RETURNING CAST(value AS INTEGER), expires
"""

_HITS = """
INSERT INTO kv (key, value, expires) VALUES {rows}
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN kv.expires IS NULL OR kv.expires <= ? THEN '1'
                 ELSE CAST(CAST(kv.value AS INTEGER) + 1 AS TEXT) END,
    expires = CASE WHEN kv.expires IS NULL OR kv.expires <= ? THEN excluded.expires
                   ELSE kv.expires END
RETURNING key, CAST(value AS INTEGER), expires
"""
_UNDO_HIT = """
UPDATE kv SET value = CAST(MAX(CAST(value AS INTEGER) - 1, 0) AS TEXT)
WHERE key = :key AND (expires IS NULL OR expires > :now)
"""

_GET = "SELECT value, expires FROM kv WHERE key = :key AND (expires IS NULL OR expires > :now)"

_POP = """
DELETE FROM kv WHERE key = :key AND (expires IS NULL OR expires > :now)
RETURNING value
"""

_TAKE_EXPECTED = """
DELETE FROM kv WHERE key = :key AND (expires IS NULL OR expires > :now) AND value = :expected
RETURNING value
"""

_ITEMS = """
SELECT value FROM lists WHERE key = :key AND (expires IS NULL OR expires > :now)
ORDER BY id DESC
"""

_TRIM = """
DELETE FROM lists WHERE key = :key AND id NOT IN (
    SELECT id FROM lists WHERE key = :key ORDER BY id DESC LIMIT :max_items
)
"""


class SQLiteStore(Store):
    """A :class:`Store` in a SQLite file, safe across threads and processes.

    ``path`` is a file name (its directory is created if missing) or a ``file:`` URI such as
    ``file:/srv/app/auth.db?mode=ro``; ``clock`` is as for :class:`Store`; ``timeout`` is
    how long to wait for a lock, in seconds.
    """

    def __init__(self, path: str, clock: Clock | None = None, timeout: float = 5.0) -> None:
        super().__init__(clock)
        self.path = path
        self.timeout = timeout
        self._uri = path.startswith("file:")
        self._local = threading.local()
        self._pid = os.getpid()
        self._schema_ready = False

    # -- connections ----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again in a forked child)."""
        if self._pid != os.getpid():
            self._local = threading.local()
            self._pid = os.getpid()
        holder: ThreadConnection | None = getattr(self._local, "holder", None)
        if holder is None:
            holder = ThreadConnection(self._connect())
            self._local.holder = holder
        return holder.conn

    def _connect(self) -> sqlite3.Connection:
        if not self._uri:
            directory = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailableError(f"cannot create {directory!r}: {exc}") from exc
        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,  # used by one thread only, but may be closed by another
            uri=self._uri,
            factory=Patient,
        )
        conn.wait = self.timeout
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            # Connections opening a new file at once can be refused for a lock here without
            # the busy timeout applying: Patient waits for it.
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
            conn.execute("PRAGMA synchronous = NORMAL")
            if not self._schema_ready:
                conn.executescript(_SCHEMA)
                self._schema_ready = True
            conn.execute("PRAGMA busy_timeout = 0")  # from now on, Patient waits
        except BaseException:
            conn.close()
            raise
        return conn

    def _discard(self) -> None:
        """Close this thread's connection so the next call opens a fresh one."""
        holder: ThreadConnection | None = getattr(self._local, "holder", None)
        if holder is not None:
            del self._local.holder
            with contextlib.suppress(sqlite3.Error):
                holder.close()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """Yield this thread's connection; SQLite failures become StoreUnavailableError."""
        try:
            yield self._connection()
        except sqlite3.DatabaseError as exc:
            self._discard()
            raise StoreUnavailableError(f"SQLite store {self.path!r}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: the write lock is taken (or waited for) first.
        Inside :meth:`many`'s transaction, that one."""
        if getattr(self._local, "batch", False):
            with self._guard() as conn:
                yield conn
            return
        with self._guard() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _expires(self, now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    # -- the Store interface --------------------------------------------------------------

    def many(self, ops: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The operations of ``ops`` in one ``BEGIN IMMEDIATE`` transaction: one commit,
        and no other writer between them. A batch whose only write is one statement (reads
        and a :meth:`hits`, say) runs statement by statement instead: the file's write lock
        is then held for that statement, not for the whole batch."""
        check_batch(ops)
        writes = [op[0] for op in ops if op[0] != "get"]
        if len(ops) < 2 or (len(writes) <= 1 and "delete" not in writes):
            return super().many(ops)
        with self._transaction():
            self._local.batch = True
            try:
                return super().many(ops)
            finally:
                self._local.batch = False

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """Store ``value`` under ``key``, replacing any previous one, for ``ttl`` seconds
        (one UPSERT)."""
        expires = self._expires(self.clock(), ttl)
        with self._guard() as conn:
            conn.execute(_SET, {"key": key, "value": value, "expires": expires})

    def add(self, key: str, value: str, ttl: float | None) -> bool:
        """Store ``value`` for ``ttl`` seconds only if ``key`` is absent or expired (one
        conditional UPSERT); True when stored."""
        now = self.clock()
        params = {"key": key, "value": value, "expires": self._expires(now, ttl), "now": now}
        with self._guard() as conn:
            return bool(conn.execute(_ADD, params).fetchall())

    def get(self, key: str) -> str | None:
        """The live value of ``key``, or ``None`` when it is absent or expired."""
        with self._guard() as conn:
            row = conn.execute(_GET, {"key": key, "now": self.clock()}).fetchone()
        return None if row is None else str(row[0])

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when absent, ``inf`` when it never does."""
        now = self.clock()
        with self._guard() as conn:
            row = conn.execute(_GET, {"key": key, "now": now}).fetchone()
        if row is None:
            return None
        return math.inf if row[1] is None else float(row[1]) - now

    def delete(self, key: str) -> None:
        """Remove ``key`` (and a list of that name) if present."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            conn.execute("DELETE FROM lists WHERE key = ?", (key,))

    def pop(self, key: str, expected: str | None = None) -> str | None:
        """Read and delete ``key`` in one ``DELETE ... RETURNING``: one caller gets it; with
        ``expected``, only when the live value equals it."""
        params = {"key": key, "now": self.clock(), "expected": expected}
        with self._guard() as conn:
            rows = conn.execute(_POP if expected is None else _TAKE_EXPECTED, params).fetchall()
        return str(rows[0][0]) if rows else None

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one event on ``key`` in a fixed window of ``window`` seconds, with one UPSERT
        that restarts an ended window; return ``(count, seconds_until_reset)``."""
        now = self.clock()
        with self._guard() as conn:
            rows = conn.execute(_HIT, {"key": key, "now": now, "reset": now + window}).fetchall()
        count, expires = rows[0]
        return int(count), float(expires) - now

    def hits(self, windows: Sequence[tuple[str, float]]) -> list[tuple[int, float]]:
        """:meth:`hit` each ``(key, window)`` pair of ``windows`` in one multi-row UPSERT:
        one statement, one commit."""
        if len(windows) < 2:
            return [self.hit(key, window) for key, window in windows]
        now = self.clock()
        sql = _HITS.format(rows=", ".join(["(?, '1', ?)"] * len(windows)))
        params: list[object] = []
        for key, window in windows:
            params += [key, now + window]
        with self._guard() as conn:
            rows = conn.execute(sql, [*params, now, now]).fetchall()
        found = {str(key): (int(count), float(expires) - now) for key, count, expires in rows}
        return [found[key] for key, _ in windows]

    def undo_hit(self, key: str) -> None:
        """Take back one hit of ``key`` in its current window (never below zero); no-op if
        absent."""
        with self._guard() as conn:
            conn.execute(_UNDO_HIT, {"key": key, "now": self.clock()})

    def push(self, key: str, value: str, ttl: float | None, max_items: int) -> None:
        """Add ``value`` to the front of the list ``key``, keeping the newest ``max_items``;
        the whole list expires ``ttl`` seconds from now."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        now = self.clock()
        params = {
            "key": key,
            "value": value,
            "now": now,
            "expires": self._expires(now, ttl),
            "max_items": max_items,
        }
        with self._transaction() as conn:
            conn.execute("DELETE FROM lists WHERE key = :key AND expires <= :now", params)
            conn.execute(
                "INSERT INTO lists (key, value, expires) VALUES (:key, :value, :expires)", params
            )
            conn.execute("UPDATE lists SET expires = :expires WHERE key = :key", params)
            conn.execute(_TRIM, params)

    def items(self, key: str) -> list[str]:
        """The list ``key``, newest first (empty when absent or expired)."""
        with self._guard() as conn:
            rows = conn.execute(_ITEMS, {"key": key, "now": self.clock()}).fetchall()
        return [str(row[0]) for row in rows]

    def purge(self) -> int:
        """Delete expired rows now; return how many (list items counted one by one)."""
        now = (self.clock(),)
        with self._transaction() as conn:
            dropped = conn.execute("DELETE FROM kv WHERE expires <= ?", now).rowcount
            dropped += conn.execute("DELETE FROM lists WHERE expires <= ?", now).rowcount
        return dropped

    def size(self) -> int:
        """How many rows (keys, list items included) the file holds, expired or not."""
        with self._guard() as conn:
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM kv) + (SELECT COUNT(*) FROM lists)"
            ).fetchone()
        return int(row[0])

    def ping(self) -> None:
        """Open (or reuse) this thread's connection and run a trivial query."""
        with self._guard() as conn:
            conn.execute("SELECT 1").fetchall()

    def close(self) -> None:
        """Close this thread's connection; the next call opens a new one."""
        self._discard()
