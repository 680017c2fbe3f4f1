"""Every statement of the SQL store, built once per store with bound parameters, so SQLAlchemy
compiles each once and caches it (a statement built per call, or a multi-row VALUES, is
compiled again on every call: most of the store's CPU time).

Parameters: ``k`` a stored name (:func:`.sql_schema.encode_name`), ``v`` a value's bytes,
``exp`` an expiry (or ``None``), ``now`` the store's clock, ``want`` an expected value,
``item`` and ``low`` list item numbers, ``n0``, ``n1``, ... several stored names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite


def insert(family: str, table: sa.Table) -> Any:
    """The dialect's INSERT, which has the dialect's UPSERT clause."""
    if family == "postgresql":
        return postgresql.insert(table)
    if family == "mysql":
        return mysql.insert(table)
    return sqlite.insert(table)


class Statements:
    """The statements of a store on ``table`` in a database of ``family``."""

    def __init__(self, family: str, table: sa.Table) -> None:
        c = table.c
        k = sa.bindparam("k", type_=c.name.type)
        v = sa.bindparam("v", type_=c.value.type)
        exp = sa.bindparam("exp", type_=sa.Double)
        now = sa.bindparam("now", type_=sa.Double)
        live = sa.or_(c.expires.is_(None), c.expires > now)
        expired = sa.and_(c.expires.is_not(None), c.expires <= now)
        over = sa.or_(c.expires.is_(None), c.expires <= now)  # a counter's window has ended
        value = sa.and_(c.name == k, c.item == 0)
        items = sa.and_(c.name == k, c.item > 0)
        mysql_family = family == "mysql"

        def upsert(
            counter: Any, changes: list[tuple[str, Any]], where: Any = None, **values: Any
        ) -> Any:
            """INSERT a value row; when there is one, SET ``changes`` instead, in that order
            (MySQL assigns left to right, each seeing the ones before), and (not on MySQL,
            whose ON DUPLICATE KEY UPDATE has none) only ``where`` that holds."""
            stmt = insert(family, table).values(name=k, item=0, counter=counter, **values)
            if mysql_family:
                return stmt.on_duplicate_key_update(changes)
            target = [c.name, c.item]
            return stmt.on_conflict_do_update(
                index_elements=target, set_=dict(changes), where=where
            )

        new = {"value": v, "counter": None, "expires": exp}
        replace = list(new.items())
        self.get = sa.select(c.value, c.counter, c.expires).where(value, live)
        self.set = upsert(None, replace, value=v, expires=exp)
        #: PostgreSQL, SQLite: one UPSERT that replaces only an expired row, RETURNING a row
        #: when it stored. MySQL: INSERT, else :attr:`replace_expired`.
        add = upsert(None, replace, expired, value=v, expires=exp)
        self.add = None if mysql_family else add.returning(c.item)
        self.insert = sa.insert(table).values(name=k, item=0, counter=None, value=v, expires=exp)
        self.replace_expired = sa.update(table).where(value, expired).values(new)
        self.delete = sa.delete(table).where(c.name == k)
        self.delete_value = sa.delete(table).where(value)
        matches = sa.and_(value, live, c.value == sa.bindparam("want", type_=c.value.type))
        matches = sa.and_(matches, c.counter.is_(None))
        #: pop: DELETE ... RETURNING, or (no RETURNING) a row lock, then :attr:`delete_value`.
        self.pop = sa.delete(table).where(value, live).returning(c.value, c.counter)
        self.pop_expected = sa.delete(table).where(matches).returning(c.value, c.counter)
        self.lock = sa.select(c.value, c.counter).where(value, live).with_for_update()
        self.lock_expected = sa.select(c.value, c.counter).where(matches).with_for_update()
        count = sa.case((over, 1), else_=sa.func.coalesce(c.counter, 0) + 1)
        changes = [
            ("counter", count),
            ("value", b""),
            ("expires", sa.case((over, exp), else_=c.expires)),
        ]
        hit = upsert(1, changes, value=b"", expires=exp)
        #: One row of hits; MySQL reads the counts back with :meth:`counts`.
        self.hit = hit if mysql_family else hit.returning(c.name, c.counter, c.expires)
        self._table = table
        self._family = family
        #: Statements over a number of names, by (kind, number): see :meth:`_kept`.
        self._by_count: dict[tuple[str, int], Any] = {}
        lower = sa.case((sa.func.coalesce(c.counter, 0) > 0, c.counter - 1), else_=0)
        self.undo_hit = sa.update(table).where(value, live).values(counter=lower)
        self.drop_expired_items = sa.delete(table).where(items, expired)
        self.top_item = sa.select(sa.func.max(c.item)).where(items)
        item = sa.bindparam("item", type_=sa.BigInteger)
        self.insert_item = sa.insert(table).values(
            name=k, item=item, value=v, counter=None, expires=exp
        )
        self.touch_items = sa.update(table).where(items).values(expires=exp)
        self.trim_items = sa.delete(table).where(items, c.item <= sa.bindparam("low"))
        self.items = sa.select(c.value).where(items, live).order_by(c.item.desc())
        self.purge = sa.delete(table).where(expired)
        self.size = sa.select(sa.func.count()).select_from(table)

    def _kept(self, kind: str, names: int, build: Callable[[], Any]) -> Any:
        """The statement of ``kind`` for ``names`` names, built once by ``build`` (one plain
        parameter a name, so each compiles once)."""
        stmt = self._by_count.get((kind, names))
        if stmt is None:
            stmt = self._by_count[(kind, names)] = build()
        return stmt

    def _names(self, names: int) -> list[Any]:
        return [sa.bindparam(f"n{i}", type_=self._table.c.name.type) for i in range(names)]

    def counts(self, names: int) -> Any:
        """The counters named ``n0`` ... (``names`` of them)."""
        c = self._table.c
        return self._kept(
            "counts",
            names,
            lambda: sa.select(c.name, c.counter, c.expires).where(
                c.name.in_(self._names(names)), c.item == 0
            ),
        )

    def hits(self, names: int) -> Any:
        """PostgreSQL: one UPSERT of ``names`` counter rows (``k0``/``exp0``, ...), each
        counted as :attr:`hit` counts one, ``RETURNING`` every row. Rows are locked in the
        order given (callers sort them)."""
        return self._kept("hits", names, lambda: self._multi_hit(names))

    def _multi_hit(self, names: int) -> Any:
        c = self._table.c
        rows = [
            {"name": sa.bindparam(f"k{i}", type_=c.name.type), "item": 0, "counter": 1}
            | {"value": b"", "expires": sa.bindparam(f"exp{i}", type_=sa.Double)}
            for i in range(names)
        ]
        stmt = insert(self._family, self._table).values(rows)
        over = sa.or_(c.expires.is_(None), c.expires <= sa.bindparam("now", type_=sa.Double))
        count = sa.case((over, 1), else_=sa.func.coalesce(c.counter, 0) + 1)
        until = sa.case((over, stmt.excluded.expires), else_=c.expires)
        return stmt.on_conflict_do_update(
            index_elements=[c.name, c.item],
            set_={"counter": count, "value": b"", "expires": until},
        ).returning(c.name, c.counter, c.expires)

    def gets(self, names: int) -> Any:
        """The live values of ``n0`` ... (``names`` of them), with their names."""
        c = self._table.c
        live = sa.or_(c.expires.is_(None), c.expires > sa.bindparam("now", type_=sa.Double))
        return self._kept(
            "gets",
            names,
            lambda: sa.select(c.name, c.value, c.counter).where(
                sa.and_(c.name.in_(self._names(names)), c.item == 0, live)
            ),
        )

    def deletes(self, names: int) -> Any:
        """Delete ``n0`` ... (``names`` of them), values and lists."""
        c = self._table.c
        return self._kept(
            "deletes",
            names,
            lambda: sa.delete(self._table).where(c.name.in_(self._names(names))),
        )


def name_params(names: Sequence[bytes]) -> dict[str, Any]:
    """The parameters ``n0``, ``n1``, ... of :meth:`Statements.counts`, :meth:`~Statements.gets`
    and :meth:`~Statements.deletes` for the stored ``names``."""
    return {f"n{i}": name for i, name in enumerate(names)}
