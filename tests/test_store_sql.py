"""The SQL store on the real PostgreSQL and MariaDB of the test machines (and on SQLite through
an engine, as a Flask-SQLAlchemy app may have): the store contract, how URIs are read, what
``check()`` refuses at start-up, an outage, one-use secrets under races through a real app,
and ``STORE="sqlalchemy"``. Each test uses a table of its own, dropped afterwards
(:mod:`support.sql_servers`)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.errors import ConfigurationError
from flask_postmark_auth.state import state
from flask_postmark_auth.store import (
    StoreMisconfiguredError,
    StoreUnavailableError,
    open_store,
    sql_transactions,
)
from flask_postmark_auth.store.sql import SQLStore
from flask_postmark_auth.store.sql_schema import NAME_BYTES, classify, encode_name, parse_uri
from flask_postmark_auth.testing import FakeClock, code_in, link_in, record_messages
from support import sql_servers
from support.redis_server import free_port
from tests.helpers import STRONG_KEY, AppFactory
from tests.test_store import StoreContract, run_threads

SERVERS = ["postgresql", "mariadb"]


@pytest.fixture(params=SERVERS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(request: pytest.FixtureRequest, kind: str) -> str:
    """The store URI (no table) of the session's server of ``kind``."""
    return sql_servers.server_uri(request.config, kind)


@pytest.fixture
def sql_uri(request: pytest.FixtureRequest, kind: str) -> Iterator[str]:
    """A store URI on the server of ``kind`` with a table of its own."""
    yield from sql_servers.store_uri(request, kind)


def sql_store(uri: str, clock: FakeClock | None = None, **options: Any) -> SQLStore:
    url, table = parse_uri(uri)
    return SQLStore(url, clock, table=table, **options)


def with_database(uri: str, database: str, user: str | None = None) -> str:
    """``uri`` naming another database (and another user, with no password, if given)."""
    scheme, _, rest = uri.partition("://")
    address = rest.partition("?")[0].rpartition("/")[0]
    if user is not None:
        address = f"{user}@{address.rpartition('@')[2]}"
    return f"{scheme}://{address}/{database}"


