"""Redis store: shared by every worker on every machine, each operation one Lua script; on one
server, a Redis Cluster or a Sentinel-watched master (see :mod:`.redis_clients`).

The clock is injectable, so Redis's own expiry cannot be the authority: every entry carries
its logical expiry, scripts receive ``now`` from ``self.clock()`` and treat an entry expiring
at or before it as absent (deleting it), and a native ``PEXPIRE`` of the remaining time only
collects the garbage. Values live in hashes ``{v, e}`` under ``<prefix>{<name>}:k``; lists
under ``<prefix>{<name>}:l`` hold ``"<expiry>|<value>"`` items, the newest (first) carrying
the list's expiry. The braces are a cluster hash tag (see :mod:`.redis_layout`): both keys of
one name share a slot, and a script touches one slot only.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from . import redis_check, redis_clients, redis_layout, redis_ops, redis_wire
from .base import MEMBER_SEP, Clock, Member, Store, StoreUnavailableError, check_batch
from .redis_lua import HELPERS, SCRIPTS

DEFAULT_PREFIX = "postmark_auth:"


class RedisStore(Store):
    """A :class:`Store` in Redis; every key gets ``prefix``.

    ``url`` is a store URI without ``?prefix=`` (``redis://``, ``rediss://``, ``unix://``,
    ``redis+cluster://``, ``redis+sentinel://``, ...); pass ``client`` to use an existing
    ``redis.Redis`` or ``redis.cluster.RedisCluster`` instead (it is then not closed by
    :meth:`close`, and ``url`` only names it in messages). ``clock`` is as for
    :class:`Store`; ``socket_timeout`` is how many seconds the store's own client waits to
    connect and for each reply (with ``client``, that client's settings apply).
    """

    needs_purge = False  # native expiry (PEXPIRE) drops what has expired

    def __init__(
        self,
        url: str,
        clock: Clock | None = None,
        prefix: str = DEFAULT_PREFIX,
        client: Any = None,
        socket_timeout: float = 2.0,
    ) -> None:
        super().__init__(clock)
        try:
            import redis
            from redis.cluster import RedisCluster
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError(
                'RedisStore needs the redis package: pip install "flask-postmark-auth[redis]"'
            ) from exc
        if client is None:
            self.target = redis_clients.parse(url)
        else:
            kind = "cluster" if isinstance(client, RedisCluster) else "server"
            self.target = redis_clients.RedisTarget(kind, url)
        #: True for a Redis Cluster: scripts then run per hash slot.
        self.cluster = self.target.kind == "cluster"
        if self.cluster and ("{" in prefix or "}" in prefix):
            raise ValueError(
                f"a Redis Cluster store's prefix may not contain braces, got {prefix!r}: "
                "the store puts each name in a hash tag of its own"
            )
        self.prefix = prefix
        self._errors = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)
        self._no_script = redis.exceptions.NoScriptError
        self._owns_client = client is None
        self._socket_timeout = socket_timeout
        self._lock = threading.Lock()
        # A cluster client reaches its nodes when made: made on first use, so an outage at
        # start-up is not an error there.
        self._client: Any = client
        if client is None and not self.cluster:
            self._client = redis_clients.connect(self.target, socket_timeout)
        self._sources = {name: HELPERS + src for name, src in SCRIPTS.items()}
        self._shas = {
            name: hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()
            for name, src in self._sources.items()
        }
        #: Sentinel mode: replicas that must acknowledge each write (``WAIT``).
        self.replica_acks = self.target.replica_acks if self.target.kind == "sentinel" else 0
        # One server: scripts go over the store's own connections (see redis_wire), made by
        # the client's pool. A Cluster or a Sentinel master is left to redis-py's client,
        # which follows slots and failovers.
        self._wire = (
            redis_wire.Wire(self._client.connection_pool)
            if self.target.kind == "server" and self._client is not None
            else None
        )

    @property
    def client(self) -> Any:
        """The redis-py client (a cluster's is made here on first use)."""
        client = self._client
        if client is None:
            with self._lock, self._guard():
                if self._client is None:
                    self._client = redis_clients.connect(self.target, self._socket_timeout)
                client = self._client
        return client

    # -- helpers --------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        """The Redis key of a name: its value hash, or its group's hash for a member."""
        if isinstance(key, Member):
            return f"{self.prefix}{redis_layout.tag(key.group)}:g"
        return f"{self.prefix}{redis_layout.tag(key)}:k"

    @staticmethod
    def _at(now: float, names: Sequence[str]) -> str:
        """A script's first argument: ``now``, then each name's field when some is a member
        (see :data:`.redis_lua.HELPERS`)."""
        fields = [name.field if isinstance(name, Member) else "" for name in names]
        # MEMBER_SEP separates them: member() lets no field hold it.
        return repr(now) if not any(fields) else MEMBER_SEP.join([repr(now), *fields])

    def _list(self, key: str) -> str:
        if isinstance(key, Member):
            raise ValueError(f"a member holds no list: {key!r}")
        return f"{self.prefix}{redis_layout.tag(key)}:l"

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Redis failures (down, timing out, loading, read-only replica, cluster down or
        resharding, failover...) become :class:`StoreUnavailableError`."""
        try:
            yield
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis store unavailable: {exc}") from exc

    def _run(
        self,
        name: str,
        keys: Sequence[str],
        now: float | str,
        *args: str | int,
        wait: bool = False,
    ) -> Any:
        """Run script ``name`` with ``now`` (or a ready first argument, :meth:`_at`) first
        (a NOSCRIPT after a Redis restart loads it again); with ``wait``, in Sentinel mode,
        see :meth:`_write`."""
        at = now if isinstance(now, str) else repr(now)
        client = self._client or self.client
        with self._guard():
            if not self.cluster:
                return self._pipeline(client, [(name, list(keys), [at, *args])], wait=wait)[0]
            try:
                return client.evalsha(self._shas[name], len(keys), *keys, at, *args)
            except self._no_script:
                client.script_load(self._sources[name])
                return client.evalsha(self._shas[name], len(keys), *keys, at, *args)

    def _write(self, name: str, keys: Sequence[str], now: float | str, *args: str | int) -> Any:
        """:meth:`_run` for a script that changes something. In Sentinel mode the write also
        waits (same round trip) for ``replica_acks`` replicas: one none acknowledged may be
        lost in a failover (a used code coming back), so it fails unless the Sentinels say
        all is well."""
        return self._run(name, keys, now, *args, wait=True)

    def _check_acks(self, client: Any, acks: int) -> None:
        """A write fewer replicas acknowledged than asked fails while the Sentinels report a
        failover (and the next operation asks them for the master again)."""
        if acks < self.replica_acks and redis_clients.failover_suspected(self.target, client):
            client.connection_pool.disconnect()
            raise StoreUnavailableError(
                "Redis store unavailable: a write was not acknowledged by a replica "
                "while the Sentinels report a failover"
            )

    def _groups(self, keys: Sequence[str]) -> list[list[int]]:
        """Indexes of ``keys`` per script: all together on one server, by hash slot in a
        cluster (where one script may touch one slot only)."""
        if not keys:
            return []
        if not self.cluster:
            return [list(range(len(keys)))]
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(redis_clients.slot(key), []).append(i)
        return list(groups.values())

    def _over_keys(self, name: str, now: float) -> int:
        """Sum of script ``name`` (purge or size) over every key of this store, found in
        batches by SCAN (never KEYS, which blocks the server; in a cluster, on every
        primary), one run per batch and slot group."""
        with self._guard():
            keys = self.client.scan_iter(match=redis_layout.pattern(self.prefix), count=500)
            return sum(
                int(self._run(name, [batch[i] for i in group], now))
                for batch in redis_layout.batches((redis_ops.text(key) for key in keys), 500)
                for group in self._groups(batch)
            )

    # -- the Store interface --------------------------------------------------------------

    def many(self, ops: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The operations of ``ops`` as scripts in one pipeline: one round trip (in
        Sentinel mode with the ``WAIT`` of a write in it too). In a cluster, where the keys
        of a batch lie in several slots, operation by operation."""
        check_batch(ops)
        if self.cluster or len(ops) < 2:
            return super().many(ops)
        now = self.clock()
        plans = [redis_ops.plan(op, now, self._key, self._list, self._at) for op in ops]
        client = self._client or self.client
        with self._guard():
            replies = self._pipeline(client, [(name, keys, args) for name, keys, args, _ in plans])
        return [read(reply) for (_, _, _, read), reply in zip(plans, replies, strict=True)]

    def _pipeline(
        self,
        client: Any,
        calls: list[tuple[str, list[str], list[Any]]],
        *,
        wait: bool = True,
        reload: bool = True,
    ) -> list[Any]:
        """Each ``(script, keys, args)`` of ``calls`` by EVALSHA in one round trip (and, in
        Sentinel mode when ``wait``, the ``WAIT`` for replicas); the calls of a script the
        server lost (NOSCRIPT, after a restart) are loaded and run again, alone (they did
        not run, and the keys of a batch differ)."""
        commands: list[tuple[Any, ...]] = [
            ("EVALSHA", self._shas[name], len(keys), *keys, *args) for name, keys, args in calls
        ]
        waits = bool(wait and self.replica_acks)
        if waits:
            commands.append(("WAIT", self.replica_acks, redis_clients.ACK_TIMEOUT_MS))
        replies = self._send(client, commands)
        acks = replies.pop() if waits else None
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, self._no_script)]
        if lost and reload:
            for name in {calls[i][0] for i in lost}:
                client.script_load(self._sources[name])
            again = self._pipeline(client, [calls[i] for i in lost], wait=wait, reload=False)
            for i, reply in zip(lost, again, strict=True):
                replies[i] = reply
            return replies
        for reply in [*replies, acks]:
            if isinstance(reply, Exception):
                raise reply
        if acks is not None:
            self._check_acks(client, int(acks))
        return replies

    def _send(self, client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The replies of ``commands`` in one round trip, an error reply in its place: over
        the store's own connections to one server, or a redis-py pipeline."""
        if self._wire is not None:
            return self._wire.send(commands)
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))

    def _one(self, op: tuple[Any, ...], *, write: bool = True) -> Any:
        """One operation of :data:`~.base.BATCHED` on its own: one script."""
        now = self.clock()
        name, keys, args, read = redis_ops.plan(op, now, self._key, self._list, self._at)
        return read((self._write if write else self._run)(name, keys, *args))

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """Store ``value`` under ``key``, replacing any previous one, for ``ttl`` seconds."""
        self._one(("set", key, value, ttl))

    def add(self, key: str, value: str, ttl: float | None) -> bool:
        """Store ``value`` for ``ttl`` seconds only if ``key`` is absent (or expired); True
        when stored."""
        return bool(self._one(("add", key, value, ttl)))

    def get(self, key: str) -> str | None:
        """The live value of ``key``, or ``None`` (absent or logically expired)."""
        value: str | None = self._one(("get", key), write=False)
        return value

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when absent, ``inf`` when it never does."""
        now = self.clock()
        reply = self._run("ttl", [self._key(key)], self._at(now, [key]))
        if reply is None:
            return None
        expires = float(redis_ops.text(reply))
        return math.inf if math.isinf(expires) else expires - now

    def delete(self, key: str) -> None:
        """Remove ``key`` (and a list of that name) if present."""
        self._one(("delete", key))

    def pop(self, key: str, expected: str | None = None) -> str | None:
        """Read and delete ``key`` in one script; with ``expected``, only when it matches."""
        value: str | None = self._one(("pop", key, expected))
        return value

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one event on ``key`` in a fixed window of ``window`` seconds; return
        ``(count, seconds_until_reset)``."""
        [answer] = self.hits([(key, window)])
        return answer

    def hits(self, windows: Sequence[tuple[str, float]]) -> list[tuple[int, float]]:
        """:meth:`hit` each ``(key, window)`` pair of ``windows`` in one script, one round
        trip (in a cluster, one script per hash slot: each counter stays atomic, which is
        all the throttles need)."""
        now = self.clock()
        keys = [self._key(key) for key, _ in windows]
        groups = self._groups(keys)
        # One script per slot group, planned as a batch's hits are: (keys, args).
        calls = [
            redis_ops.plan(
                ("hits", [windows[i] for i in g]), now, self._key, self._list, self._at
            )[1:3]
            for g in groups
        ]
        parts: list[Any] = [None] * len(groups)
        if len(groups) > 1:  # a cluster: every slot's script sent before any answer is read
            sha = self._shas["hits"]
            replies = redis_clients.evalsha_together(self.client, [(sha, c) for c in calls])
            parts = [None if isinstance(r, Exception) else r for r in replies]
        answers: list[Any] = [None] * len(keys)
        for group, part, (batch, args) in zip(groups, parts, calls, strict=True):
            if part is None:
                part = self._write("hits", batch, *args)
            for i, answer in zip(group, part, strict=True):
                answers[i] = answer
        return redis_ops.counts(answers, now)

    def undo_hit(self, key: str) -> None:
        """Take back one hit of ``key`` in its current window (never below zero); no-op if
        absent."""
        self._one(("undo_hit", key))

    def push(self, key: str, value: str, ttl: float | None, max_items: int) -> None:
        """Add ``value`` to the front of the list ``key``, keeping the newest ``max_items``;
        the list expires ``ttl`` seconds from now."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        now = self.clock()
        self._write("push", [self._list(key)], now, value, redis_ops.expiry(now, ttl), max_items)

    def items(self, key: str) -> list[str]:
        """The list ``key``, newest first (empty when absent or expired)."""
        return [
            redis_ops.text(item) for item in self._run("items", [self._list(key)], self.clock())
        ]

    def purge(self) -> int:
        """Drop logically expired keys found by SCAN; return how many entries went."""
        return self._over_keys("purge", self.clock())

    def size(self) -> int:
        """How many entries (keys, list items included) carry this prefix, expired or not."""
        return self._over_keys("size", 0.0)

    def ping(self) -> None:
        """Raise :class:`StoreUnavailableError` unless Redis answers PING."""
        client = self.client
        with self._guard():
            client.ping()

    def check(self) -> None:
        """Raise :class:`StoreMisconfiguredError` when the server is of the wrong kind for
        the URI (a cluster node or a Sentinel behind ``redis://``, a plain server behind
        ``redis+cluster://``), refuses the credentials or the scripts, refuses a script over
        two hash slots, or no Sentinel knows the service; an outage only logs a warning."""
        redis_check.run(self)

    def _close_quietly(self) -> None:
        with contextlib.suppress(StoreUnavailableError):
            self.close()

    def close(self) -> None:
        """Close the store's own connections, and disconnect the client when the store made
        it; later calls reconnect."""
        if self._wire is not None:
            self._wire.close()
        if not self._owns_client or self._client is None:
            return
        client = self._client
        if self.cluster:
            self._client = None  # made again on next use
        with self._guard():
            client.close()
            pool = getattr(client, "connection_pool", None)
            manager = getattr(pool, "sentinel_manager", None)
            for sentinel in getattr(manager, "sentinels", ()):
                sentinel.close()
