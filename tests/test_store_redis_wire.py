"""The Redis store's own connections to one server (flask_postmark_auth.store.redis_wire):
what a batch sends, what happens to a connection after an error reply, a connection the
server dropped, a timeout, and a fork."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from flask_postmark_auth.store import RedisStore, StoreUnavailableError
from flask_postmark_auth.store.redis_wire import Wire
from flask_postmark_auth.testing import FakeClock
from support import redis_server
from tests.helpers import count_round_trips

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_base_url: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_base_url, FakeClock(), prefix=redis_server.unique_prefix())
    yield store
    store.close()


def wire(store: RedisStore) -> Wire:
    assert store._wire is not None, "a store on one server has its own connections"
    return store._wire


def connection_id(store: RedisStore) -> int:
    (answer,) = wire(store).send([("CLIENT", "ID")])
    return int(answer)


def test_a_batch_is_one_send_over_one_kept_connection(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.set("warm", "up", 60)  # scripts loaded, one connection made
    first = connection_id(store)
    sent = count_round_trips(monkeypatch)
    answers = store.many([("set", "a", "1", 60), ("get", "a"), ("hits", [("n", 60)])])
    assert answers == [None, "1", [(1, 60.0)]]
    assert len(sent) == 1
    assert connection_id(store) == first
    assert len(wire(store)._idle) == 1


def test_an_error_reply_takes_its_place_and_the_connection_stays(store: RedisStore) -> None:
    first = connection_id(store)
    replies = wire(store).send([("PING",), ("NO-SUCH-COMMAND",), ("ECHO", "after")])
    assert replies[0] == "PONG"
    assert isinstance(replies[1], redis.exceptions.ResponseError)
    assert replies[2] == "after"
    assert connection_id(store) == first  # every reply was read: the connection is reusable


def test_a_connection_the_server_dropped_is_replaced_once(
    redis_base_url: str, store: RedisStore
) -> None:
    store.set("k", "v", 60)
    dropped = connection_id(store)
    admin = redis.Redis.from_url(redis_base_url)
    try:
        assert admin.client_kill_filter(_id=str(dropped)) == 1
        assert store.get("k") == "v"  # a new connection, transparently
    finally:
        admin.close()
    assert connection_id(store) != dropped


def test_the_store_connects_as_its_url_says(redis_base_url: str) -> None:
    """Connections come from the client's own pool: its database (and so its credentials,
    TLS and timeouts) apply to them."""
    assert redis_base_url.endswith("/0")
    other_db = redis_base_url[:-1] + "5"
    store = RedisStore(other_db, prefix=redis_server.unique_prefix())
    admin = redis.Redis.from_url(other_db)
    try:
        store.set("where", "db5", 60)
        assert admin.exists(store._key("where")) == 1
        assert store.client.connection_pool.connection_kwargs["db"] == 5
    finally:
        store.delete("where")
        store.close()
        admin.close()


class FlakyConnection:
    """A connection whose reads fail with ``error``; it records what it was asked."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.sent: list[Any] = []
        self.disconnected = False

    def pack_commands(self, commands: Any) -> list[Any]:
        return list(commands)

    def send_packed_command(self, packed: Any, check_health: bool = True) -> None:
        self.sent.append(packed)

    def read_response(self) -> Any:
        raise self.error

    def disconnect(self) -> None:
        self.disconnected = True


class FakePool:
    def __init__(self, error: Exception) -> None:
        self.made: list[FlakyConnection] = []
        self.connection_kwargs = {"error": error}

    def connection_class(self, error: Exception) -> FlakyConnection:
        self.made.append(FlakyConnection(error))
        return self.made[-1]


def test_a_timeout_is_not_sent_again() -> None:
    """A script that timed out may have run: sending it again could count a hit twice."""
    pool = FakePool(redis.exceptions.TimeoutError("slow"))
    with pytest.raises(redis.exceptions.TimeoutError):
        Wire(pool).send([("EVALSHA", "x", 0)])
    assert len(pool.made) == 1
    assert len(pool.made[0].sent) == 1
    assert pool.made[0].disconnected  # never reused with a reply still unread


def test_a_broken_connection_is_tried_once_more_on_a_new_one() -> None:
    pool = FakePool(redis.exceptions.ConnectionError("reset"))
    w = Wire(pool)
    with pytest.raises(redis.exceptions.ConnectionError):
        w.send([("PING",)])
    assert [len(conn.sent) for conn in pool.made] == [1, 1]
    assert all(conn.disconnected for conn in pool.made)
    assert w._idle == []


def test_an_outage_answers_store_unavailable_however_long_it_lasts() -> None:
    """Failed connections are not counted against the client pool's limit (100 in
    redis-py 8): once the server is back, the store connects again."""
    store = RedisStore("redis://127.0.0.1:1/0", socket_timeout=0.2)  # nothing listens
    try:
        for _ in range(120):
            with pytest.raises(StoreUnavailableError, match="refused"):
                store.get("k")
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_its_own_connections(store: RedisStore) -> None:
    store.set("k", "parent", 60)
    parent = connection_id(store)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection and whether it reads the value
        try:
            reads = store.get("k") == "parent"
            os.write(write, f"{connection_id(store)} {reads}".encode())
        finally:
            os._exit(0)
    os.close(write)
    child, ok = os.read(read, 100).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    assert ok == "True"
    assert int(child) != parent
    # The child's exit closed none of the parent's sockets.
    assert store.get("k") == "parent"
    assert connection_id(store) == parent


def test_close_closes_the_stores_connections_but_not_the_apps_client(redis_base_url: str) -> None:
    apps = redis.Redis.from_url(redis_base_url, decode_responses=True)
    store = RedisStore(redis_base_url, prefix=redis_server.unique_prefix(), client=apps)
    try:
        store.set("k", "v", 60)
        (conn,) = wire(store)._idle
        store.close()
        assert conn._sock is None  # closed
        assert wire(store)._idle == []
        assert apps.ping() is True  # the app's client is the app's to close
        assert store.get("k") == "v"  # and the store connects again
    finally:
        store.delete("k")
        store.close()
        apps.close()