def admin(uri: str, *statements: str) -> None:
    """Run ``statements`` as the session's (administrative) user of ``uri``'s server."""
    engine = sa.create_engine(sql_servers.engine_url(uri), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


class Statements:
    """The SQL an engine runs while recorded."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(statement)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


# -- the contract on each server ------------------------------------------------------------


class SQLContract(StoreContract):
    """The store contract on a server of ``KIND``, plus what the SQL store adds."""

    KIND = ""

    @pytest.fixture
    def table_uri(self, request: pytest.FixtureRequest) -> Iterator[str]:
        yield from sql_servers.store_uri(request, self.KIND)

    @pytest.fixture
    def store(self, table_uri: str, clock: FakeClock) -> Iterator[SQLStore]:
        store = sql_store(table_uri, clock)
        yield store
        store.close()

    def test_long_names_and_large_values_round_trip(self, store: SQLStore) -> None:
        long = "n" * 300 + "é" * 212  # 512 characters, kept as they are
        longer = "x" * 5000  # kept as its hash
        assert len(encode_name(long)) <= NAME_BYTES < len(longer)
        big = "✉" * 65536  # 64 Ki characters, 192 KiB of UTF-8
        for name in (long, longer, longer + "y"):
            store.set(name, name[-1] + big, 60)
            store.push(name, big, 60, 3)
        assert store.get(long) == "é" + big
        assert store.get(longer) == "x" + big
        assert store.pop(longer + "y") == "y" + big
        assert store.items(longer) == [big]
        assert store.get(long[:-1]) is None

    def test_the_table_is_made_again_after_it_was_dropped(
        self, store: SQLStore, table_uri: str
    ) -> None:
        store.set("k", "v", None)
        sql_servers.drop_tables(table_uri, store.table.name)
        with pytest.raises(StoreUnavailableError):
            store.get("k")
        assert store.get("k") is None
        store.set("k", "w", None)
        assert store.get("k") == "w"

    def test_pop_consumes_with_delete_returning(self, store: SQLStore) -> None:
        store.set("k", "v", 60)
        statements = Statements(store.engine)
        try:
            assert store.pop("k", "v") == "v"
        finally:
            statements.close()
        assert store.returning is True
        assert any("DELETE" in s and "RETURNING" in s for s in statements.seen)
        assert not any("FOR UPDATE" in s for s in statements.seen)

    def test_a_batch_reads_in_one_select_and_deletes_in_one_delete(
        self, store: SQLStore, clock: FakeClock
    ) -> None:
        store.set("a", "one", 60)
        store.set("old", "gone", 1)
        store.hit("h", 60)
        for name in ("c", "d"):
            store.set(name, name, 60)
            store.push(name, "item", 60, 3)
        clock.advance(2)
        statements = Statements(store.engine)
        try:
            batch: list[tuple[Any, ...]] = [("get", "a"), ("get", "old"), ("delete", "c")]
            batch += [("get", "h")]
            batch += [("delete", "d"), ("get", "none"), ("set", "e", "v", 60)]
            assert store.many(batch) == ["one", None, None, "1", None, None, None]
        finally:
            statements.close()
        verbs = [s.split()[0] for s in statements.seen if s.split()[0] in ("SELECT", "DELETE")]
        assert verbs == ["SELECT", "DELETE"]
        assert (store.get("c"), store.items("c"), store.items("d")) == (None, [], [])
        assert store.get("e") == "v"

    def test_a_counter_reads_as_its_count(self, store: SQLStore) -> None:
        store.hit("h", 60)
        store.hit("h", 60)
        assert store.get("h") == "2"
        store.set("h", "text", 60)
        assert store.get("h") == "text"

    def test_a_pooled_connection_the_server_dropped_is_replaced(self, store: SQLStore) -> None:
        """No ping before each use (a round trip each time): a connection the server
        closed (a restart, a failover, an idle timeout) fails once, unseen, and the
        operation runs again on a new one."""
        mine = "SELECT pg_backend_pid()" if self.KIND == "postgresql" else "SELECT CONNECTION_ID()"
        kill = "SELECT pg_terminate_backend(:id)" if self.KIND == "postgresql" else "KILL :id"

        def connection_id() -> int:
            return int(store._run(lambda conn: conn.execute(sa.text(mine)).scalar_one()))

        store.set("k", "v", 60)
        dropped = connection_id()
        pool = store.engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.checkedin() == 1  # the one pooled connection, now idle
        admin = sa.create_engine(store.engine.url, poolclass=sa.pool.NullPool)
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(kill), {"id": dropped})
        finally:
            admin.dispose()
        assert store.get("k") == "v"
        store.set("k", "w", 60)
        assert store.many([("get", "k"), ("hits", [("n", 60)])]) == ["w", [(1, 60.0)]]
        assert connection_id() != dropped

    def test_a_forked_child_starts_its_own_pool(
        self, store: SQLStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store.set("k", "v", None)
        pool = store.engine.pool
        real_pid = os.getpid()
        monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)  # as seen in a child
        assert store.get("k") == "v"
        assert store.engine.pool is not pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.checkedin() == 1  # the parent's connection, left open for the parent
        pool.dispose()


class TestPostgreSQLStore(SQLContract):
    KIND = "postgresql"


class TestMariaDBStore(SQLContract):
    KIND = "mariadb"


class TestSQLiteEngineStore(StoreContract):
    """The same store on a SQLite engine, as a Flask-SQLAlchemy app in development has."""

    @pytest.fixture
    def store(self, tmp_path: Path, clock: FakeClock) -> Iterator[SQLStore]:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
        store = SQLStore(engine=engine, clock=clock)
        yield store
        store.close()
        engine.dispose()


@pytest.mark.parametrize("kind", SERVERS)
def test_a_store_made_engine_runs_its_statements_on_the_driver_connection(
    sql_uri: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine the store made: every operation (a batch, a counter, a pop, a list) on the
    driver's connection, none through SQLAlchemy's execution; the values are the same."""
    store = sql_store(sql_uri, clock)
    try:
        store.check()

        def refuse(*_: Any, **__: Any) -> None:
            raise AssertionError("SQLAlchemy's execution was used")

        monkeypatch.setattr(sa.engine.Connection, "execute", refuse)
        assert sql_transactions.direct(store)
        store.set("k", "v", 60)
        assert store.many([("hits", [("b", 60), ("a", 60)]), ("get", "k"), ("get", "z")]) == [
            [(1, 60.0), (1, 60.0)],
            "v",
            None,
        ]
        assert store.hits([("a", 60), ("b", 60)]) == [(2, 60.0), (2, 60.0)]
        assert store.add("k", "w", 60) is False
        assert store.pop("k", "w") is None
        assert store.pop("k", "v") == "v"
        store.push("l", "one", 60, 2)
        store.push("l", "two", 60, 2)
        store.push("l", "three", 60, 2)
        assert store.items("l") == ["three", "two"]
        clock.advance(61)
        assert store.purge() >= 3
    finally:
        store.close()


def test_listeners_and_an_apps_engine_keep_sqlalchemys_execution(
    sql_uri: str, clock: FakeClock
) -> None:
    """Somebody listening for each statement sees every one: the store then runs them
    through SQLAlchemy (so do the engines of apps, which may be instrumented)."""
    store = sql_store(sql_uri, clock)
    statements = Statements(store.engine)
    try:
        assert not sql_transactions.direct(store)
        store.set("k", "v", 60)
        assert store.many([("get", "k"), ("hits", [("n", 60)])]) == ["v", [(1, 60.0)]]
        assert len(statements.seen) >= 3
    finally:
        statements.close()
        store.close()
    app_store = SQLStore(engine=sa.create_engine(sql_servers.engine_url(sql_uri)), clock=clock)
    try:
        assert not sql_transactions.direct(app_store)
    finally:
        app_store.engine.dispose()


def test_pop_by_row_lock_gives_the_value_to_exactly_one_thread(
    sql_uri: str, clock: FakeClock
) -> None:
    """The MySQL way (no DELETE ... RETURNING): SELECT ... FOR UPDATE, then DELETE."""
    store = sql_store(sql_uri, clock, returning=False)
    statements = Statements(store.engine)
    try:
        store.set("k", "right", 60)
        assert store.pop("k", "wrong") is None
        assert store.pop("k", "right") == "right"
        assert store.pop("k") is None
        rounds, workers = 10, 8
        for r in range(rounds):
            store.set(f"race:{r}", "token", 600)
        barrier = threading.Barrier(workers)
        winners: list[list[int]] = [[] for _ in range(rounds)]

        def race(i: int) -> None:
            for r in range(rounds):
                barrier.wait(timeout=30)
                if store.pop(f"race:{r}", "token") == "token":
                    winners[r].append(i)

        run_threads(workers, race)
        assert [len(w) for w in winners] == [1] * rounds
        assert store.size() == 0
        assert any("FOR UPDATE" in s for s in statements.seen)
        assert not any("RETURNING" in s for s in statements.seen)
    finally:
        statements.close()
        store.close()


@pytest.mark.parametrize("kind", SERVERS)
def test_concurrent_adds_store_exactly_once(sql_uri: str, clock: FakeClock) -> None:
    store = sql_store(sql_uri, clock)
    try:
        for r in range(5):
            store.set(f"user:{r}", "old", 1)
        clock.advance(1)  # expired: replaced by exactly one of the racers
        barrier = threading.Barrier(8)
        won: list[tuple[int, int]] = []

        def race(i: int) -> None:
            for r in range(10):
                barrier.wait(timeout=30)
                if store.add(f"user:{r}", str(i), None):
                    won.append((r, i))

        run_threads(8, race)
        assert sorted(r for r, _ in won) == list(range(10))
        assert all(store.get(f"user:{r}") == str(i) for r, i in won)
    finally:
        store.close()


# -- URIs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "url", "table"),
    [
        ("postgresql://ann@db/app", "postgresql+psycopg://ann@db/app", "postmark_auth_store"),
        (
            "postgres://ann@db:5433/app",
            "postgresql+psycopg://ann@db:5433/app",
            "postmark_auth_store",
        ),
        (
            "mysql://root@127.0.0.1/test",
            "mysql+pymysql://root@127.0.0.1/test",
            "postmark_auth_store",
        ),
        ("MariaDB://u:p%40ss@h/db?table=auth_kv", "mariadb+pymysql://u:p%40ss@h/db", "auth_kv"),
        (
            "postgresql://h/db?sslmode=require&table=t1",
            "postgresql+psycopg://h/db?sslmode=require",
            "t1",
        ),
        ("mysql+mysqldb://h/db", "mysql+mysqldb://h/db", "postmark_auth_store"),
    ],
)
def test_uris_as_people_write_them_get_the_extras_driver(uri: str, url: str, table: str) -> None:
    assert parse_uri(uri) == (url, table)


