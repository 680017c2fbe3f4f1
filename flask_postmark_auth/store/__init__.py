"""Stores: where sign-in keeps codes, nonces and counters, chosen by a URI in the config.

:func:`open_store` turns ``POSTMARK_AUTH_STORE`` into a backend: ``memory://`` (one process),
``sqlite:///...`` (one machine, any number of workers), ``redis://...`` or a SQL database
(``postgresql://...``, ``mysql://...``, the app's Flask-SQLAlchemy: many machines).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from .base import Clock, Store, StoreMisconfiguredError, StoreUnavailableError
from .memory import MemoryStore
from .redis import DEFAULT_PREFIX, RedisStore
from .redis_clients import SCHEMES as REDIS_SCHEMES
from .sqlite import SQLiteStore

__all__ = [
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreMisconfiguredError",
    "StoreUnavailableError",
    "open_store",
]

_ACCEPTED = (
    "memory://, sqlite:///relative/to/instance.db, sqlite:////absolute/path.db, "
    "redis://HOST:PORT/DB, rediss://HOST:PORT/DB, unix:///path/to/redis.sock, "
    "redis+cluster://HOST:PORT[,HOST:PORT...], "
    "redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB] (rediss+... for TLS; valkey "
    "for redis in any of them; Redis forms take an optional ?prefix=KEY_PREFIX), "
    "postgresql://USER@HOST/DB, mysql://USER@HOST/DB, mariadb://USER@HOST/DB "
    '(pip install "flask-postmark-auth[sql]"), sqlalchemy (the app\'s Flask-SQLAlchemy '
    "engine; sqlalchemy://BIND for another bind); SQL forms take an optional ?table=NAME"
)
#: URI schemes of the SQL store (its module, and SQLAlchemy, load only when one is used).
SQL_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "sqlalchemy")


def open_store(
    uri: str, *, instance_path: str, clock: Clock | None = None, app: Any = None
) -> Store:
    """The store ``uri`` names (``memory://``, ``sqlite:///...``, ``redis://...``, a SQL
    database URL, ``sqlalchemy``...); a relative SQLite path is taken relative to
    ``instance_path``. ``clock`` is the store's time source (``None``: :func:`time.time`);
    ``app`` is the Flask app being set up (for stores that use one of its extensions, as
    ``sqlalchemy`` uses its Flask-SQLAlchemy engine). The store is not checked here:
    :meth:`Store.check` does that (``init_app`` calls it).

    Raises :class:`ValueError`, naming the accepted forms, for anything else.
    """
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if scheme.partition("+")[0] in SQL_SCHEMES:
        from .sql import open_sql_store

        return open_sql_store(uri, clock, app)
    if not sep:
        raise ValueError(f"store URI {uri!r} has no scheme; use one of: {_ACCEPTED}")
    if scheme == "memory":
        if rest:
            raise ValueError(f"memory store URI takes nothing after memory://, got {uri!r}")
        return MemoryStore(clock)
    if scheme == "sqlite":
        return SQLiteStore(_sqlite_path(uri, rest, instance_path), clock)
    if scheme in REDIS_SCHEMES:
        url, prefix = _split_prefix(uri)
        return RedisStore(url, clock, prefix=prefix)
    raise ValueError(f"unknown store URI scheme {scheme!r} in {uri!r}; use one of: {_ACCEPTED}")


def _sqlite_path(uri: str, rest: str, instance_path: str) -> str:
    """``sqlite:///name.db`` is relative to the instance folder, ``sqlite:////abs.db`` absolute.

    A query may set ``mode`` (``ro``, ``rw``, ``rwc``), as SQLAlchemy's ``file:`` spelling
    does; the path then becomes a SQLite ``file:`` URI. Any other query is refused.
    """
    rest, _, query = rest.partition("?")
    if not rest.startswith("/") or rest == "/":
        raise ValueError(
            f"SQLite store URI {uri!r} needs three slashes and a file name: "
            "sqlite:///name.db (in the instance folder) or sqlite:////absolute/path.db"
        )
    path = rest[1:]
    if path.startswith("file:"):
        path = path[len("file:") :]
    if path == ":memory:":
        raise ValueError("an in-memory SQLite store is not shared between threads; use memory://")
    path = path if os.path.isabs(path) else os.path.join(instance_path, path)
    options = dict(parse_qsl(query, keep_blank_values=True))
    options.pop("uri", None)
    unknown = set(options) - {"mode"}
    if unknown or options.get("mode", "rwc") not in ("ro", "rw", "rwc"):
        raise ValueError(f"SQLite store URI {uri!r}: the only query option is mode=ro, rw or rwc")
    if options:
        return f"file:{quote(path)}?{urlencode(options)}"
    return path


def _split_prefix(uri: str) -> tuple[str, str]:
    """Remove the ``prefix`` query parameter (ours, not redis-py's) from a Redis URL."""
    base, sep, query = uri.partition("?")
    if not sep:
        return uri, DEFAULT_PREFIX
    pairs = parse_qsl(query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    kept = []
    for name, value in pairs:
        if name == "prefix":
            prefix = value
        else:
            kept.append((name, value))
    return (f"{base}?{urlencode(kept)}" if kept else base), prefix
