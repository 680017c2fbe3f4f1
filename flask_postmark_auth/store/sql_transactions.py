"""How the SQL store runs an operation's work (:meth:`.SQLStore._run`), apart from the store.

A batch of operations, or one that takes several statements, runs in one transaction;
one statement on PostgreSQL runs in autocommit mode: no ``BEGIN`` and ``COMMIT`` round
trips around it (each statement is atomic on its own). Pooled connections are not pinged
before use (a round trip each time): a connection the server dropped (a restart, a
failover, an idle timeout) fails, is thrown away by SQLAlchemy, and the work is tried once
more on a new one. A transaction cut off so was not committed; a lone statement whose answer
was lost may have run, and running it again errs on the safe side (a secret popped twice is
found gone, a hit counts twice). A deadlock victim is tried again, after a short random
pause, up to :data:`.sql.ATTEMPTS` times.

On an engine the store made itself (PostgreSQL, MySQL, MariaDB), the work runs on the
driver's connection, checked out of SQLAlchemy's pool, through :class:`.sql_raw.Cursor`:
the same statements, without SQLAlchemy's execution layer around each (most of the store's
CPU time). An app's engine (``STORE = "sqlalchemy"``), or one that somebody listens to for
each statement, gets SQLAlchemy's execution, events and all.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from . import sql_schema as schema
from .sql_raw import Cursor

if TYPE_CHECKING:
    from .sql import SQLStore

T = TypeVar("T")


def run(
    store: SQLStore,
    work: Callable[[sa.Connection], T],
    attempts: int,
    *,
    duplicate: T | None = None,
    single: bool = False,
) -> T:
    """``work`` on a connection of ``store``'s engine (see the module's text); ``duplicate``,
    when given, is the answer to a duplicate key; ``single``: the work is one statement."""
    store._ready()
    autocommit = single and store.family == "postgresql"
    raw = direct(store)
    dropped = False
    for attempt in range(attempts):
        try:
            if raw:
                return _run_direct(store, work, autocommit)
            with store._engine().connect() as conn:
                if autocommit:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                    return work(conn)
                with conn.begin():
                    return work(conn)
        except sa.exc.IntegrityError as exc:
            if duplicate is not None:
                return duplicate
            raise store._unavailable(exc) from exc
        except sa.exc.SQLAlchemyError as exc:
            if _dropped(exc) and not dropped:
                dropped = True  # a stale pooled connection: once more on a new one
                continue
            fault = schema.classify(exc)
            if fault == "no-table":  # dropped under us: made again on the next call
                store._schema_ready = False
            if fault != "retry" or attempt == attempts - 1:
                raise store._unavailable(exc) from exc
        time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))  # noqa: S311  # nosec B311
    raise AssertionError("unreachable")  # pragma: no cover


def direct(store: SQLStore) -> bool:
    """Whether ``store`` runs its work on the driver's connection (see the module's text)."""
    engine = store.engine
    dispatch = engine.dispatch
    return (
        store._owns_engine
        and store.family in ("postgresql", "mysql")
        and not dispatch.before_cursor_execute
        and not dispatch.after_cursor_execute
    )


def _run_direct(store: SQLStore, work: Callable[[Any], T], autocommit: bool) -> T:
    """``work`` on a driver connection of the pool: committed, or (``autocommit``) in
    autocommit mode. A driver error comes out as SQLAlchemy's (so callers tell them apart
    as for the rest of the store); a connection the server closed is thrown away, and
    with it the pool's others, as SQLAlchemy does on a disconnect."""
    engine = store._engine()
    dialect = engine.dialect
    try:
        pooled = engine.raw_connection()
    except dialect.loaded_dbapi.Error as exc:  # no connection could be made: an outage
        raise _wrapped(exc, dialect, gone=False) from exc
    conn: Any = pooled.dbapi_connection
    cursor: Any = None
    try:
        cursor = conn.cursor()
        if autocommit:
            conn.autocommit = True
            try:
                return work(Cursor(cursor, dialect, store.compiled))
            finally:
                with contextlib.suppress(Exception):
                    conn.autocommit = False
        result = work(Cursor(cursor, dialect, store.compiled))
        conn.commit()
        return result
    except dialect.loaded_dbapi.Error as exc:
        gone = dialect.is_disconnect(exc, conn, cursor)
        if gone:
            pooled.invalidate(exc)
            engine.dispose(close=False)  # the others most likely went with it
        else:
            with contextlib.suppress(Exception):
                conn.rollback()
        raise _wrapped(exc, dialect, gone=gone) from exc
    finally:
        if cursor is not None:
            with contextlib.suppress(Exception):
                cursor.close()
        pooled.close()


def _wrapped(exc: Exception, dialect: sa.Dialect, *, gone: bool) -> sa.exc.StatementError:
    """The driver's ``exc`` as SQLAlchemy's error of its kind (``gone``: the connection was
    closed by the server, and thrown away)."""
    return sa.exc.DBAPIError.instance(
        None,
        None,
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=gone,
        dialect=dialect,
    )


def _dropped(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection the database side closed (SQLAlchemy then discards
    it, and the pool's other connections made before it)."""
    return isinstance(exc, sa.exc.DBAPIError) and bool(exc.connection_invalidated)
