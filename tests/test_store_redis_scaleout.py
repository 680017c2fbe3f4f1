"""The Redis store on a Redis Cluster and under Sentinel (issue 12): the store contract against
a real three-master cluster and a real Sentinel set-up started by the suite, the key layout
that keeps each script in one hash slot, the URI forms, the start-up check that fails
``init_app`` on a wrong set-up (never on an outage), and Sentinel failovers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.errors import ConfigurationError
from flask_postmark_auth.store import (
    RedisStore,
    StoreMisconfiguredError,
    StoreUnavailableError,
    open_store,
    redis_clients,
)
from flask_postmark_auth.store.base import member
from flask_postmark_auth.testing import FakeClock
from support import redis_server
from support.redis_server import ClusterServers, RedisServer, SentinelServers
from tests.helpers import deployed_app
from tests.test_store import StoreContract

pytestmark = pytest.mark.redis
BASE_URL = "https://app.acme.example"


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> ClusterServers:
    """The session's three-master cluster (started on first use)."""
    return redis_server.cluster(request.config)


@pytest.fixture
def sentinel(request: pytest.FixtureRequest) -> SentinelServers:
    """The session's master, replica and two Sentinels (started on first use)."""
    return redis_server.sentinel(request.config)


@pytest.fixture
def plain_server() -> Iterator[RedisServer]:
    """A throwaway plain redis-server of this test's."""
    server = RedisServer()
    try:
        server.start()
    except redis_server.RedisUnavailableError as exc:
        redis_server.unavailable(str(exc))
    yield server
    server.stop()


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def role(port: int) -> str:
    """``master`` or ``slave``, as the server on ``port`` says."""
    client = redis.Redis(redis_server.DEFAULT_HOST, port, decode_responses=True)
    try:
        return str(client.role()[0])
    finally:
        client.close()


# -- the contract on a cluster and under Sentinel -------------------------------------------


class TestRedisClusterStore(StoreContract):
    @pytest.fixture
    def store(self, cluster: ClusterServers, clock: FakeClock) -> Iterator[RedisStore]:
        store = RedisStore(cluster.url, clock, prefix=redis_server.unique_prefix())
        yield store
        store.close()

    def test_the_keys_of_one_name_share_a_slot_and_names_spread_over_every_node(
        self, store: RedisStore
    ) -> None:
        names = [f"spread:{i}" for i in range(60)]
        for name in names:
            store.set(name, "v", 60)
            store.push(name, "item", 60, 5)
        store.delete(names[0])  # one DEL over the value and the list key: one slot
        assert store.get(names[0]) is None
        assert store.items(names[0]) == []
        per_node = [node.redis_connection.dbsize() for node in store.client.get_primaries()]
        assert len(per_node) == 3
        assert all(count > 10 for count in per_node), per_node
        assert store.size() == 2 * (len(names) - 1)

    def test_hits_over_keys_of_several_slots_count_each(self, store: RedisStore) -> None:
        keys = ["ip:192.0.2.1", "hour:ann@example.com", "resend:otp:ann@example.com"]
        assert len({slot(store._key(key)) for key in keys}) == 3
        assert [count for count, _ in store.hits([(key, 60) for key in keys])] == [1, 1, 1]
        assert [count for count, _ in store.hits([(key, 60) for key in keys])] == [2, 2, 2]

    def test_hits_count_once_each_when_the_nodes_forgot_the_scripts(
        self, store: RedisStore
    ) -> None:
        keys = ["ip:192.0.2.2", "hour:bob@example.com", "resend:otp:bob@example.com"]
        store.hits([(key, 60) for key in keys])
        for node in store.client.get_primaries():
            node.redis_connection.script_flush()
        assert [count for count, _ in store.hits([(key, 60) for key in keys])] == [2, 2, 2]

    def test_a_prefix_with_braces_is_refused(self, cluster: ClusterServers) -> None:
        with pytest.raises(ValueError, match="braces"):
            RedisStore(cluster.url, prefix="app{1}:")

    def test_purge_and_size_cover_every_primary(self, store: RedisStore, clock: FakeClock) -> None:
        for i in range(40):
            store.set(f"short:{i}", "x", 10)
            store.set(f"long:{i}", "x", 100)
        assert store.size() == 80
        clock.advance(10)
        assert store.purge() == 40
        assert store.size() == 40