@pytest.mark.parametrize("table", ["", "1abc", "a-b", "a.b", "x" * 56, "t;drop"])
def test_table_names_must_be_plain_identifiers(table: str) -> None:
    with pytest.raises(ValueError, match="table name"):
        open_store(f"postgresql://h/db?table={table}", instance_path="/x")


def test_open_store_makes_a_sql_store_without_connecting_and_hides_the_password() -> None:
    store = open_store(
        f"postgresql://ann:s3cret@127.0.0.1:{free_port()}/db?table=auth", instance_path="/x"
    )
    assert isinstance(store, SQLStore)
    assert store.table.name == "auth"
    assert store.engine.dialect.name == "postgresql"
    assert "s3cret" not in repr(store)
    maria = open_store("mariadb://root@127.0.0.1/test", instance_path="/x")
    assert isinstance(maria, SQLStore)
    assert (maria.engine.dialect.name, maria.family) == ("mariadb", "mysql")


def test_an_unsupported_engine_is_refused() -> None:
    engine = sa.create_engine("sqlite://")
    engine.dialect.name = "oracle"  # what a Flask-SQLAlchemy app on Oracle would hand over
    with pytest.raises(ValueError, match="PostgreSQL, MySQL, MariaDB and SQLite"):
        SQLStore(engine=engine)


