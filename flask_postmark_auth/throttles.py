"""The throttles: what they count by (one bucket per mailbox, not per spelling of an
address, and one per network, not per IPv6 address) and the counting itself."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from .errors import ThrottledError
from .settings import Settings
from .store import Store
from .store.base import member

log = logging.getLogger("flask_postmark_auth")

HOUR = 3600
DAY = 24 * HOUR
#: Seconds between two sweeps of expired entries, per process (stores without native
#: expiry only), so the store stays flat without a cron job.
PURGE_INTERVAL = 60
#: IPv6 clients are counted by network: one customer is routinely given a whole /64.
IPV6_PREFIX = 64


def mailbox_key(address: str) -> str:
    """The mailbox a normalized address delivers to, for throttling only: a ``+tag`` in the
    local part is dropped, so ``ann+1@x`` and ``ann+2@x`` share ``ann@x``'s quota."""
    local, _, domain = address.rpartition("@")
    # "+tag@x" is all tag: it shares the bucket of every other such address at x.
    return f"{local.split('+', 1)[0]}@{domain}"


@lru_cache(maxsize=4096)
def ip_bucket(ip: str) -> str:
    """The bucket a client address counts in: an IPv4 address alone (IPv4-mapped IPv6
    included), an IPv6 address by its /64; anything unparsable as itself."""
    try:
        parsed = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        network = ipaddress.IPv6Network(f"{parsed}/{IPV6_PREFIX}", strict=False)
        return str(network)
    return str(parsed)


def ceil_seconds(seconds: float) -> int:
    """Whole seconds to wait, at least one (a ``Retry-After`` of 0 invites a retry storm)."""
    return max(1, int(-(-seconds // 1)))


class Throttles:
    """The sign-in counters in the store: per client IP, per mailbox, per code; shared by
    every worker and machine that shares the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._next_purge = store.clock() + PURGE_INTERVAL

    def count(self, ip: str | None, *more: tuple[str, float, int | None]) -> list[int]:
        """Count this sign-in POST from ``ip`` and one event on each ``(key, window, limit)``
        (``limit`` ``None``: count only), in one store round trip. Over any limit: the other
        counts are given back and :class:`ThrottledError` says when to retry. Returns the
        counts of ``more``."""
        return self.count_with(ip, more)[0]

    def count_with(
        self,
        ip: str | None,
        more: Sequence[tuple[str, float, int | None]],
        also: Sequence[tuple[Any, ...]] = (),
    ) -> tuple[list[int], list[Any]]:
        """:meth:`count`, with the store operations ``also`` (see :meth:`.Store.many`) sent
        in the same round trip after the counting; returns the counts of ``more`` and the
        answers of ``also``. Over a limit, ``also`` has run all the same."""
        self._maybe_purge()
        windows = [(key, window) for key, window, _ in more]
        limits: list[int | None] = [limit for _, _, limit in more]
        # A missing client address (a unix socket without ProxyFix) is one bucket, not none.
        windows.insert(0, (f"ip:{ip_bucket(ip) if ip else 'unknown'}", HOUR))
        limits.insert(0, self.settings.ip_requests_per_hour)
        counts, *answers = self.store.many([("hits", windows), *also])
        waits = [
            # Never longer than the window: another worker's clock may run a hair behind.
            min(left, window)
            for (count, left), (_, window), limit in zip(counts, windows, limits, strict=True)
            if limit is not None and count > limit
        ]
        if waits:
            self.give_back([key for key, _ in windows[1:]])
            raise ThrottledError(retry_after=ceil_seconds(max(waits)))
        return [count for count, _ in counts[1:]], answers

    def give_back(self, keys: Sequence[str]) -> None:
        """Take back one hit of each counter of ``keys``, in one round trip, in name order
        (as :meth:`.Store.hits` counts: on a SQL store two batches that lock the same rows
        in opposite orders deadlock)."""
        if keys:
            self.store.many([("undo_hit", key) for key in sorted(keys)])

    def _maybe_purge(self) -> None:
        """Drop expired entries at most once per :data:`PURGE_INTERVAL` (a race between two
        threads only purges twice)."""
        if not self.store.needs_purge:
            return
        now = self.store.clock()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            dropped = self.store.purge()
            log.debug("purged %d expired store entries", dropped)

    def take_send_quota(
        self, method: str, address: str, ip: str | None, also: Sequence[tuple[Any, ...]] = ()
    ) -> tuple[str, str, list[Any]]:
        """Count the POST and use up one send of ``method`` to ``address``'s mailbox (hourly
        quota, resend interval), the store operations ``also`` in the same round trip (as
        :meth:`count_with`); the same answer whoever owns the address. Returns the keys of
        the resend wait and of the quota, and the answers of ``also``."""
        mailbox = mailbox_key(address)
        # One group per mailbox, short member names: on Redis one small hash instead of a
        # key each ("h" the hourly quota, "r:<method>" the resend wait).
        quota = member(f"send:{mailbox}", "h")
        resend = member(f"send:{mailbox}", f"r:{method}")
        interval = self.settings.resend_interval
        limits: list[tuple[str, float, int | None]] = [
            (quota, HOUR, self.settings.emails_per_hour)
        ]
        if interval:
            limits.append((resend, interval, 1))
        _, answers = self.count_with(ip, limits, also)
        return resend, quota, answers
