"""The SQL store's statements run on the driver's own connection, past SQLAlchemy's
execution layer (see :func:`.sql_transactions.run` for when).

SQLAlchemy still builds every statement (:mod:`.sql_statements`) and compiles it, once, for
the engine's dialect; its pool still hands out, resets and replaces the connections. Only
the per-call work between (a cache look-up, an execution context, a result object: about
80 microseconds of CPU a statement on PostgreSQL, several times what the driver itself
takes) is skipped: :class:`Cursor` passes the compiled text and the parameters, through the
dialect's own converters, straight to the driver's cursor. The table's columns come back as
the driver gives them (bytes, integers, floats), which is all the store reads.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa


class Compiled:
    """One statement compiled for one dialect: its text, the order of its parameters (for a
    positional paramstyle), the values it binds itself (literals such as ``b""``) and the
    dialect's converters of parameters (``bytes`` to the driver's binary type)."""

    __slots__ = ("convert", "fixed", "order", "sql")

    def __init__(self, stmt: Any, dialect: sa.Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:  # an expanding IN: SQLAlchemy renders it per call
            raise ValueError(f"{dialect.name}: {stmt} needs SQLAlchemy's execution")
        self.sql: str = compiled.string
        names = compiled.bind_names
        self.convert: dict[str, Any] = dict(compiled._bind_processors)
        fixed = {names[b]: b.effective_value for b in names if not b.required}
        self.fixed = self._converted(fixed)
        self.order: list[str] | None = (
            list(compiled.positiontup or []) if compiled.positional else None
        )

    def _converted(self, values: dict[str, Any]) -> dict[str, Any]:
        for name, convert in self.convert.items():
            if name in values and values[name] is not None:
                values[name] = convert(values[name])
        return values

    def parameters(self, given: Mapping[str, Any]) -> Any:
        """What the driver's ``execute`` takes for ``given``: a dict, or a tuple in order."""
        values = {**self.fixed, **self._converted(dict(given))}
        if self.order is None:
            return values
        return tuple(values[name] for name in self.order)


class Result:
    """What :meth:`Cursor.execute` answers: the few reads of SQLAlchemy's result that the
    store makes."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise sa.exc.NoResultFound(f"{len(self._rows)} rows, not one")
        return self._rows[0]

    def all(self) -> list[Any]:
        return list(self._rows)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def __iter__(self) -> Any:
        return iter(self._rows)


#: Where :class:`Cursor` keeps what it compiled: by ``id``, beside the statement.
Cache = dict[int, tuple[Any, "Compiled"]]
#: A row type per tuple of column names, made on first sight.
_ROWS: dict[tuple[str, ...], Any] = {}


def _row_type(description: Any) -> Any:
    names = tuple(column[0] for column in description)
    kind = _ROWS.get(names)
    if kind is None:
        kind = _ROWS[names] = collections.namedtuple("Row", names, rename=True)
    return kind


class Cursor:
    """A driver cursor that executes the store's statements as :class:`sqlalchemy.Connection`
    would (``execute(statement, parameters)``), each compiled once in ``cache``: keyed by
    the statement's ``id`` beside the statement itself, so the key stays its own (the
    store's statements are built once and kept; a ``text()``, made per call, is not
    cached)."""

    __slots__ = ("_cache", "_cursor", "_dialect")

    def __init__(
        self, cursor: Any, dialect: sa.Dialect, cache: dict[int, tuple[Any, Compiled]]
    ) -> None:
        self._cursor = cursor
        self._dialect = dialect
        self._cache = cache

    def execute(self, stmt: Any, parameters: Mapping[str, Any] | None = None) -> Result:
        known = self._cache.get(id(stmt))
        if known is not None:
            compiled = known[1]
        else:
            compiled = Compiled(stmt, self._dialect)
            if not isinstance(stmt, sa.TextClause):
                self._cache[id(stmt)] = (stmt, compiled)
        cursor = self._cursor
        cursor.execute(compiled.sql, compiled.parameters(parameters or {}))
        description = cursor.description
        if description is None:
            return Result([], cursor.rowcount)
        kind = _row_type(description)
        return Result([kind(*row) for row in cursor.fetchall()], cursor.rowcount)
