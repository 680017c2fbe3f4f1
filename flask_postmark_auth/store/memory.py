"""In-process store: plain dicts behind one lock, for tests, development and one-process apps.

Nothing is shared between processes, so it is wrong for several gunicorn workers; expired
entries are dropped when read and by :meth:`MemoryStore.purge`.
"""

from __future__ import annotations

import math
import threading
from typing import TypeAlias

from .base import Clock, Store

_Entry: TypeAlias = "tuple[str, float | None]"  # (value, expires); None = never expires


class MemoryStore(Store):
    """Dicts guarded by a single :class:`threading.Lock`; expiry follows ``clock`` (by
    default :func:`time.time`)."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self._lock = threading.Lock()
        self._kv: dict[str, _Entry] = {}
        self._lists: dict[str, tuple[list[str], float | None]] = {}

    def _expires(self, now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    def _live(self, key: str, now: float) -> _Entry | None:
        """The entry for ``key`` unless missing or expired (an expired one is dropped)."""
        entry = self._kv.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= now:
            del self._kv[key]
            return None
        return entry

    def _live_list(self, key: str, now: float) -> list[str] | None:
        entry = self._lists.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= now:
            del self._lists[key]
            return None
        return entry[0]

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """Store ``value`` under ``key``, replacing any previous one, for ``ttl`` seconds."""
        with self._lock:
            self._kv[key] = (value, self._expires(self.clock(), ttl))

    def add(self, key: str, value: str, ttl: float | None) -> bool:
        """Store ``value`` for ``ttl`` seconds only if ``key`` is absent (or expired); True
        when stored."""
        with self._lock:
            now = self.clock()
            if self._live(key, now) is not None:
                return False
            self._kv[key] = (value, self._expires(now, ttl))
            return True

    def get(self, key: str) -> str | None:
        """The live value of ``key``, or ``None`` (an expired entry is dropped now)."""
        with self._lock:
            entry = self._live(key, self.clock())
            return None if entry is None else entry[0]

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when absent, ``inf`` when it never does."""
        with self._lock:
            now = self.clock()
            entry = self._live(key, now)
            if entry is None:
                return None
            return math.inf if entry[1] is None else entry[1] - now

    def delete(self, key: str) -> None:
        """Remove ``key`` (and a list of that name) if present."""
        with self._lock:
            self._kv.pop(key, None)
            self._lists.pop(key, None)

    def pop(self, key: str, expected: str | None = None) -> str | None:
        """Read and delete ``key`` under the lock; with ``expected``, only when it matches."""
        with self._lock:
            entry = self._live(key, self.clock())
            if entry is None or (expected is not None and entry[0] != expected):
                return None
            del self._kv[key]
            return entry[0]

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one event on ``key`` in a fixed window of ``window`` seconds; return
        ``(count, seconds_until_reset)``."""
        with self._lock:
            now = self.clock()
            entry = self._live(key, now)
            if entry is None or entry[1] is None:
                count, expires = 1, now + window
            else:
                count, expires = _count(entry[0]) + 1, entry[1]
            self._kv[key] = (str(count), expires)
            return count, expires - now

    def undo_hit(self, key: str) -> None:
        """Take back one hit of ``key`` in its current window (never below zero); no-op if
        absent."""
        with self._lock:
            entry = self._live(key, self.clock())
            if entry is not None:
                self._kv[key] = (str(max(_count(entry[0]) - 1, 0)), entry[1])

    def push(self, key: str, value: str, ttl: float | None, max_items: int) -> None:
        """Add ``value`` to the front of the list ``key``, keeping the newest ``max_items``;
        the list expires ``ttl`` seconds from now."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        with self._lock:
            now = self.clock()
            items = self._live_list(key, now) or []
            self._lists[key] = ([value, *items][:max_items], self._expires(now, ttl))

    def items(self, key: str) -> list[str]:
        """The list ``key``, newest first (empty when absent or expired)."""
        with self._lock:
            return list(self._live_list(key, self.clock()) or [])

    def purge(self) -> int:
        """Drop expired entries now; return how many (list items counted one by one)."""
        with self._lock:
            now = self.clock()
            dropped = 0
            for key in [k for k, (_, exp) in self._kv.items() if exp is not None and exp <= now]:
                del self._kv[key]
                dropped += 1
            for key in [k for k, (_, e) in self._lists.items() if e is not None and e <= now]:
                dropped += len(self._lists.pop(key)[0])
            return dropped

    def size(self) -> int:
        """How many entries (keys, list items included) are held, expired or not."""
        with self._lock:
            return len(self._kv) + sum(len(items) for items, _ in self._lists.values())

    def ping(self) -> None:
        """Always answers: the store lives in this process."""


def _count(value: str) -> int:
    """A counter value as an int (anything that is not one counts as zero)."""
    try:
        return int(value)
    except ValueError:
        return 0