class TestRedisSentinelStore(StoreContract):
    @pytest.fixture
    def store(self, sentinel: SentinelServers, clock: FakeClock) -> Iterator[RedisStore]:
        store = RedisStore(sentinel.url, clock, prefix=redis_server.unique_prefix())
        yield store
        store.close()

    def test_writes_wait_for_the_replica(
        self, store: RedisStore, sentinel: SentinelServers
    ) -> None:
        assert store.replica_acks == 1
        store.set("k", "v", 60)
        master = store.client.connection_pool.master_address
        assert master == (redis_server.DEFAULT_HOST, sentinel.master_port())
        [replica] = [p for p in sentinel.data_ports if p != master[1]]
        direct = redis.Redis(redis_server.DEFAULT_HOST, replica, decode_responses=True)
        try:  # acknowledged, hence on the replica already: no waiting here
            assert direct.hget(store._key("k"), "v") == "v"
        finally:
            direct.close()

    def test_a_write_after_the_master_forgot_the_scripts_loads_them(
        self, store: RedisStore
    ) -> None:
        store.set("k", "v", 60)
        store.client.script_flush()
        store.set("k", "w", 60)
        assert store.pop("k", "w") == "w"


# -- key layout -----------------------------------------------------------------------------


# Any name (one holding MEMBER_SEP too: only a Member made by member() shares a group key).
names = st.text(st.characters(codec="utf-8"), max_size=12) | (
    st.sampled_from(["", "{", "}", "{}", "}{", "%", "%7B", "{a}", "a}b{c"])
)


@settings(max_examples=200, deadline=None)
@given(first=names, second=names, prefix=st.sampled_from(["postmark_auth:", "", "a:b*:"]))
def test_a_name_keeps_its_value_and_list_in_one_slot_and_never_shares_a_key(
    first: str, second: str, prefix: str
) -> None:
    store = RedisStore("redis://127.0.0.1:1/0", prefix=prefix)  # never connects
    try:
        for name in (first, second):
            tag = store._key(name)[len(prefix) :].split("}", 1)[0]
            assert tag.startswith("{")
            assert len(tag) > 1  # a non-empty hash tag
            assert slot(store._key(name)) == slot(store._list(name))
        if first != second:
            assert store._key(first) != store._key(second)
            assert store._list(first) != store._list(second)
        if first != second and "\x1f" not in first + second:
            # Members of a group share its key, which no plain name has.
            one, other = member(first, "h"), member(first, "r")
            assert store._key(one) == store._key(other) != store._key(first)
            assert store._key(one) != store._key(member(second, "h"))
            # The text of a member, as a plain name, is a plain name.
            assert store._key(str(one)).endswith(":k")
    finally:
        store.close()


# -- URIs -----------------------------------------------------------------------------------


def test_cluster_uri_names_every_startup_node_with_tls_and_credentials() -> None:
    target = redis_clients.parse(
        "rediss+cluster://app:p%40ss@10.0.0.1:7000,node-b,[::1]:7002?ssl_cert_reqs=none"
    )
    assert target.kind == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("node-b", 6379), ("::1", 7002))
    assert target.options["username"] == "app"
    assert target.options["password"] == "p@ss"
    assert target.options["ssl"] is True
    assert target.options["ssl_cert_reqs"] == "none"
    assert "p@ss" not in target.describe()