def test_the_sql_store_loads_no_flask() -> None:
    code = (
        "import sys, flask_postmark_auth.store.sql; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'flask_login')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# -- check(): refused at start-up, not an outage ------------------------------------------


def test_an_unknown_database_is_misconfigured(server: str) -> None:
    store = sql_store(with_database(server, f"no_such_db_{uuid.uuid4().hex[:8]}"))
    try:
        with pytest.raises(StoreMisconfiguredError, match="no_such_db"):
            store.check()
    finally:
        store.close()


def test_refused_credentials_are_misconfigured(server: str, kind: str) -> None:
    store = sql_store(with_database(server, "test", user=f"nobody_{uuid.uuid4().hex[:8]}"))
    try:
        with pytest.raises(StoreMisconfiguredError, match="nobody_"):
            store.check()
    finally:
        store.close()


@pytest.fixture
def reader(server: str, kind: str) -> Iterator[str]:
    """A store URI of a user who may connect and read, but not create a table."""
    user = f"pmauth_reader_{uuid.uuid4().hex[:8]}"
    if kind == "postgresql":
        admin(server, f"CREATE ROLE {user} LOGIN")
        drop = f"DROP ROLE {user}"
    else:
        admin(server, f"CREATE USER '{user}'@'%'", f"GRANT SELECT ON test.* TO '{user}'@'%'")
        drop = f"DROP USER '{user}'@'%'"
    try:
        yield sql_servers.with_table(with_database(server, "test", user=user), "pmauth_denied")
    finally:
        admin(server, drop)


def test_a_table_that_cannot_be_created_is_misconfigured(reader: str) -> None:
    store = sql_store(reader)
    try:
        with pytest.raises(StoreMisconfiguredError, match=r"(?i)denied"):
            store.check()
    finally:
        store.close()


@pytest.mark.parametrize(
    "columns",
    [
        "name VARCHAR(100) PRIMARY KEY, value TEXT",
        "name VARCHAR(100), item BIGINT, value TEXT, counter BIGINT, expires FLOAT, "
        "PRIMARY KEY (name, item)",
    ],
)
def test_a_table_of_that_name_but_another_shape_is_misconfigured(
    sql_uri: str, columns: str
) -> None:
    table = sql_uri.rpartition("table=")[2]
    admin(sql_uri, f"CREATE TABLE {table} ({columns})")
    store = sql_store(sql_uri)
    try:
        with pytest.raises(StoreMisconfiguredError, match=f"{table}.*exists but"):
            store.check()
    finally:
        store.close()


def test_check_creates_the_table(sql_uri: str) -> None:
    store = sql_store(sql_uri)
    try:
        store.check()
        assert sa.inspect(store.engine).has_table(store.table.name)
        store.check()  # and finds it the second time
    finally:
        store.close()


@pytest.mark.parametrize("scheme", ["postgresql", "mariadb"])
def test_a_database_that_does_not_answer_is_an_outage_reported_quickly(scheme: str) -> None:
    store = sql_store(f"{scheme}://root:s3cretpw@127.0.0.1:{free_port()}/test", timeout=1)
    started = time.monotonic()
    try:
        store.check()  # an outage: the app may start through it
        with pytest.raises(StoreUnavailableError) as info:
            store.ping()
        with pytest.raises(StoreUnavailableError):
            store.set("user:ann@example.com", "secret-value", 10)
        with pytest.raises(StoreUnavailableError) as write:
            store.pop("user:ann@example.com", "secret-value")
    finally:
        store.close()
    assert time.monotonic() - started < 5
    assert info.value.__cause__ is not None
    assert "s3cretpw" not in str(write.value)
    assert "ann@example.com" not in str(write.value)
    assert "secret-value" not in str(write.value)


@pytest.mark.parametrize("scheme", ["postgresql", "mariadb"])
def test_a_database_gone_after_start_is_an_outage(scheme: str) -> None:
    """The table was made at start (the database answered then); later no new connection can
    be made: every operation, a batch too, answers StoreUnavailableError, never the driver's
    own error (which would be a 500)."""
    store = sql_store(f"{scheme}://root@127.0.0.1:{free_port()}/test", timeout=1)
    store._schema_ready = True  # as after a start when the database answered
    try:
        for operation in (
            lambda: store.get("k"),
            lambda: store.set("k", "v", 10),
            lambda: store.many([("hits", [("n", 60)]), ("get", "k")]),
            lambda: store.many([("pop", "k", "v"), ("delete", "a"), ("delete", "b")]),
        ):
            with pytest.raises(StoreUnavailableError):
                operation()
    finally:
        store.close()


def test_a_row_locked_elsewhere_is_unavailable_quickly_then_recovers(
    sql_uri: str, clock: FakeClock
) -> None:
    store = sql_store(sql_uri, clock, timeout=1)  # lock waits end after 2 s
    locker = sa.create_engine(sql_servers.engine_url(sql_uri), poolclass=sa.pool.NullPool)
    try:
        store.set("k", "v", 60)
        with locker.connect() as conn:
            held = sa.select(store.table.c.item).where(store.table.c.name == encode_name("k"))
            conn.execute(held.with_for_update()).all()
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match=r"(?i)lock"):
                store.pop("k")
            assert time.monotonic() - started < 5
            conn.rollback()
        assert store.pop("k") == "v"
    finally:
        locker.dispose()
        store.close()


