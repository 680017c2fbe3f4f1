"""Commands to one Redis server over connections the store keeps itself.

redis-py's ``Pipeline`` and its pool's ``get_connection``/``release`` cost the store about
100 µs of CPU per round trip (a lock, checks that a connection has no unread data, command
callbacks), more than the round trip on loopback. With one server (no Cluster, no Sentinel)
the store takes connections made by the client's own pool (its host, credentials, TLS,
timeouts and decoding), keeps the idle ones in a list, writes each batch of commands in one
send and reads every reply. A connection that failed in any way is closed, never reused, so
an idle one never holds unread data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any


class Wire:
    """Sends batches of commands to the server of ``pool`` (a redis-py ``ConnectionPool``)
    over connections it makes, one round trip a batch."""

    def __init__(self, pool: Any) -> None:
        import redis.exceptions

        self._pool = pool
        self._idle: list[Any] = []
        self._pid = os.getpid()
        self._reply_error = redis.exceptions.ResponseError
        self._broken = redis.exceptions.ConnectionError

    def send(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The replies of ``commands`` (each a command and its arguments) sent together; a
        reply that is an error is a ``ResponseError`` in its place. A connection error is
        tried once more on a new connection (one that broke in a Redis restart, as the
        client's own ``Retry``); a timeout is not (the commands may have run)."""
        try:
            return self._over(self._take(), commands)
        except self._broken:
            return self._over(self._new(), commands)

    def _new(self) -> Any:
        """A connection as the pool makes them (not counted against its ``max_connections``,
        which it never gets back: the store keeps at most one per thread at work)."""
        return self._pool.connection_class(**self._pool.connection_kwargs)

    def _take(self) -> Any:
        if os.getpid() != self._pid:  # forked: the parent's sockets are not this process's
            self._idle = []
            self._pid = os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            return self._new()

    def _over(self, conn: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
        replies: list[Any] = []
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except self._reply_error as exc:  # read whole: the connection stays good
                    replies.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        self._idle.append(conn)
        return replies

    def close(self) -> None:
        """Close the idle connections (new ones are made on the next batch)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.disconnect()
