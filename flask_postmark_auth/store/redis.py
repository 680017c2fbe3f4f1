"""Redis store: shared by every worker on every machine, each operation one Lua script.

The clock is injectable, so Redis's own expiry cannot be the authority: every entry carries
its logical expiry, scripts receive ``now`` from ``self.clock()`` and treat an entry expiring
at or before it as absent (deleting it), and a native ``PEXPIRE`` of the remaining time only
collects the garbage. Values live in hashes ``{v, e}`` under ``<prefix>k:<key>``; lists under
``<prefix>l:<key>`` hold ``"<expiry>|<value>"`` items, the newest (first) carrying the list's
expiry.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .base import Clock, Store, StoreUnavailableError
from .redis_lua import HELPERS, SCRIPTS

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

DEFAULT_PREFIX = "postmark_auth:"


class RedisStore(Store):
    """A :class:`Store` in Redis; every key gets ``prefix``.

    ``url`` is any redis-py URL (``redis://``, ``rediss://``, ``unix://``); pass ``client``
    to use an existing :class:`redis.Redis` instead (it is then not closed by :meth:`close`).
    """

    needs_purge = False  # native expiry (PEXPIRE) drops what has expired

    def __init__(
        self,
        url: str,
        clock: Clock | None = None,
        prefix: str = DEFAULT_PREFIX,
        client: Redis | None = None,
        socket_timeout: float = 2.0,
    ) -> None:
        super().__init__(clock)
        try:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError(
                'RedisStore needs the redis package: pip install "flask-postmark-auth[redis]"'
            ) from exc
        self.prefix = prefix
        self._errors: tuple[type[Exception], ...] = (redis.exceptions.RedisError,)
        self._owns_client = client is None
        if client is None:
            # One quick retry, on connection errors only: it replaces a connection a Redis
            # restart broke, without doubling a script that merely timed out.
            retry = Retry(
                ExponentialBackoff(cap=0.1, base=0.02),
                retries=1,
                supported_errors=(redis.exceptions.ConnectionError,),
            )
            client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                health_check_interval=30,
                retry=retry,
                decode_responses=True,
            )
        self.client: Redis = client
        scripts = {name: client.register_script(HELPERS + src) for name, src in SCRIPTS.items()}
        self._set, self._add, self._get = scripts["set"], scripts["add"], scripts["get"]
        self._ttl, self._pop, self._hits = scripts["ttl"], scripts["pop"], scripts["hits"]
        self._undo_hit, self._push = scripts["undo_hit"], scripts["push"]
        self._items, self._purge, self._size = scripts["items"], scripts["purge"], scripts["size"]

    # -- helpers --------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return f"{self.prefix}k:{key}"

    def _list(self, key: str) -> str:
        return f"{self.prefix}l:{key}"

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Redis failures (down, timing out, loading, read-only replica...) become
        :class:`StoreUnavailableError`."""
        try:
            yield
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis store unavailable: {exc}") from exc

    def _run(self, script: Script, keys: Sequence[str], now: float, *args: str | int) -> Any:
        """Run a registered script with ``now`` as its first argument (a NOSCRIPT after a
        Redis restart makes redis-py load it again)."""
        with self._guard():
            return script(keys=keys, args=[repr(now), *args])

    def _scan(self) -> Iterator[list[str]]:
        """Batches of this store's keys, by SCAN (never KEYS, which blocks the server)."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "[kl]:*"
        batch: list[str] = []
        with self._guard():
            for key in self.client.scan_iter(match=pattern, count=500):
                batch.append(_text(key))
                if len(batch) == 500:
                    yield batch
                    batch = []
        if batch:
            yield batch

    # -- the Store interface --------------------------------------------------------------

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """Store ``value``, replacing any previous one."""
        now = self.clock()
        self._run(self._set, [self._key(key)], now, value, _expiry(now, ttl))

    def add(self, key: str, value: str, ttl: float | None) -> bool:
        """Store ``value`` only if ``key`` is absent (or expired); True when stored."""
        now = self.clock()
        return bool(self._run(self._add, [self._key(key)], now, value, _expiry(now, ttl)))

    def get(self, key: str) -> str | None:
        """The live value, or ``None``."""
        value = self._run(self._get, [self._key(key)], self.clock())
        return None if value is None else _text(value)

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when absent, ``inf`` when it never does."""
        now = self.clock()
        reply = self._run(self._ttl, [self._key(key)], now)
        if reply is None:
            return None
        expires = float(_text(reply))
        return math.inf if math.isinf(expires) else expires - now

    def delete(self, key: str) -> None:
        """Remove ``key`` (and a list of that name) if present."""
        with self._guard():
            self.client.delete(self._key(key), self._list(key))

    def pop(self, key: str, expected: str | None = None) -> str | None:
        """Read and delete ``key`` in one script; with ``expected``, only when it matches."""
        flag, compare = ("0", "") if expected is None else ("1", expected)
        value = self._run(self._pop, [self._key(key)], self.clock(), flag, compare)
        return None if value is None else _text(value)

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one event in a fixed window; return ``(count, seconds_until_reset)``."""
        [answer] = self.hits([(key, window)])
        return answer

    def hits(self, windows: Sequence[tuple[str, float]]) -> list[tuple[int, float]]:
        """Several :meth:`hit` in one script: one round trip, atomic together."""
        now = self.clock()
        keys = [self._key(key) for key, _ in windows]
        expiries = [repr(now + window) for _, window in windows]
        answers = self._run(self._hits, keys, now, *expiries)
        return [(int(_text(count)), float(_text(expires)) - now) for count, expires in answers]

    def undo_hit(self, key: str) -> None:
        """Take back one hit in the current window (never below zero); no-op if absent."""
        self._run(self._undo_hit, [self._key(key)], self.clock())

    def push(self, key: str, value: str, ttl: float | None, max_items: int) -> None:
        """Add ``value`` to the front of the list ``key``, keeping the newest ``max_items``."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        now = self.clock()
        self._run(self._push, [self._list(key)], now, value, _expiry(now, ttl), max_items)

    def items(self, key: str) -> list[str]:
        """The list ``key``, newest first (empty when absent or expired)."""
        return [_text(item) for item in self._run(self._items, [self._list(key)], self.clock())]

    def purge(self) -> int:
        """Drop logically expired keys found by SCAN; return how many entries went."""
        now = self.clock()
        return sum(int(self._run(self._purge, batch, now)) for batch in self._scan())

    def size(self) -> int:
        """How many entries (keys, list items included) carry this prefix, expired or not."""
        return sum(int(self._run(self._size, batch, 0.0)) for batch in self._scan())

    def ping(self) -> None:
        """Raise :class:`StoreUnavailableError` unless Redis answers PING."""
        with self._guard():
            self.client.ping()

    def close(self) -> None:
        """Disconnect the pool (when the store made the client); later calls reconnect."""
        if self._owns_client:
            with self._guard():
                self.client.close()


def _expiry(now: float, ttl: float | None) -> str:
    """The logical expiry sent to a script: ``''`` for never."""
    return "" if ttl is None else repr(now + ttl)


def _text(value: object) -> str:
    """A reply as ``str`` (an injected client may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)