def test_an_outage_answers_503_and_the_app_starts_through_it(make_app: AppFactory) -> None:
    app = make_app(STORE=f"postgresql://root@127.0.0.1:{free_port()}/test")
    response = app.test_client().post("/auth/otp", json={"email": "ann@example.com"})
    assert response.status_code == 503
    assert response.get_json()["error"] == "store_unavailable"


def test_init_app_refuses_a_misconfigured_store(server: str) -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=STRONG_KEY,
        TESTING=True,
        POSTMARK_AUTH_STORE=with_database(server, "test", user="nobody_at_all"),
    )
    with pytest.raises(ConfigurationError, match=r"POSTMARK_AUTH_STORE.*nobody_at_all"):
        PostmarkAuth(app)


@pytest.mark.parametrize(
    ("number", "fault"),
    [
        (1213, "retry"),
        (1205, "outage"),
        (2003, "outage"),
        (1146, "no-table"),
        (1045, "misconfigured"),
    ],
)
def test_mysql_errors_are_classified_by_number(number: int, fault: str) -> None:
    error = sa.exc.OperationalError("SELECT 1", {}, Exception(number, "as the driver says"))
    assert classify(error) == fault


# -- one-use secrets through a real app -----------------------------------------------------


@pytest.mark.parametrize("secret", ["code", "link"])
def test_eight_threads_with_one_secret_sign_in_exactly_once(
    make_app: AppFactory, sql_uri: str, secret: str
) -> None:
    app = make_app(
        STORE=sql_uri, RESEND_INTERVAL=0, EMAILS_PER_HOUR=1000, IP_REQUESTS_PER_HOUR=10_000
    )
    try:
        for round_ in range(8):
            email = f"race{round_}@example.com"
            with record_messages(app) as outbox:
                path = "/auth/otp" if secret == "code" else "/auth/magic-link"
                assert app.test_client().post(path, json={"email": email}).status_code == 202
            message = outbox[0]
            barrier = threading.Barrier(8)
            statuses: list[int] = []

            def attempt(
                _: int,
                message: Any = message,
                email: str = email,
                barrier: threading.Barrier = barrier,
                statuses: list[int] = statuses,
            ) -> None:
                client = app.test_client()
                barrier.wait(timeout=30)
                if secret == "code":
                    body = {"email": email, "code": code_in(message)}
                    status = client.post("/auth/otp/verify", json=body).status_code
                else:
                    status = client.post(link_in(message), json={}).status_code
                statuses.append(status)

            run_threads(8, attempt)
            assert sorted(statuses) == [200] + [400] * 7, (round_, statuses)
    finally:
        state(app).store.close()


