"""A Redis server for the tests: the one answering on 127.0.0.1:6379, or a throwaway
``redis-server`` started on a free loopback port (no persistence) and stopped at session end.

Keys get a random per-run prefix (:data:`RUN_PREFIX`) and are deleted afterwards; with no Redis
at all the tests are skipped, or fail when the environment variable ``CI`` is ``"true"``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import NoReturn
from urllib.parse import quote

import pytest

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6379
RUN_PREFIX = f"postmark_auth_test:{uuid.uuid4().hex[:12]}:"


class RedisUnavailableError(RuntimeError):
    """No Redis answers and none could be started."""


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis answers PING (without a password) at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((DEFAULT_HOST, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` subprocess on a loopback port; ``start`` and ``stop`` may repeat
    (same port), so a test can take the server away from a client and bring it back."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{DEFAULT_HOST}:{self.port}/0"

    def start(self, timeout: float = 5.0) -> None:
        """Start the server and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailableError("redis-server is not on PATH")
        argv = [binary, "--port", str(self.port), "--bind", DEFAULT_HOST]
        argv += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ping(DEFAULT_HOST, self.port, timeout=0.2):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RedisUnavailableError(f"redis-server did not come up on port {self.port}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def find_or_start() -> tuple[str, RedisServer | None]:
    """The URL of a Redis to use, and the server started for it (``None`` when an existing
    one on 127.0.0.1:6379 answered); raises :class:`RedisUnavailableError`."""
    if ping(DEFAULT_HOST, DEFAULT_PORT):
        return f"redis://{DEFAULT_HOST}:{DEFAULT_PORT}/0", None
    error = RedisUnavailableError("redis-server could not be started")
    for _ in range(3):  # a free port can be taken between choosing and binding it
        server = RedisServer()
        try:
            server.start()
        except RedisUnavailableError as exc:
            error = exc
            if shutil.which("redis-server") is None:
                break
            continue
        return server.url, server
    raise RedisUnavailableError(f"none answers on {DEFAULT_HOST}:{DEFAULT_PORT} and {error}")


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (CI=true), where Redis tests must run; skip elsewhere."""
    message = f"Redis tests need a server: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def unique_prefix() -> str:
    """A key prefix of this run no other test shares."""
    return f"{RUN_PREFIX}{uuid.uuid4().hex[:8]}:"


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key starting with ``prefix`` (found by SCAN)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


_session: dict[str, str | None] = {}


def server_url(config: pytest.Config) -> str:
    """The session's Redis URL (no prefix), found or started on first use; at session end
    this run's keys are deleted and a server started here is stopped. Skips or fails (CI)
    when there is no Redis."""
    if "error" in _session:
        unavailable(str(_session["error"]))
    if "url" not in _session:
        try:
            url, server = find_or_start()
        except RedisUnavailableError as exc:
            _session["error"] = str(exc)
            unavailable(str(exc))
        _session["url"] = url

        def finish() -> None:
            _session.clear()
            try:
                delete_prefix(url, RUN_PREFIX)
            finally:
                if server is not None:
                    server.stop()

        config.add_cleanup(finish)
    return str(_session["url"])


def redis_store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """For a fixture: a store URI for :func:`~flask_postmark_auth.store.open_store` on the
    session's Redis with a prefix of its own (``?prefix=``), whose keys go afterwards."""
    url = server_url(request.config)
    prefix = unique_prefix()
    try:
        yield f"{url}?prefix={quote(prefix, safe='')}"
    finally:
        delete_prefix(url, prefix)
