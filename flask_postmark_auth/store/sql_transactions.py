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
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa

from . import sql_schema as schema

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
    dropped = False
    for attempt in range(attempts):
        try:
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


def _dropped(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection the database side closed (SQLAlchemy then discards
    it, and the pool's other connections made before it)."""
    return isinstance(exc, sa.exc.DBAPIError) and bool(exc.connection_invalidated)
