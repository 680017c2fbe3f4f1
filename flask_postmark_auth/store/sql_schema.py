"""What the SQL store needs besides its operations: the table, the URIs people write, the
engine options for a quick answer during an outage, and which database errors mean what.

Names and values are kept as UTF-8 bytes (``BYTEA``, ``VARBINARY``/``MEDIUMBLOB``, ``BLOB``):
the database compares them byte for byte whatever its collation, so ``ann@strasse.example``
and ``ann@straße.example`` (or ``Ann`` and ``ann``) are different names, and any text,
NUL included, round-trips. A name longer than :data:`NAME_BYTES` bytes is kept as ``0xFF``
and its SHA-256; no UTF-8 text holds the byte ``0xFF``, so that form never meets a real name.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

#: The table a store URI uses unless ``?table=`` names another.
DEFAULT_TABLE = "postmark_auth_store"
#: Longest name kept as it is (512 characters of any script fit).
NAME_BYTES = 2048
#: Dialect families the store speaks, by SQLAlchemy dialect name.
FAMILIES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
#: URI schemes people write, and the SQLAlchemy dialect and driver each stands for.
SCHEMES = {
    "postgresql": ("postgresql", "psycopg"),
    "postgres": ("postgresql", "psycopg"),
    "mysql": ("mysql", "pymysql"),
    "mariadb": ("mariadb", "pymysql"),
}
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,54}")

Fault = Literal["misconfigured", "retry", "no-table", "outage"]

# MySQL/MariaDB error numbers: refused user or password, unknown database, denied command,
# key too long for the row format; deadlock; table missing.
_MYSQL_MISCONFIGURED = {1044, 1045, 1049, 1071, 1142, 1227, 1251, 1698, 2059}
_MYSQL_RETRY = {1213}
_MYSQL_NO_TABLE = {1146}
# PostgreSQL SQLSTATEs: refused authorization, unknown database, denied privilege, read-only
# (a standby); serialization failure and deadlock; table missing.
_PG_MISCONFIGURED = {"28000", "28P01", "3D000", "42501", "25006"}
_PG_RETRY = {"40001", "40P01"}
_PG_NO_TABLE = {"42P01"}
# libpq reports refusals while connecting as text only (no SQLSTATE).
_PG_REFUSED = re.compile(
    r"password authentication failed|no pg_hba\.conf entry|no password supplied"
    r'|(?:database|role) "[^"]*" does not exist|permission denied for database',
    re.IGNORECASE,
)


def parse_uri(uri: str) -> tuple[str, str]:
    """A store URI as people write it (``postgresql://user@host/db?table=t``) as a SQLAlchemy
    URL with the driver the ``sql`` extra installs (``postgresql+psycopg://user@host/db``),
    and the table name. An explicit driver (``mysql+mysqldb://``) is kept."""
    scheme, _, rest = uri.partition("://")
    base, _, driver = scheme.lower().partition("+")
    if base not in SCHEMES:
        raise ValueError(f"not a SQL store URI: {uri!r}")
    dialect, default_driver = SCHEMES[base]
    address, _, query = rest.partition("?")
    table, kept = DEFAULT_TABLE, []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "table":
            table = value
        else:
            kept.append((name, value))
    url = f"{dialect}+{driver or default_driver}://{address}"
    return (f"{url}?{urlencode(kept)}" if kept else url), table_name(table)


def parse_app_uri(uri: str) -> tuple[str | None, str]:
    """``sqlalchemy`` or ``sqlalchemy://[BIND][?table=NAME]``: the Flask-SQLAlchemy bind
    (``None``: the default engine) and the table name."""
    bind, _, query = uri.partition("://")[2].partition("?")
    table = DEFAULT_TABLE
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != "table":
            raise ValueError(f"store URI {uri!r}: the only query option is table=NAME")
        table = value
    return bind or None, table_name(table)


def table_name(name: str) -> str:
    """``name`` if it is a plain identifier short enough for every database, else ValueError."""
    if not _TABLE_NAME.fullmatch(name):
        raise ValueError(
            f"SQL store table name {name!r}: use letters, digits and underscores, not starting "
            "with a digit, at most 55 characters"
        )
    return name


def make_table(name: str) -> sa.Table:
    """The store's one table: ``item`` 0 holds a name's value (or counter, in ``counter``),
    ``item`` 1, 2, ... the items of the list of that name, the newest highest."""
    binary_name = sa.LargeBinary().with_variant(mysql.VARBINARY(NAME_BYTES), "mysql", "mariadb")
    blob = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("name", binary_name, primary_key=True),
        sa.Column("item", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("value", blob, nullable=False),
        sa.Column("counter", sa.BigInteger, nullable=True),
        sa.Column("expires", sa.Double, nullable=True),
        sa.Index(f"{name}_expires", "expires"),
        mysql_engine="InnoDB",
        mysql_row_format="DYNAMIC",
    )


def create(engine: sa.Engine, table: sa.Table) -> None:
    """Create ``table`` unless it exists; another worker creating it at the same moment is
    not an error."""
    try:
        table.metadata.create_all(engine, checkfirst=True)
    except sa.exc.SQLAlchemyError:
        if not sa.inspect(engine).has_table(table.name):
            raise


def shape_problem(engine: sa.Engine, table: sa.Table) -> str | None:
    """Why an existing table of the store's name cannot be the store's, or ``None``."""
    inspector = sa.inspect(engine)
    columns = {column["name"]: column for column in inspector.get_columns(table.name)}
    missing = sorted(set(table.c.keys()) - set(columns))
    if missing:
        return f"it has no column {', '.join(missing)}"
    if _python_type(columns["name"]["type"]) is not bytes:
        return "its name column is not binary (names must compare byte for byte)"
    primary = inspector.get_pk_constraint(table.name).get("constrained_columns") or []
    if sorted(primary) != ["item", "name"]:
        return "its primary key is not (name, item)"
    return None


def _python_type(column_type: Any) -> Any:
    try:
        return column_type.python_type
    except NotImplementedError:
        return None


def encode_name(name: str) -> bytes:
    """The stored form of a name: its UTF-8, or ``0xFF`` + SHA-256 when that is too long."""
    raw = name.encode("utf-8", "surrogatepass")
    return raw if len(raw) <= NAME_BYTES else b"\xff" + hashlib.sha256(raw).digest()


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def decode(data: bytes) -> str:
    return bytes(data).decode("utf-8", "surrogatepass")


def engine_options(url: str, timeout: float) -> dict[str, Any]:
    """Options for an engine the store makes itself: a small pool checked before use, and
    connect and lock timeouts of a few seconds, so an outage answers 503 quickly. Options the
    URL sets itself win."""
    query = dict(parse_qsl(url.partition("?")[2]))
    connect: dict[str, Any] = {}
    seconds = max(int(timeout), 2)  # libpq rounds anything lower up to 2
    if url.startswith("postgresql+psycopg"):
        connect["connect_timeout"] = seconds
        connect["options"] = f"-c lock_timeout={seconds}s -c statement_timeout={3 * seconds}s"
    elif url.startswith(("mysql+pymysql", "mariadb+pymysql")):
        connect.update(connect_timeout=seconds, read_timeout=3 * seconds)
        connect.update(write_timeout=3 * seconds, charset="utf8mb4")
        connect["init_command"] = f"SET SESSION innodb_lock_wait_timeout = {seconds}"
    return {
        "pool_size": 5,
        "max_overflow": 10,
        "pool_timeout": timeout,
        "pool_recycle": 1800,
        "hide_parameters": True,
        "connect_args": {k: v for k, v in connect.items() if k not in query},
    }


def classify(exc: BaseException) -> Fault:
    """What a database error means for the store: a set-up that cannot work, a conflict worth
    one more try, the table gone, or (anything else) an outage."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    number = args[0] if args and isinstance(args[0], int) else None
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if number in _MYSQL_MISCONFIGURED or state in _PG_MISCONFIGURED:
        return "misconfigured"
    if number in _MYSQL_RETRY or state in _PG_RETRY:
        return "retry"
    if number in _MYSQL_NO_TABLE or state in _PG_NO_TABLE or "no such table" in str(orig):
        return "no-table"
    if state is None and number is None and _PG_REFUSED.search(str(orig)):
        return "misconfigured"
    return "outage"


def describe(exc: BaseException) -> str:
    """The driver's own first line, never SQLAlchemy's statement and parameters (which hold
    names and values: addresses, code hashes)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def app_engine(app: Any, bind: str | None = None) -> sa.Engine:
    """The engine of ``app``'s Flask-SQLAlchemy (3.x), for the default database or ``bind``.

    Duck-typed (this module imports no Flask): ``app.extensions["sqlalchemy"]`` is the
    extension, whose ``engines`` need the app's context.
    """
    if app is None:
        raise ValueError("STORE 'sqlalchemy' uses the app's Flask-SQLAlchemy, but got no app")
    db = getattr(app, "extensions", {}).get("sqlalchemy")
    if db is None:
        raise ValueError(
            "STORE 'sqlalchemy' uses the app's Flask-SQLAlchemy engine, but the app has no "
            "Flask-SQLAlchemy: pip install Flask-SQLAlchemy, and call db.init_app(app) before "
            "PostmarkAuth's init_app(app)"
        )
    if not hasattr(type(db), "engines"):
        raise ValueError("STORE 'sqlalchemy' needs Flask-SQLAlchemy 3.0 or later")
    with app.app_context():
        engines = dict(db.engines)
    if bind not in engines:
        named = sorted(str(name) for name in engines if name is not None)
        raise ValueError(
            f"STORE 'sqlalchemy://{bind}': the app's Flask-SQLAlchemy has no bind {bind!r} "
            f"(SQLALCHEMY_BINDS has {named or 'none'})"
        )
    engine: sa.Engine = engines[bind]
    return engine