# -- STORE="sqlalchemy": the app's Flask-SQLAlchemy engine ---------------------------------


def flask_sqlalchemy_app(database_url: str, store: str, **config: Any) -> tuple[Flask, Any]:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test-secret",
        TESTING=True,
        WTF_CSRF_ENABLED=False,
        SQLALCHEMY_DATABASE_URI=database_url,
        POSTMARK_AUTH_STORE=store,
        POSTMARK_AUTH_RESEND_INTERVAL=0,
    )
    app.config.update(config)
    db = SQLAlchemy()
    db.init_app(app)
    return app, db


def dispose(app: Flask, db: Any) -> None:
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def sign_in(app: Flask, email: str = "ann@example.com") -> int:
    client = app.test_client()
    with record_messages(app) as outbox:
        assert client.post("/auth/otp", json={"email": email}).status_code == 202
    body = {"email": email, "code": code_in(outbox[0])}
    return client.post("/auth/otp/verify", json=body).status_code


@pytest.fixture(params=[*SERVERS, "sqlite"])
def app_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A database URL for an app's Flask-SQLAlchemy, and a table name for the store."""
    table = sql_servers.unique_table()
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}", table
        return
    server = sql_servers.server_uri(request.config, request.param)
    try:
        yield sql_servers.engine_url(server), table
    finally:
        sql_servers.drop_tables(server, table)