def test_sentinel_uri_names_sentinels_service_database_and_sentinel_credentials() -> None:
    target = redis_clients.parse(
        "redis+sentinel://:datapw@s1:26380,s2/my%20service/3"
        "?sentinel_password=sentpw&socket_timeout=5&replica_acks=2"
    )
    assert target.kind == "sentinel"
    assert target.nodes == (("s1", 26380), ("s2", 26379))
    assert target.service == "my service"
    assert target.options == {"password": "datapw", "db": 3, "socket_timeout": 5.0}
    assert target.sentinel_options == {"password": "sentpw"}
    assert target.replica_acks == 2
    assert redis_clients.parse("redis+sentinel://s1/svc").replica_acks == 1
    assert redis_clients.parse("redis+sentinel://s1/svc?replica_acks=0").replica_acks == 0
    assert redis_clients.parse("rediss+sentinel://s1/svc").sentinel_options == {"ssl": True}


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("valkey://cache:6380/2", "server"),
        ("valkeys://cache:6380/2", "server"),
        ("valkey+cluster://a:1,b:2", "cluster"),
        ("VALKEYS+SENTINEL://a:1/svc", "sentinel"),
    ],
)
def test_valkey_schemes_are_aliases(uri: str, kind: str) -> None:
    target = redis_clients.parse(uri)
    assert target.kind == kind
    if kind == "server":
        assert target.url.startswith("rediss://" if "valkeys" in uri else "redis://")


def test_open_store_takes_cluster_and_sentinel_uris_with_a_prefix() -> None:
    cluster = open_store("redis+cluster://127.0.0.1:1,127.0.0.1:2?prefix=c%3A", instance_path="/x")
    sentinel = open_store("valkey+sentinel://127.0.0.1:1/svc/1?prefix=s:", instance_path="/x")
    plain = open_store("valkey://127.0.0.1:1/4?prefix=v:", instance_path="/x")
    try:
        assert isinstance(cluster, RedisStore)
        assert cluster.cluster
        assert cluster.prefix == "c:"
        assert isinstance(sentinel, RedisStore)
        assert sentinel.target.service == "svc"
        assert sentinel.prefix == "s:"
        assert sentinel.client.connection_pool.connection_kwargs["db"] == 1
        assert isinstance(plain, RedisStore)
        assert plain.client.connection_pool.connection_kwargs["db"] == 4
    finally:
        for store in (cluster, sentinel, plain):
            store.close()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("redis+cluster://a:1/2", "database 0 only"),
        ("redis+cluster://a:1?db=3", "database 0 only"),
        ("redis+cluster://a:x", "not HOST:PORT"),
        ("redis+cluster://:1", "not HOST:PORT"),
        ("redis+cluster://a:1,?", "not HOST:PORT"),
        ("redis+cluster://a:1?sentinel_password=x", "Sentinel URIs only"),
        ("redis+sentinel://a:1", "names no service"),
        ("redis+sentinel://a:1/svc/x", "must be a number"),
        ("redis+sentinel://a:1/svc?replica_acks=-1", "replica_acks"),
        ("redis+sentinel://a:1/svc?sentinel_db=1", "unknown option sentinel_db"),
        ("redis+proxy://a:1", "not a Redis URI"),
    ],
)
def test_malformed_redis_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        redis_clients.parse(uri)


def test_a_malformed_uri_says_so_without_its_password() -> None:
    with pytest.raises(ValueError, match="database 0 only") as info:
        redis_clients.parse("redis+cluster://app:s3cret@a:1/2")
    assert "s3cret" not in str(info.value)
    assert "app:***@" in str(info.value)


def test_a_malformed_uri_fails_init_app() -> None:
    app = deployed_app(
        POSTMARK_AUTH_BASE_URL=BASE_URL, POSTMARK_AUTH_STORE="redis+cluster://a:1/5"
    )
    with pytest.raises(ConfigurationError, match=r"POSTMARK_AUTH_STORE: .*database 0 only"):
        PostmarkAuth(app)


# -- the start-up check ---------------------------------------------------------------------


def init_app_error(uri: str) -> str:
    """What init_app says when it refuses the store URI ``uri``."""
    app = deployed_app(POSTMARK_AUTH_BASE_URL=BASE_URL, POSTMARK_AUTH_STORE=uri)
    with pytest.raises(ConfigurationError) as info:
        PostmarkAuth(app)
    assert isinstance(info.value.__cause__, StoreMisconfiguredError)
    return str(info.value)


def test_plain_uri_at_a_cluster_node_fails_init_app(cluster: ClusterServers) -> None:
    message = init_app_error(f"redis://127.0.0.1:{cluster.ports[0]}/0")
    assert "POSTMARK_AUTH_STORE" in message
    assert "Redis Cluster node: use redis+cluster://" in message


