"""The store interface: a small, atomic key-value contract every backend keeps.

Everything sign-in keeps between requests (code hashes, link nonces, attempt and throttle
counters, pending ``next`` targets, built-in users, the dev outbox) is expressed with these
few operations, so a backend is small and one contract test suite covers them all.

Time comes from ``clock`` (seconds, like :func:`time.time`), injectable so expiry is tested
without sleeping; a backend treats an entry whose expiry is at or before ``clock()`` as gone,
whatever its native expiry does.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

Clock = Callable[[], float]
#: Joins a group and a member's name in the text of a :class:`Member`.
MEMBER_SEP = "\x1f"
#: The operations :meth:`Store.many` sends together: a batch names each by its method.
BATCHED = frozenset({"set", "add", "get", "delete", "pop", "hits", "undo_hit"})


class StoreUnavailableError(RuntimeError):
    """The store could not be reached or written (Redis down, SQLite locked or read-only)."""


class StoreMisconfiguredError(ValueError):
    """The store answers but cannot work as configured (wrong kind of server, refused
    credentials, keys that cross cluster slots, a missing table that cannot be made):
    raised by :meth:`Store.check` so that :meth:`~flask_postmark_auth.PostmarkAuth.init_app`
    fails at once instead of every request answering 503 for ever."""


class Store(ABC):
    """Atomic key-value operations with expiry. Keys and values are ``str``.

    ``clock`` gives the time in seconds, like :func:`time.time` (the default); it is kept as
    the ``clock`` attribute. ``ttl`` and ``window`` are seconds from now; ``ttl=None`` means
    the entry never expires.
    Every method raises :class:`StoreUnavailableError` when the backend fails.
    """

    #: False for backends that drop expired entries by themselves (Redis's native expiry):
    #: the service then never calls :meth:`purge` on its own.
    needs_purge = True

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or time.time

    @abstractmethod
    def set(self, key: str, value: str, ttl: float | None) -> None:
        """Store ``value`` under ``key``, replacing any previous one, for ``ttl`` seconds."""

    @abstractmethod
    def add(self, key: str, value: str, ttl: float | None) -> bool:
        """Store ``value`` for ``ttl`` seconds only if ``key`` is absent (or expired); True
        when stored."""

    @abstractmethod
    def get(self, key: str) -> str | None:
        """The live value of ``key``, or ``None`` when it is absent or expired."""

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when absent, ``inf`` when it never does.
        Optional: sign-in never asks (the contract suite and tools do)."""
        raise NotImplementedError(f"{type(self).__name__} does not report expiry times")

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""

    @abstractmethod
    def pop(self, key: str, expected: str | None = None) -> str | None:
        """Atomically read and delete ``key``; return the value, or ``None`` if absent.

        With ``expected``, delete only when the live value equals it (compare-and-delete),
        returning it, else ``None`` and change nothing. Of any number of concurrent callers
        (threads, processes, machines) exactly one gets the value.
        """

    @abstractmethod
    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one event on the counter ``key``, in a fixed window; return ``(count,
        seconds_until_reset)``.

        The first hit (or the first after the window ended) starts a window of ``window``
        seconds with count 1; later hits in the window add one. Atomic across workers.
        """

    def hits(self, windows: Sequence[tuple[str, float]]) -> list[tuple[int, float]]:
        """:meth:`hit` each ``(key, window)`` pair of ``windows``, in order, in one round trip
        where the backend allows (SQLite: one statement; Redis: one script); the answers come
        in the same order. Keys must differ."""
        return [self.hit(key, window) for key, window in windows]

    def many(self, ops: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run each operation of ``ops`` in order and return their answers: an operation is
        a method name of :data:`BATCHED` then its arguments, such as ``("get", key)`` or
        ``("hits", [(key, window)])``. Where the backend allows, the batch costs one round
        trip (Redis: one pipeline) or one transaction (SQLite, SQL; a batch with one write
        runs there statement by statement, so its lock lasts one statement). Each operation
        is as atomic as on its own, but the batch need not be (on Redis another client may
        run between two of them), so the keys of one batch must differ. On a SQL store each
        write holds a row lock to the commit: batches that write the same names must write
        them in the same order (name order, as :meth:`hits` counts), or two of them
        deadlock. On failure, :class:`StoreUnavailableError`; earlier operations of the
        batch may have happened.
        """
        check_batch(ops)
        return [getattr(self, op[0])(*op[1:]) for op in ops]

    @abstractmethod
    def undo_hit(self, key: str) -> None:
        """Take back one hit of the counter ``key`` in its current window (never below zero,
        the window's end unchanged); no-op if absent."""

    @abstractmethod
    def push(self, key: str, value: str, ttl: float | None, max_items: int) -> None:
        """Add ``value`` to the front of the list ``key``, keeping the newest ``max_items``;
        the whole list expires ``ttl`` seconds after the last push."""

    @abstractmethod
    def items(self, key: str) -> list[str]:
        """The list ``key``, newest first (empty when absent or expired)."""

    @abstractmethod
    def purge(self) -> int:
        """Drop expired entries now; return how many were dropped (best effort)."""

    def size(self) -> int:
        """How many entries (keys, list items included) the store holds, expired or not.
        Optional: for benchmarks and tests."""
        raise NotImplementedError(f"{type(self).__name__} does not count its entries")

    def ping(self) -> None:
        """Raise :class:`StoreUnavailableError` unless the store answers (by default, a
        read of a key nobody writes)."""
        self.get("ping")

    def check(self) -> None:  # noqa: B027 - optional: most backends have nothing to check
        """Raise :class:`StoreMisconfiguredError` when the store answers but is set up
        wrongly; do nothing when it is merely unreachable (an outage, which the app may start
        through). Called once by ``init_app``."""

    def close(self) -> None:  # noqa: B027 - optional for backends with nothing to close
        """Release connections; the store may be used again afterwards (it reconnects)."""


class Member(str):
    """A name made by :func:`member`: it reads as ``"<group>\\x1f<name>"`` (so every
    backend may treat it as any other name) and carries ``group`` and ``field``, so that a
    backend that keeps a group together knows it from what it is, never from its text (a
    plain name holding ``\\x1f`` stays a plain name)."""

    __slots__ = ("field", "group")
    group: str
    field: str

    def __new__(cls, group: str, field: str) -> Member:
        self = super().__new__(cls, f"{group}{MEMBER_SEP}{field}")
        self.group = group
        self.field = field
        return self

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]  # copy, pickle
        return (self.group, self.field)


def member(group: str, name: str) -> Member:
    """The name of ``name`` in the group ``group``: for short-lived entries of one subject
    (an address's hourly quota and resend waits) that a backend may keep together (Redis:
    the fields of one hash, one key instead of several). It is a name like any other for
    every operation, except that a member must expire (``ttl`` not ``None``) and holds no
    list."""
    if MEMBER_SEP in group or MEMBER_SEP in name:
        raise ValueError("a group or member name may not hold \\x1f")
    return Member(group, name)


def revive(name: str) -> str:
    """A name read back from text the package wrote itself (a sealed queued job, whose
    JSON keeps a :class:`Member` as its text): a member again when it was one."""
    group, sep, field = name.partition(MEMBER_SEP)
    return Member(group, field) if sep else name


def check_batch(ops: Sequence[tuple[Any, ...]]) -> None:
    """Raise :class:`ValueError` unless every operation of ``ops`` names one of
    :data:`BATCHED` (a batch runs nothing else)."""
    for op in ops:
        if not op or op[0] not in BATCHED:
            raise ValueError(f"Store.many runs {sorted(BATCHED)}, not {op[:1]!r}")
