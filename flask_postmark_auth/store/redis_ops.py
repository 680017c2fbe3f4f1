"""How each operation of the Redis store calls its script (:mod:`.redis_lua`) and reads
the reply: the arguments, and the answer, of a script run alone or in a batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .base import Member

#: One operation of a batch as ``(script, keys, args, read)``: ``read`` turns the script's
#: reply into the operation's answer.
Plan = tuple[str, list[str], list[Any], Callable[[Any], Any]]


def plan(
    op: tuple[Any, ...],
    now: float,
    key: Callable[[str], str],
    list_key: Callable[[str], str],
    first: Callable[[float, Sequence[str]], str],
) -> Plan:
    """``op`` of :meth:`~.base.Store.many` (a name of :data:`~.base.BATCHED` and its
    arguments) as a :data:`Plan`; ``key`` and ``list_key`` give the Redis keys of a name,
    ``first`` a script's first argument (``now`` and the fields of members)."""
    name, target, rest = op[0], op[1], op[2:]
    if name == "hits":  # one script over every key (one server; a cluster goes one by one)
        names = [k for k, _ in target]
        expiries = [repr(now + window) for _, window in target]
        keys = [key(k) for k in names]
        return "hits", keys, [first(now, names), *expiries], lambda reply: counts(reply, now)
    at = first(now, [target])
    grouped = isinstance(target, Member)
    if name in ("set", "add"):
        if grouped and rest[1] is None:
            raise ValueError(f"a member must expire: {target!r} was given ttl=None")
        read: Callable[[Any], Any] = bool if name == "add" else nothing
        return name, [key(target)], [at, rest[0], expiry(now, rest[1])], read
    if name in ("get", "undo_hit"):
        return name, [key(target)], [at], maybe_text if name == "get" else nothing
    if name == "delete":
        return name, [key(target)] if grouped else [key(target), list_key(target)], [at], nothing
    if name == "pop":
        expected = rest[0] if rest else None
        flag, compare = ("0", "") if expected is None else ("1", expected)
        return name, [key(target)], [at, flag, compare], maybe_text
    raise ValueError(f"not a batched operation: {name!r}")


def expiry(now: float, ttl: float | None) -> str:
    """The logical expiry sent to a script: ``''`` for never."""
    return "" if ttl is None else repr(now + ttl)


def nothing(reply: object) -> None:
    """The answer of an operation that answers nothing."""


def maybe_text(reply: object) -> str | None:
    """A reply as ``str``, ``None`` staying ``None``."""
    return None if reply is None else text(reply)


def counts(replies: Sequence[Any], now: float) -> list[tuple[int, float]]:
    """``(count, seconds_until_reset)`` from the hits script's ``[count, expiry]`` pairs."""
    return [(int(text(count)), float(text(expires)) - now) for count, expires in replies]


def text(value: object) -> str:
    """A reply as ``str`` (an injected client may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)
