"""The Redis store's key names, and the move of keys from the layout before hash tags.

A name's value lives under ``<prefix>{<name>}:k`` and its list under ``<prefix>{<name>}:l``
(the members of a group, :func:`.base.member`, in the hash ``<prefix>{<group>}:g``):
the braces are a cluster hash tag, so both keys of one name share a slot. In the tag ``%``,
``{`` and ``}`` are written ``%25``, ``%7B`` and ``%7D``, and the empty name ``%``: the tag
is never empty and two names never share a key.

Earlier releases used ``<prefix>k:<name>`` and ``<prefix>l:<name>`` on one server. Most of
those keys expire within a day, but built-in users never do: :func:`migrate` renames what it
finds, once per prefix (a marker key ``<prefix>layout`` records it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})
#: The value of ``<prefix>layout`` once keys of the earlier layout were moved.
LAYOUT = "hash-tagged"
#: Seconds one process may take to move the keys before another may start again.
MIGRATION_LEASE = 300

# KEYS: pairs of (old key, new key); moves each old key unless the new one exists already.
_MOVE = """
local moved = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('EXISTS', KEYS[i + 1]) == 1 then
      redis.call('DEL', KEYS[i])
    else
      redis.call('RENAME', KEYS[i], KEYS[i + 1])
      moved = moved + 1
    end
  end
end
return moved
"""


def tag(name: str) -> str:
    """The hash tag of ``name``, braces included."""
    return f"{{{name.translate(_ESCAPES) or '%'}}}"


def pattern(prefix: str) -> str:
    """A SCAN pattern matching the value, list and group keys under ``prefix``, nothing
    else."""
    return _glob(prefix) + "{*}:[klg]"


def _glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def migrate(client: Any, prefix: str) -> int:
    """Rename the keys of the earlier layout under ``prefix`` (one server, or a Sentinel's
    master: never a cluster, where the earlier layout could not work); returns how many
    moved. Does nothing once ``<prefix>layout`` says it was done, or while another process
    holds the lease to do it."""
    marker = f"{prefix}layout"
    done = client.get(marker)
    if (done.decode() if isinstance(done, bytes) else done) == LAYOUT:
        return 0
    if not client.set(marker, "moving", nx=True, ex=MIGRATION_LEASE):
        return 0
    moved = 0
    found = client.scan_iter(match=_glob(prefix) + "[kl]:*", count=1000)
    olds = (old.decode() if isinstance(old, bytes) else str(old) for old in found)
    for batch in batches(olds, 500):  # each old key and its new name: 1,000 keys an EVAL
        pairs = [key for old in batch for key in (old, _renamed(prefix, old))]
        moved += int(client.eval(_MOVE, len(pairs), *pairs))
    client.set(marker, LAYOUT)
    return moved


def _renamed(prefix: str, old: str) -> str:
    """The hash-tagged key of ``old``, a key ``<prefix><k|l>:<name>`` of the earlier layout."""
    name, kind = old[len(prefix) + 2 :], old[len(prefix)]
    return f"{prefix}{tag(name)}:{kind}"


def batches(names: Iterable[str], size: int) -> Iterator[list[str]]:
    """``names`` in lists of ``size`` (the last one shorter)."""
    batch: list[str] = []
    for name in names:
        batch.append(name)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
