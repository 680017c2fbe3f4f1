"""The SQLite store's connections: one per thread, closed with the thread (never in a forked
child), each waiting for a locked file in naps of its own."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import weakref
from typing import Any

# Connections a forked child inherited: never closed there (closing a SQLite file descriptor
# in the child could drop POSIX locks its own connections hold); they go when it exits.
_INHERITED: list[sqlite3.Connection] = []


def _close(conn: sqlite3.Connection, pid: int) -> None:
    if pid == os.getpid():
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    else:
        _INHERITED.append(conn)


_SQLITE_BUSY = 5  # sqlite3.SQLITE_BUSY from Python 3.11


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` is SQLITE_BUSY: another connection holds the lock asked for."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    return code == _SQLITE_BUSY if code is not None else "database is locked" in str(exc)


class Patient(sqlite3.Connection):
    """A connection that waits for a lock in short naps of its own (from 0.1 ms, doubling
    up to 2 ms) for up to ``wait`` seconds, instead of SQLite's busy handler, whose first
    sleeps are 1, 2 and 5 ms: a write lock is held for tens of microseconds, so those
    overshoot it many times over. A statement refused for a lock did nothing, so running it
    again is safe; the nap also lets the lock's holder, when it is a thread of this process
    waiting for the GIL, go on."""

    wait = 5.0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
        deadline = time.monotonic() + self.wait
        nap = 0.0001
        while True:
            time.sleep(nap)
            try:
                return super().execute(sql, parameters)
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise
            nap = min(nap * 2, 0.002)


class ThreadConnection:
    """One thread's connection, closed when the thread's locals (or the store) go, unless in
    a forked child.

    The closing is a :func:`weakref.finalize` callback, which holds the connection: when a
    store is collected with the rest of an app's reference cycle, the connection is still
    alive, and closed, when the callback runs (a ``__del__`` could run after the
    connection's own finalizer, which then warns of an unclosed database).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._finalizer = weakref.finalize(self, _close, conn, os.getpid())

    def close(self) -> None:
        self._finalizer()
