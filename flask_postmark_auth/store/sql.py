"""SQL store: one table in PostgreSQL or MySQL/MariaDB (or SQLite, through an app's engine),
shared by every worker on every machine; SQLAlchemy 2 Core, no ORM.

Each operation is one statement or one short transaction: an UPSERT (``ON CONFLICT`` or
``ON DUPLICATE KEY UPDATE``) for writes and counters, ``DELETE ... RETURNING`` to consume a
one-use secret where the server has it (PostgreSQL, MariaDB, SQLite) and ``SELECT ... FOR
UPDATE`` then ``DELETE`` in one transaction where it does not (MySQL), so of any number of
callers exactly one gets a value. Expiry compares with ``self.clock()``, never the server's
time. The table (:func:`.sql_schema.make_table`) is created on first use.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar

try:
    import sqlalchemy as sa
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'SQL stores need SQLAlchemy and a driver: pip install "flask-postmark-auth[sql]"'
    ) from exc

from . import sql_batch, sql_raw, sql_transactions
from . import sql_schema as schema
from .base import Clock, Store, StoreMisconfiguredError, StoreUnavailableError, check_batch
from .sql_statements import Statements, name_params

T = TypeVar("T")
#: What one operation does inside a transaction.
Work: TypeAlias = Callable[[sa.Connection], T]
#: Tries of a transaction the database chose as a deadlock victim (or, for a list, that
#: lost the race for an item number) before the store reports itself unavailable.
ATTEMPTS = 5
_INSTALL = 'pip install "flask-postmark-auth[sql]"'


class SQLStore(Store):
    """A :class:`Store` in the table ``table`` of a SQL database.

    Give ``url`` (a SQLAlchemy URL with its driver, ``postgresql+psycopg://...``; the store
    makes and owns the engine) or ``engine`` (an existing one, such as a Flask-SQLAlchemy
    app's: used as it is, never disposed). ``returning`` forces the way :meth:`pop` consumes
    (``None``: ``DELETE ... RETURNING`` when the server has it); ``timeout`` bounds connecting,
    waiting for a pooled connection and waiting for a row lock, in seconds.
    """

    def __init__(
        self,
        url: str | None = None,
        clock: Clock | None = None,
        *,
        engine: sa.Engine | None = None,
        table: str = schema.DEFAULT_TABLE,
        returning: bool | None = None,
        timeout: float = 3.0,
    ) -> None:
        super().__init__(clock)
        self._owns_engine = engine is None
        if engine is None:
            if url is None:
                raise ValueError("SQLStore takes a url or an engine")
            try:
                engine = sa.create_engine(url, **schema.engine_options(url, timeout))
            except ImportError as exc:
                raise ImportError(f"{url.partition(':')[0]}: {exc}; {_INSTALL}") from exc
        elif url is not None:
            raise ValueError("SQLStore takes a url or an engine, not both")
        family = schema.FAMILIES.get(engine.dialect.name)
        if family is None:
            raise ValueError(
                f"the SQL store works with PostgreSQL, MySQL, MariaDB and SQLite, not "
                f"{engine.dialect.name}"
            )
        self.engine = engine
        self.family = family
        self.table = schema.make_table(schema.table_name(table))
        #: The store's statements, built once (see :mod:`.sql_statements`).
        self.q = Statements(family, self.table)
        #: The statements as compiled for the driver (see :mod:`.sql_raw`).
        self.compiled: sql_raw.Cache = {}
        self.returning = returning
        self._pid = os.getpid()
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"<SQLStore {url} table={self.table.name}>"

    # -- engine, schema, errors -----------------------------------------------------------

    def _engine(self) -> sa.Engine:
        """The engine; in a forked child, its pool starts afresh (the parent keeps its
        connections)."""
        if self._owns_engine and self._pid != os.getpid():
            self._pid = os.getpid()
            self.engine.dispose(close=False)
        return self.engine

    def _ready(self) -> None:
        """Create the table on first use; learn whether the server has DELETE RETURNING."""
        if not self._schema_ready:
            with self._schema_lock:
                if not self._schema_ready:
                    try:
                        schema.create(self._engine(), self.table)
                    except sa.exc.SQLAlchemyError as exc:
                        raise self._unavailable(exc) from exc
                    self._schema_ready = True
        if self.returning is None:  # the dialect knows once it has met the server
            self.returning = bool(self.engine.dialect.delete_returning)

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"SQL store {self!r}: {schema.describe(exc)}")

    def _run(
        self,
        work: Callable[[sa.Connection], T],
        *,
        duplicate: T | None = None,
        single: bool = False,
    ) -> T:
        """``work`` in one transaction (or, ``single`` statement on PostgreSQL, none), tried
        again after a deadlock or on a pooled connection the server dropped; ``duplicate``,
        when given, is the answer to a duplicate key (see :mod:`.sql_transactions`)."""
        return sql_transactions.run(self, work, ATTEMPTS, duplicate=duplicate, single=single)

    @staticmethod
    def _read(row: Any) -> str:
        """A row's value as text: a counter reads as its count."""
        return schema.decode(row.value) if row.counter is None else str(row.counter)

    def _one(self, stmt: Any, params: dict[str, Any]) -> Any:
        """The first row ``stmt`` answers, or ``None``."""
        return self._run(lambda conn: conn.execute(stmt, params).first(), single=True)

    @staticmethod
    def _do_in(conn: sa.Connection, stmt: Any, params: dict[str, Any]) -> bool:
        conn.execute(stmt, params)
        return True

    def _do(self, stmt: Any, params: dict[str, Any]) -> int:
        """Run ``stmt``; the rows it matched."""
        return int(self._run(lambda conn: conn.execute(stmt, params).rowcount))

    # -- the Store interface --------------------------------------------------------------
    # Each operation that :meth:`many` can batch is built by a ``_w_<name>`` method as the
    # work of a transaction, so a batch runs them all in one.

    def many(self, ops: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The operations of ``ops`` on one pooled connection, checked out once: in one
        transaction (one commit); on PostgreSQL, a batch of one write (and reads) in
        autocommit mode instead, each operation being one statement there (no ``BEGIN``
        and ``COMMIT`` round trips, and a counter's row lock lasts one statement, not the
        batch). On MySQL a batch holding an :meth:`add` runs operation by operation, as
        ``add`` takes two transactions there."""
        check_batch(ops)
        if len(ops) < 2 or (self.q.add is None and any(op[0] == "add" for op in ops)):
            return super().many(ops)
        self._ready()
        writes = [op[0] for op in ops if op[0] != "get"]
        single = self.family == "postgresql" and len(writes) <= 1
        single = single and (self.returning or "pop" not in writes)  # else a lock, a DELETE
        return self._run(sql_batch.work(self, ops), single=single)

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """Store ``value``, replacing any previous one (one UPSERT)."""
        self._run(self._w_set(key, value, ttl), single=True)

    def _w_set(self, key: str, value: str, ttl: float | None) -> Work[None]:
        exp = _expires(self.clock(), ttl)
        params = {"k": schema.encode_name(key), "v": schema.encode(value), "exp": exp}
        return _statement(self.q.set, params)

    def add(self, key: str, value: str, ttl: float | None) -> bool:
        """Store ``value`` only if ``key`` is absent or expired: one conditional UPSERT
        (PostgreSQL, SQLite); on MySQL an INSERT, else an UPDATE of an expired row, each its
        own transaction, so no lock outlives its statement."""
        if self.q.add is not None:
            return self._run(self._w_add(key, value, ttl), single=True)
        params = self._add_params(key, value, ttl)
        for _ in range(ATTEMPTS):
            if self._run(lambda conn: self._do_in(conn, self.q.insert, params), duplicate=False):
                return True  # a duplicate key: the name is there (live or expired)
            if self._do(self.q.replace_expired, params) > 0:
                return True
            if self._one(self.q.get, params) is not None:
                return False
            # deleted between the INSERT and the UPDATE: try again
        return False

    def _add_params(self, key: str, value: str, ttl: float | None) -> dict[str, Any]:
        now = self.clock()
        params = {"k": schema.encode_name(key), "v": schema.encode(value), "now": now}
        params["exp"] = _expires(now, ttl)
        return params

    def _w_add(self, key: str, value: str, ttl: float | None) -> Work[bool]:
        params = self._add_params(key, value, ttl)
        add: Any = self.q.add  # only asked for where the dialect has one (see add)
        return lambda conn: conn.execute(add, params).first() is not None

    def get(self, key: str) -> str | None:
        """The live value, or ``None``."""
        return self._run(self._w_get(key), single=True)

    def _w_get(self, key: str) -> Work[str | None]:
        params = {"k": schema.encode_name(key), "now": self.clock()}

        def work(conn: sa.Connection) -> str | None:
            row = conn.execute(self.q.get, params).first()
            return None if row is None else self._read(row)

        return work

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when absent, ``inf`` when it never does."""
        now = self.clock()
        row = self._one(self.q.get, {"k": schema.encode_name(key), "now": now})
        if row is None:
            return None
        return math.inf if row.expires is None else float(row.expires) - now

    def delete(self, key: str) -> None:
        """Remove ``key`` and the list of that name (one DELETE)."""
        self._run(self._w_delete(key), single=True)

    def _w_delete(self, key: str) -> Work[None]:
        params = {"k": schema.encode_name(key)}
        return _statement(self.q.delete, params)

    def pop(self, key: str, expected: str | None = None) -> str | None:
        """Read and delete ``key``: one ``DELETE ... RETURNING``, or a row lock then a DELETE
        in one transaction; of any number of concurrent callers exactly one gets the value."""
        self._ready()
        return self._run(self._w_pop(key, expected), single=bool(self.returning))

    def _w_pop(self, key: str, expected: str | None = None) -> Work[str | None]:
        params: dict[str, Any] = {"k": schema.encode_name(key), "now": self.clock()}
        if expected is not None:
            params["want"] = schema.encode(expected)

        def work(conn: sa.Connection) -> str | None:
            if self.returning:
                stmt = self.q.pop if expected is None else self.q.pop_expected
                row = conn.execute(stmt, params).first()
            else:
                lock = self.q.lock if expected is None else self.q.lock_expected
                row = self._locked_pop(conn, lock, params)
            return None if row is None else self._read(row)

        return work

    def _locked_pop(self, conn: sa.Connection, lock: Any, params: dict[str, Any]) -> Any:
        """Lock the live row (a second caller waits, then finds none), then delete it."""
        row = conn.execute(lock, params).first()
        if row is not None:
            conn.execute(self.q.delete_value, params)
        return row

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one event in a fixed window (an UPSERT that restarts an ended window)."""
        return self.hits([(key, window)])[0]

    def hits(self, windows: Sequence[tuple[str, float]]) -> list[tuple[int, float]]:
        """Several :meth:`hit`: on PostgreSQL one multi-row UPSERT (autocommit), else in one
        transaction an UPSERT each, read with ``RETURNING`` or (MySQL) afterwards; rows go in
        name order, so two callers never deadlock."""
        one = self.family == "postgresql" or (self.family != "mysql" and len(windows) == 1)
        return self._run(self._w_hits(windows), single=one) if windows else []

    def _w_hits(self, windows: Sequence[tuple[str, float]]) -> Work[list[tuple[int, float]]]:
        now = self.clock()
        names = sorted({schema.encode_name(key): now + window for key, window in windows}.items())
        rows = [{"k": name, "exp": exp, "now": now} for name, exp in names]

        def work(conn: sa.Connection) -> list[tuple[int, float]]:
            if self.family == "postgresql":
                values: dict[str, Any] = {"now": now}
                for i, (name, exp) in enumerate(names):
                    values.update({f"k{i}": name, f"exp{i}": exp})
                found = list(conn.execute(self.q.hits(len(names)), values))
            elif self.family != "mysql":
                found = [conn.execute(self.q.hit, row).one() for row in rows]
            else:
                for row in rows:
                    conn.execute(self.q.hit, row)
                wanted = name_params([name for name, _ in names])
                found = list(conn.execute(self.q.counts(len(names)), wanted))
            answers = {bytes(r.name): (int(r.counter), float(r.expires) - now) for r in found}
            return [answers[schema.encode_name(key)] for key, _ in windows]

        return work

    def undo_hit(self, key: str) -> None:
        """Take back one hit in the current window (never below zero); no-op if absent."""
        self._run(self._w_undo_hit(key), single=True)

    def _w_undo_hit(self, key: str) -> Work[None]:
        params = {"k": schema.encode_name(key), "now": self.clock()}
        return _statement(self.q.undo_hit, params)

    def push(self, key: str, value: str, ttl: float | None, max_items: int) -> None:
        """Add ``value`` to the front of the list ``key`` (the next item number; a push that
        lost the race for it tries again), keeping the newest ``max_items``."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        now = self.clock()
        params = {"k": schema.encode_name(key), "v": schema.encode(value), "now": now}
        params["exp"] = _expires(now, ttl)

        def work(conn: sa.Connection) -> bool:
            conn.execute(self.q.drop_expired_items, params)
            item = int(conn.execute(self.q.top_item, params).scalar() or 0) + 1
            conn.execute(self.q.insert_item, {**params, "item": item})
            conn.execute(self.q.touch_items, params)
            conn.execute(self.q.trim_items, {**params, "low": item - max_items})
            return True

        for _ in range(ATTEMPTS):
            if self._run(work, duplicate=False):
                return
        raise StoreUnavailableError(f"SQL store {self!r}: too many concurrent pushes to one list")

    def items(self, key: str) -> list[str]:
        """The list ``key``, newest first (empty when absent or expired)."""
        params = {"k": schema.encode_name(key), "now": self.clock()}
        rows = self._run(lambda conn: conn.execute(self.q.items, params).all())
        return [schema.decode(row.value) for row in rows]

    def purge(self) -> int:
        """Delete expired rows now; return how many (list items counted one by one)."""
        return self._do(self.q.purge, {"now": self.clock()})

    def size(self) -> int:
        """How many rows (keys, list items included) the table holds, expired or not."""
        return int(self._run(lambda conn: conn.execute(self.q.size).scalar_one()))

    def ping(self) -> None:
        """Run ``SELECT 1`` on a pooled connection."""
        try:
            with self._engine().connect() as conn:
                conn.execute(sa.select(1))
        except sa.exc.SQLAlchemyError as exc:
            raise self._unavailable(exc) from exc

    def check(self) -> None:
        """Connect and create (or inspect) the table: refused credentials, an unknown
        database, a table that cannot be created or is not the store's raise
        :class:`StoreMisconfiguredError`; a database that does not answer is an outage."""
        try:
            with self._schema_lock:
                schema.create(self._engine(), self.table)
                problem = schema.shape_problem(self._engine(), self.table)
                self._schema_ready = problem is None
        except sa.exc.SQLAlchemyError as exc:
            if schema.classify(exc) == "misconfigured":
                raise StoreMisconfiguredError(
                    f"SQL store {self!r}: {schema.describe(exc)}"
                ) from exc
            return
        if problem is not None:
            raise StoreMisconfiguredError(
                f"SQL store {self!r}: table {self.table.name!r} exists but {problem}; "
                "name another with ?table=NAME"
            )

    def close(self) -> None:
        """Close the pooled connections of an engine the store made (not an app's); the next
        call connects again."""
        if self._owns_engine:
            self.engine.dispose()


def _statement(stmt: Any, params: dict[str, Any]) -> Work[None]:
    """The work of running ``stmt`` once, for an operation that answers nothing."""

    def work(conn: sa.Connection) -> None:
        conn.execute(stmt, params)

    return work


def _expires(now: float, ttl: float | None) -> float | None:
    return None if ttl is None else now + ttl


def open_sql_store(uri: str, clock: Clock | None = None, app: Any = None) -> SQLStore:
    """The store of a SQL store URI: ``postgresql://``, ``mysql://``, ``mariadb://`` (each
    with ``?table=NAME``), or ``sqlalchemy`` / ``sqlalchemy://[BIND][?table=NAME]`` for the
    engine of ``app``'s Flask-SQLAlchemy (its default engine, or the bind named)."""
    if uri.lower() == "sqlalchemy" or uri.lower().startswith("sqlalchemy://"):
        bind, table = schema.parse_app_uri(uri)
        return SQLStore(engine=schema.app_engine(app, bind), clock=clock, table=table)
    url, table = schema.parse_uri(uri)
    return SQLStore(url, clock, table=table)