def test_store_sqlalchemy_uses_the_apps_engine(app_database: tuple[str, str]) -> None:
    url, table = app_database
    app, db = flask_sqlalchemy_app(url, f"sqlalchemy://?table={table}")
    try:
        PostmarkAuth(app)
        store = state(app).store
        assert isinstance(store, SQLStore)
        with app.app_context():
            assert store.engine is db.engine
            assert sa.inspect(db.engine).has_table(table)  # made by check() at init_app
        assert sign_in(app) == 200
        assert sign_in(app) == 200  # the built-in user, kept in the app's database
        store.close()  # not the store's engine: still usable
        with app.app_context():
            count = sa.select(sa.func.count()).select_from(sa.table(table))
            assert db.session.execute(count).scalar()
    finally:
        dispose(app, db)


def test_store_sqlalchemy_plain_takes_the_default_table(tmp_path: Path) -> None:
    app, db = flask_sqlalchemy_app(f"sqlite:///{tmp_path / 'app.db'}", "sqlalchemy")
    try:
        PostmarkAuth(app)
        store = state(app).store
        assert isinstance(store, SQLStore)
        assert store.table.name == "postmark_auth_store"
        assert sign_in(app) == 200
    finally:
        dispose(app, db)


def test_store_sqlalchemy_with_a_bind(tmp_path: Path) -> None:
    app, db = flask_sqlalchemy_app(
        f"sqlite:///{tmp_path / 'main.db'}",
        "sqlalchemy://auth",
        SQLALCHEMY_BINDS={"auth": f"sqlite:///{tmp_path / 'auth.db'}"},
    )
    try:
        PostmarkAuth(app)
        store = state(app).store
        assert isinstance(store, SQLStore)
        with app.app_context():
            assert store.engine is db.engines["auth"]
        assert sign_in(app) == 200
        assert (tmp_path / "auth.db").exists()
    finally:
        dispose(app, db)


def test_store_sqlalchemy_with_an_unknown_bind_is_refused(tmp_path: Path) -> None:
    app, db = flask_sqlalchemy_app(f"sqlite:///{tmp_path / 'a.db'}", "sqlalchemy://auth")
    try:
        with pytest.raises(ConfigurationError, match="no bind 'auth'"):
            PostmarkAuth(app)
    finally:
        dispose(app, db)


def test_store_sqlalchemy_without_flask_sqlalchemy_says_what_to_do() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", TESTING=True, POSTMARK_AUTH_STORE="sqlalchemy")
    with pytest.raises(ConfigurationError, match=r"db\.init_app\(app\) before"):
        PostmarkAuth(app)


def test_store_sqlalchemy_set_up_before_flask_sqlalchemy_says_what_to_do(
    tmp_path: Path,
) -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test-secret",
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'a.db'}",
        POSTMARK_AUTH_STORE="sqlalchemy",
    )
    auth, db = PostmarkAuth(), SQLAlchemy()
    with pytest.raises(ConfigurationError, match=r"db\.init_app\(app\) before"):
        auth.init_app(app)
    db.init_app(app)  # the right order from here works
    dispose(app, db)


def test_store_sqlalchemy_takes_only_a_table_option() -> None:
    with pytest.raises(ValueError, match="only query option is table"):
        open_store("sqlalchemy://?prefix=x", instance_path="/x", app=Flask(__name__))
