"""PostgreSQL and MariaDB for the tests: the servers of the test machines (PostgreSQL on
127.0.0.1:5432 with trust authentication, MariaDB on 127.0.0.1:3306 as root, database
``test`` on each), or those named by ``TEST_POSTGRESQL_URL`` / ``TEST_MARIADB_URL``.

The suite never starts a database server. Each store gets a table of its own, named with a
per-run tag (:data:`RUN_TAG`) and dropped afterwards (and, at session end, any of this run's
tables still there). With no server the tests are skipped, or fail when the environment
variable ``CI`` is ``"true"``.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

#: The kinds of server, and the URIs tried for each (the first that answers is used).
CANDIDATES = {
    "postgresql": (
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgresql://root@127.0.0.1:5432/test",
    ),
    "mariadb": ("mariadb://root@127.0.0.1:3306/test",),
}
#: Every table of this run starts with this.
RUN_TAG = f"pmauth_t{uuid.uuid4().hex[:10]}_"
_numbers = itertools.count(1)


class SQLUnavailableError(RuntimeError):
    """No server of that kind answers."""


def engine_url(uri: str) -> str:
    """A store URI (``postgresql://...``) as SQLAlchemy URL with the store's driver."""
    from flask_postmark_auth.store.sql_schema import parse_uri

    return parse_uri(uri)[0]


def _engine(uri: str) -> Any:
    import sqlalchemy as sa

    url = engine_url(uri)
    timeout = {"connect_timeout": 3}
    return sa.create_engine(url, connect_args=timeout, poolclass=sa.pool.NullPool)


def answers(uri: str) -> str | None:
    """``None`` when a server answers ``SELECT 1`` at ``uri``, else why not."""
    import sqlalchemy as sa

    engine = _engine(uri)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def find(kind: str) -> str:
    """The store URI (no table) of a server of ``kind`` that answers; raises
    :class:`SQLUnavailableError`."""
    variable = f"TEST_{kind.upper()}_URL"
    candidates = (os.environ[variable],) if os.environ.get(variable) else CANDIDATES[kind]
    reasons = []
    for uri in candidates:
        reason = answers(uri)
        if reason is None:
            return uri
        reasons.append(f"{uri}: {reason}")
    raise SQLUnavailableError("; ".join(reasons))


def unavailable(kind: str, reason: str) -> NoReturn:
    """Fail under CI (CI=true), where the SQL tests must run; skip elsewhere."""
    message = f"{kind} tests need a server: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def unique_table() -> str:
    """A table name of this run no other test shares."""
    return f"{RUN_TAG}{next(_numbers)}"


def with_table(uri: str, table: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}table={table}"


def drop_tables(uri: str, *tables: str) -> None:
    """Drop ``tables`` (those that exist) on the server of ``uri``."""
    import sqlalchemy as sa

    engine = _engine(uri)
    try:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    finally:
        engine.dispose()


def run_tables(uri: str) -> list[str]:
    """This run's tables still on the server of ``uri``."""
    import sqlalchemy as sa

    engine = _engine(uri)
    try:
        names = sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    return [name for name in names if name.startswith(RUN_TAG)]


_session: dict[str, str] = {}


def server_uri(config: pytest.Config, kind: str) -> str:
    """The session's store URI for ``kind`` (``postgresql`` or ``mariadb``), found on first
    use; at session end this run's tables left on it are dropped. Skips or fails (CI) when
    the server does not answer."""
    if f"{kind}:error" in _session:
        unavailable(kind, _session[f"{kind}:error"])
    if kind not in _session:
        try:
            uri = find(kind)
        except SQLUnavailableError as exc:
            _session[f"{kind}:error"] = str(exc)
            unavailable(kind, str(exc))
        except ImportError as exc:  # the test extra is not installed
            unavailable(kind, f"{exc} (pip install -e '.[test]')")
        _session[kind] = uri

        def finish() -> None:
            _session.pop(kind, None)
            drop_tables(uri, *run_tables(uri))

        config.add_cleanup(finish)
    return _session[kind]


def store_uri(request: pytest.FixtureRequest, kind: str) -> Iterator[str]:
    """For a fixture: a store URI for :func:`~flask_postmark_auth.store.open_store` on the
    session's server of ``kind`` with a table of its own (``?table=``), dropped afterwards."""
    uri = server_uri(request.config, kind)
    table = unique_table()
    try:
        yield with_table(uri, table)
    finally:
        drop_tables(uri, table)
