"""How the SQL store runs a batch (:meth:`.SQLStore.many`) in as few statements as it can:
its reads in one ``SELECT ... IN``, its deletes in one ``DELETE ... IN``, the rest one
operation at a time, in order.

Gathering changes the order between a batch's operations only for different names (the
names of one batch differ), so no answer changes; a delete still takes its rows' locks in
name order, as the store's other writes do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import sql_schema as schema
from .sql_statements import name_params

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .sql import SQLStore, Work

T = TypeVar("T")
#: One step of a batch: where its answers go (``None``: it answers nothing), and its work.
Step = tuple["list[int] | None", "Work[list[Any]]"]


def work(store: SQLStore, ops: Sequence[tuple[Any, ...]]) -> Work[list[Any]]:
    """The work of the whole batch ``ops``: every step on one connection, the answers in the
    batch's order."""
    steps = plan(store, ops)

    def run(conn: sa.Connection) -> list[Any]:
        answers: list[Any] = [None] * len(ops)
        for places, step in steps:
            found = step(conn)
            if places is not None:
                for place, answer in zip(places, found, strict=True):
                    answers[place] = answer
        return answers

    return run


def plan(store: SQLStore, ops: Sequence[tuple[Any, ...]]) -> list[Step]:
    """The steps of ``ops``: each group of two or more reads or deletes as one step where
    its first operation stands, every other operation a step of its own."""
    gathered = {"get": _gets, "delete": _deletes}
    places: dict[str, list[int]] = {name: [] for name in gathered}
    for place, op in enumerate(ops):
        if op[0] in gathered:
            places[op[0]].append(place)
    steps: list[Step] = []
    for place, op in enumerate(ops):
        group = places.get(op[0])
        if group is not None and len(group) > 1:
            if place == group[0]:
                names = [schema.encode_name(ops[i][1]) for i in group]
                steps.append((None if op[0] == "delete" else group, gathered[op[0]](store, names)))
            continue
        steps.append(([place], _listed(getattr(store, "_w_" + op[0])(*op[1:]))))
    return steps


def _gets(store: SQLStore, names: list[bytes]) -> Work[list[Any]]:
    params = {**name_params(names), "now": store.clock()}
    stmt = store.q.gets(len(names))

    def run(conn: sa.Connection) -> list[Any]:
        found = {bytes(row.name): store._read(row) for row in conn.execute(stmt, params)}
        return [found.get(name) for name in names]

    return run


def _deletes(store: SQLStore, names: list[bytes]) -> Work[list[Any]]:
    params = name_params(names)
    stmt = store.q.deletes(len(names))

    def run(conn: sa.Connection) -> list[Any]:
        conn.execute(stmt, params)
        return []

    return run


def _listed(one: Work[T]) -> Work[list[T]]:
    """``one``'s answer in a list of one."""
    return lambda conn: [one(conn)]