def test_cluster_uri_at_a_plain_server_fails_init_app(plain_server: RedisServer) -> None:
    message = init_app_error(f"redis+cluster://127.0.0.1:{plain_server.port}")
    assert "not a Redis Cluster node: use redis://" in message


def test_plain_uri_at_a_sentinel_fails_init_app(sentinel: SentinelServers) -> None:
    message = init_app_error(f"redis://127.0.0.1:{sentinel.sentinel_ports[0]}/0")
    assert "it is a Sentinel: use redis+sentinel://" in message


def test_sentinel_uri_at_a_plain_server_fails_init_app(plain_server: RedisServer) -> None:
    message = init_app_error(f"redis+sentinel://127.0.0.1:{plain_server.port}/pmauth")
    assert "did not answer as a Sentinel" in message


def test_unknown_sentinel_service_fails_init_app(sentinel: SentinelServers) -> None:
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel.sentinel_ports)
    message = init_app_error(f"redis+sentinel://{hosts}/no-such-service")
    assert "watches a service named 'no-such-service'" in message
    assert f"they watch: {redis_server.SERVICE}" in message


def test_refused_credentials_fail_init_app() -> None:
    server = RedisServer(args=["--requirepass", "right-password"])
    try:
        server.start()
    except redis_server.RedisUnavailableError as exc:
        redis_server.unavailable(str(exc))
    try:
        base = f"127.0.0.1:{server.port}/0"
        assert "refused the credentials" in init_app_error(f"redis://:wrong@{base}")
        assert "refused the credentials" in init_app_error(f"redis://{base}")
        assert "***" in init_app_error(f"redis://:wrong@{base}")
        admin = redis.Redis("127.0.0.1", server.port, password="right-password")
        try:
            admin.acl_setuser(
                "pinger", enabled=True, passwords=["+pw"], commands=["+ping", "+info"]
            )
        finally:
            admin.close()
        assert "may not run" in init_app_error(f"redis://pinger:pw@{base}")
        app = deployed_app(
            POSTMARK_AUTH_BASE_URL=BASE_URL, POSTMARK_AUTH_STORE=f"redis://:right-password@{base}"
        )
        PostmarkAuth(app)  # the right one passes
        app.extensions["postmark_auth"].store.close()
    finally:
        server.stop()


def test_a_cross_slot_refusal_is_a_misconfiguration(cluster: ClusterServers) -> None:
    node = redis.Redis("127.0.0.1", cluster.ports[0])
    try:
        with pytest.raises(redis.exceptions.ResponseError) as info:
            node.eval("return 1", 2, "{a}", "{b}")
    finally:
        node.close()
    reason = redis_clients.misconfiguration(info.value)
    assert reason is not None
    assert "redis+cluster://" in reason


@pytest.mark.parametrize(
    "form",
    [
        "redis://127.0.0.1:{port}/0",
        "redis+cluster://127.0.0.1:{port}",
        "redis+sentinel://127.0.0.1:{port}/svc",
    ],
)
def test_an_outage_at_start_up_does_not_fail_init_app(
    form: str, caplog: pytest.LogCaptureFixture
) -> None:
    uri = form.format(port=redis_server.free_port()) + "?socket_timeout=0.2"
    app = deployed_app(POSTMARK_AUTH_BASE_URL=BASE_URL, POSTMARK_AUTH_STORE=uri)
    PostmarkAuth(app)
    assert "store check skipped" in caplog.text
    store = app.extensions["postmark_auth"].store
    try:
        with pytest.raises(StoreUnavailableError):
            store.get("k")
    finally:
        store.close()


def test_a_cluster_store_made_during_an_outage_works_once_the_cluster_answers(
    cluster: ClusterServers,
) -> None:
    port = redis_server.cluster_port()
    # The first node named answers nothing yet; the second is the live cluster.
    store = RedisStore(f"redis+cluster://127.0.0.1:{port}", prefix=redis_server.unique_prefix())
    try:
        with pytest.raises(StoreUnavailableError):
            store.set("k", "v", 60)
        store.check()  # an outage: no error
    finally:
        store.close()
    live = RedisStore(cluster.url, prefix=redis_server.unique_prefix())
    try:
        live.check()
        live.set("k", "v", 60)
        assert live.pop("k") == "v"
    finally:
        live.close()


