"""The Redis store's start-up check (:meth:`.RedisStore.check`), apart from the store."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import redis_clients, redis_layout
from .base import StoreMisconfiguredError, StoreUnavailableError

if TYPE_CHECKING:
    from .redis import RedisStore

log = logging.getLogger("flask_postmark_auth")

#: Two names whose keys hash to different slots, for the check on one server.
CHECK_NAMES = ("check:cross-slot:a", "check:cross-slot:b")


def run(store: RedisStore) -> None:
    """:meth:`.RedisStore.check`: :func:`check`, a misconfiguration raised as
    :class:`.StoreMisconfiguredError` (the store's connections closed first, as the app
    will not start), an outage logged."""
    try:
        check(store)
    except ValueError as exc:
        store._close_quietly()
        raise StoreMisconfiguredError(f"{store.target.describe()}: {exc}") from exc
    except StoreUnavailableError as exc:
        reason = redis_clients.misconfiguration(exc.__cause__ or exc)
        if reason is not None:
            store._close_quietly()
            raise StoreMisconfiguredError(f"{store.target.describe()}: {reason}") from exc
        log.warning("store check skipped, %s is unreachable: %s", store.target.describe(), exc)


def check(store: RedisStore) -> None:
    """What :meth:`.RedisStore.check` checks: the kind of server for the URI, the
    credentials and the scripts (one over two hash slots on one server), the Sentinels
    and their replicas; moves keys of the earlier layout. Raises ``ValueError`` for a
    misconfiguration, :class:`.StoreUnavailableError` for an outage."""
    kind = store.target.kind
    if kind == "sentinel":
        with store._guard():
            if not redis_clients.check_sentinels(store.target, store.client):
                raise StoreUnavailableError("no Sentinel answers")
    client = store.client
    if kind != "cluster":
        with store._guard():
            mode = redis_clients.server_mode(client)
        if mode == "cluster":
            raise ValueError(
                "it is a Redis Cluster node: use redis+cluster://HOST:PORT[,HOST:PORT...]"
            )
        if mode == "sentinel":
            raise ValueError("it is a Sentinel: use redis+sentinel://HOST:PORT/SERVICE")
    names = CHECK_NAMES[:1] if store.cluster else CHECK_NAMES
    store._run("size", [store._key(name) for name in names], 0.0)
    if not store.cluster:
        with store._guard():
            moved = redis_layout.migrate(client, store.prefix)
        if moved:
            log.info("store: moved %d keys to the hash-tagged layout", moved)
    if store.replica_acks:
        with store._guard():
            replicas = int(client.info("replication").get("connected_slaves", 0))
        if replicas < store.replica_acks:
            log.warning(
                "%s: the master has %d replica(s) connected, fewer than replica_acks=%d: "
                "each write waits %d ms and asks the Sentinels",
                store.target.describe(),
                replicas,
                store.replica_acks,
                redis_clients.ACK_TIMEOUT_MS,
            )