# -- Sentinel failovers -----------------------------------------------------------------------


@pytest.mark.reliability
def test_during_a_failover_operations_fail_briefly_then_work_on_the_new_master(
    sentinel: SentinelServers,
) -> None:
    store = RedisStore(sentinel.url, prefix=redis_server.unique_prefix(), socket_timeout=1.0)
    errors: list[tuple[float, BaseException]] = []
    done = threading.Event()
    new_master: list[int] = []

    def fail_over() -> None:
        try:
            new_master.append(sentinel.failover())
        finally:
            done.set()

    try:
        store.set("before", "kept", 600)
        thread = threading.Thread(target=fail_over)
        thread.start()
        started = time.monotonic()
        i = 0
        # Until the failover is over and two seconds of operations have all worked.
        while time.monotonic() - started < 60:
            i += 1
            try:
                store.set(f"during:{i}", "v", 600)
                assert store.get(f"during:{i}") == "v"
                store.hit("h", 600)
            except StoreUnavailableError as exc:
                errors.append((time.monotonic(), exc))
            if done.is_set() and (not errors or time.monotonic() - errors[-1][0] > 2):
                break
            time.sleep(0.01)
        thread.join(timeout=60)
        assert new_master, "the failover did not happen"
        assert store.client.connection_pool.master_address[1] == new_master[0]
        assert store.get("before") == "kept"
        if errors:
            assert errors[-1][0] - errors[0][0] < 10  # briefly
    finally:
        store.close()
        sentinel.wait_ready()


@pytest.mark.reliability
def test_a_secret_used_on_the_old_master_during_a_failover_is_not_used_again(
    sentinel: SentinelServers,
) -> None:
    """The old master takes writes for a while after its replica was promoted (until the
    Sentinels turn it into a replica): a code used there and not replicated would be usable
    again on the new master. Such a write is refused instead (StoreUnavailableError)."""
    first = RedisStore(sentinel.url, prefix=redis_server.unique_prefix())
    rounds = 40
    try:
        for r in range(rounds):
            first.set(f"secret:{r}", "token", 600)  # acknowledged by the replica
        old = first.client.connection_pool.master_address
        sentinel.failover()
        still_master = role(old[1]) == "master"
        second = RedisStore(sentinel.url, prefix=first.prefix)  # another machine, connecting now
        winners: dict[int, list[str]] = {r: [] for r in range(rounds)}
        refused = []
        try:
            for r in range(rounds):
                try:
                    if first.pop(f"secret:{r}", "token") == "token":
                        winners[r].append("first")
                except StoreUnavailableError:
                    refused.append(r)
            assert second.client.connection_pool.master_address != old
            for r in range(rounds):
                if second.pop(f"secret:{r}", "token") == "token":
                    winners[r].append("second")
            for r in refused:  # the first machine again, on the new master by now
                if first.pop(f"secret:{r}", "token") == "token":
                    winners[r].append("first")
        finally:
            second.close()
        assert all(len(w) == 1 for w in winners.values()), winners
        if still_master:  # the old master took writes: the first one there was refused
            assert refused
    finally:
        first.close()
        sentinel.wait_ready()


@pytest.mark.reliability
def test_with_the_replica_down_writes_still_work_when_no_failover_is_under_way(
    sentinel: SentinelServers,
) -> None:
    store = RedisStore(sentinel.url, prefix=redis_server.unique_prefix())
    try:
        store.set("k", "v", 60)
        with sentinel.replica_down():
            started = time.monotonic()
            store.set("k", "w", 60)
            assert store.pop("k", "w") == "w"
            assert time.monotonic() - started < 2
    finally:
        store.close()


def test_sentinel_store_made_with_only_unreachable_sentinels_is_unavailable() -> None:
    store = RedisStore(
        f"redis+sentinel://127.0.0.1:{redis_server.free_port()}/svc", socket_timeout=0.2
    )
    try:
        with pytest.raises(StoreUnavailableError, match="No master found"):
            store.ping()
    finally:
        store.close()
