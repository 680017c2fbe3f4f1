"""Redis for the tests: the server answering on 127.0.0.1:6379 or a throwaway ``redis-server``
on a free loopback port (no persistence); a three-master Redis Cluster; a Sentinel set-up (a
master, a replica and Sentinels) that can fail over. Each is started once per test session, on
first use, and stopped at its end.

Keys get a random per-run prefix (:data:`RUN_PREFIX`) and are deleted afterwards; with no Redis
at all the tests are skipped, or fail when the environment variable ``CI`` is ``"true"``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import pytest

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6379
RUN_PREFIX = f"postmark_auth_test:{uuid.uuid4().hex[:12]}:"
#: The Sentinel service name of :class:`SentinelServers`.
SERVICE = "pmauth"


class RedisUnavailableError(RuntimeError):
    """No Redis answers and none could be started."""


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis answers PING (without a password) at ``host:port``."""
    return _reply(host, port, timeout).startswith(b"+PONG")


def _reply(host: str, port: int, timeout: float) -> bytes:
    """The first bytes a server at ``host:port`` answers to PING (empty when none answers)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError:
        return b""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((DEFAULT_HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((DEFAULT_HOST, port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (the port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 <= 65535 and _port_is_free(port + 10000):
            return port
    raise RedisUnavailableError("found no free port pair for a cluster node")


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailableError("redis-server is not on PATH")
    return binary


class RedisServer:
    """A ``redis-server`` subprocess on a loopback port; ``start`` and ``stop`` may repeat
    (same port), so a test can take the server away from a client and bring it back.

    ``args`` are more command-line options (``["--requirepass", "pw"]``); ``config`` a
    configuration file given first; ``sentinel`` runs it as a Sentinel (``config`` is then
    required, and rewritten by the Sentinel); ``log`` a file for the server's log (else it is
    discarded).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        args: Sequence[str] = (),
        config: Path | None = None,
        sentinel: bool = False,
        log: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.args = list(args)
        self.config = config
        self.sentinel = sentinel
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{DEFAULT_HOST}:{self.port}/0"

    def command(self) -> list[str]:
        """The server's command line."""
        argv = [_binary()] + ([str(self.config)] if self.config else [])
        if self.sentinel:
            argv.append("--sentinel")
        argv += ["--port", str(self.port), "--bind", DEFAULT_HOST]
        if not self.sentinel:
            argv += ["--save", "", "--appendonly", "no"]
        if self.log is not None:
            argv += ["--logfile", str(self.log)]
        return argv + self.args

    def start(self, timeout: float = 5.0) -> None:
        """Start the server and wait until it answers PING (a password-protected one
        answers NOAUTH, which counts)."""
        argv = self.command()
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _reply(DEFAULT_HOST, self.port, 0.2).startswith((b"+PONG", b"-NOAUTH")):
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


def _client(port: int, timeout: float = 2.0) -> Any:
    import redis

    return redis.Redis(DEFAULT_HOST, port, socket_timeout=timeout, decode_responses=True)


def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
    """Poll ``ready`` (errors count as not yet) until true; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:
            if time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            raise RedisUnavailableError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Group:
    """Servers started and stopped together, with their files in a temporary folder."""

    def __init__(self, kind: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"pmauth-{kind}-"))
        self.servers: list[RedisServer] = []

    def stop(self) -> None:
        """Stop every server and remove the folder."""
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _start(self, server: RedisServer) -> RedisServer:
        self.servers.append(server)
        server.start(timeout=10)
        return server


class ClusterServers(_Group):
    """A Redis Cluster of ``masters`` cluster-enabled ``redis-server`` masters (no replicas)
    on loopback, joined with ``redis-cli --cluster create``."""

    def __init__(self, masters: int = 3) -> None:
        super().__init__("cluster")
        self.ports = [cluster_port() for _ in range(masters)]

    @property
    def url(self) -> str:
        """The store URI naming every node (no prefix)."""
        return "redis+cluster://" + ",".join(f"{DEFAULT_HOST}:{p}" for p in self.ports)

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, create the cluster and wait until every node says it is ok."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RedisUnavailableError("redis-cli is not on PATH")
        try:
            for port in self.ports:
                args = ["--cluster-enabled", "yes", "--dir", str(self.folder)]
                args += ["--cluster-config-file", f"nodes-{port}.conf"]
                args += ["--cluster-node-timeout", "2000"]
                log = self.folder / f"node-{port}.log"
                self._start(RedisServer(port, args=args, log=log))
            create = [cli, "--cluster", "create"] + [f"{DEFAULT_HOST}:{p}" for p in self.ports]
            create += ["--cluster-replicas", "0", "--cluster-yes"]
            done = subprocess.run(create, capture_output=True, timeout=timeout, check=False)
            if done.returncode != 0:
                output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
                raise RedisUnavailableError(f"redis-cli --cluster create failed: {output}")
            for port in self.ports:
                _wait(f"cluster node {port}", functools.partial(self._ok, port), timeout)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _ok(port: int) -> bool:
        client = _client(port)
        try:
            return bool(client.cluster("info")["cluster_state"] == "ok")
        finally:
            client.close()


class SentinelServers(_Group):
    """A master, one replica and ``sentinels`` Sentinels watching them as :data:`SERVICE`
    (quorum: a majority), with :meth:`failover` to promote the replica."""

    def __init__(self, sentinels: int = 2) -> None:
        super().__init__("sentinel")
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]

    @property
    def url(self) -> str:
        """The store URI naming every Sentinel (no prefix)."""
        hosts = ",".join(f"{DEFAULT_HOST}:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self, timeout: float = 30.0) -> None:
        """Start master, replica and Sentinels; wait until every Sentinel sees the replica
        and the other Sentinels, so a failover can start at once."""
        master, replica = self.data_ports
        try:
            # A replica's full sync writes an RDB file: in the set-up's folder, not the cwd.
            here = ["--dir", str(self.folder)]
            self._start(RedisServer(master, args=here, log=self.folder / f"redis-{master}.log"))
            args = [*here, "--replicaof", DEFAULT_HOST, str(master)]
            self._start(RedisServer(replica, args=args, log=self.folder / f"redis-{replica}.log"))
            quorum = len(self.sentinel_ports) // 2 + 1
            for port in self.sentinel_ports:
                config = self.folder / f"sentinel-{port}.conf"
                config.write_text(
                    f"dir {self.folder}\n"
                    f"sentinel monitor {SERVICE} {DEFAULT_HOST} {master} {quorum}\n"
                    f"sentinel down-after-milliseconds {SERVICE} 2000\n"
                    f"sentinel failover-timeout {SERVICE} 10000\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n"
                )
                log = self.folder / f"sentinel-{port}.log"
                self._start(RedisServer(port, config=config, sentinel=True, log=log))
                _speed_up(port)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def master_port(self) -> int:
        """The port of the master, as the first Sentinel names it."""
        client = _client(self.sentinel_ports[0])
        try:
            return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])
        finally:
            client.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the master has its replica in sync and every Sentinel knows both, each
        other, and no failover is under way."""

        def ready() -> bool:
            master = self.master_port()
            [replica] = [p for p in self.data_ports if p != master]
            client = _client(replica)
            try:
                info = client.info("replication")
            finally:
                client.close()
            if info.get("master_port") != master or info.get("master_link_status") != "up":
                return False
            others = len(self.sentinel_ports) - 1
            for port in self.sentinel_ports:
                sentinel = _client(port)
                try:
                    state = sentinel.sentinel_master(SERVICE)
                    replicas = sentinel.sentinel_slaves(SERVICE)
                finally:
                    sentinel.close()
                good = [
                    r
                    for r in replicas
                    if r["port"] == replica
                    and r["flags"] == "slave"
                    and r.get("master-link-status") == "ok"
                ]
                if (
                    state["port"] != master
                    or state["flags"] != "master"
                    or state["num-other-sentinels"] < others
                    or not good
                ):
                    return False
            return True

        _wait("the Sentinel set-up to be ready", ready, timeout)

    @contextlib.contextmanager
    def replica_down(self) -> Iterator[None]:
        """The replica stopped for the block, then started again as the master's replica
        (and :meth:`wait_ready`)."""
        master = self.master_port()
        [replica] = [s for s in self.servers if s.port in self.data_ports and s.port != master]
        replica.stop()
        try:
            yield
        finally:
            replica.args = ["--dir", str(self.folder), "--replicaof", DEFAULT_HOST, str(master)]
            replica.start(timeout=10)
            self.wait_ready()

    def failover(self, timeout: float = 30.0) -> int:
        """Promote the replica (``SENTINEL FAILOVER``) and return its port once every
        Sentinel names it and it acts as master (the old master may still be turning into its
        replica: :meth:`wait_ready` waits for that)."""
        self.wait_ready(timeout)
        old = self.master_port()
        [new] = [p for p in self.data_ports if p != old]
        sentinel = _client(self.sentinel_ports[0])
        try:
            sentinel.sentinel_failover(SERVICE)
        finally:
            sentinel.close()

        def promoted() -> bool:
            for port in self.sentinel_ports:
                client = _client(port)
                try:
                    if int(client.sentinel_get_master_addr_by_name(SERVICE)[1]) != new:
                        return False
                finally:
                    client.close()
            client = _client(new)
            try:
                return bool(client.info("replication")["role"] == "master")
            finally:
                client.close()

        _wait(f"port {new} to be promoted", promoted, timeout)
        return new


def _speed_up(port: int) -> None:
    """Shorter Sentinel timers (``SENTINEL DEBUG``, Redis 7+; older Sentinels keep theirs):
    INFO every second and hello messages twice a second, so a demoted master turns replica
    in about two seconds instead of ten."""
    client = _client(port)
    try:
        client.execute_command("SENTINEL", "DEBUG", "info-period", 1000, "publish-period", 500)
    except Exception as exc:  # an older Sentinel: slower, still correct
        print(f"Sentinel on port {port} keeps its default timers: {exc}")
    finally:
        client.close()


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
    """Delete every key starting with ``prefix`` (found by SCAN) from the Redis, Cluster or
    Sentinel master that the store URI ``url`` names."""
    from flask_postmark_auth.store import redis_clients

    client = redis_clients.connect(redis_clients.parse(url), socket_timeout=5)
    try:
        pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])  # a cluster client splits it by slot
    finally:
        client.close()


_session: dict[str, Any] = {}
_Started = TypeVar("_Started", ClusterServers, SentinelServers)


def _once(config: pytest.Config, name: str, make: Callable[[], _Started]) -> _Started:
    """The session's ``name`` set-up, started on first use and stopped at session end;
    skips or fails (CI) when it cannot be started."""
    if f"{name}-error" in _session:
        unavailable(str(_session[f"{name}-error"]))
    if name not in _session:
        servers = make()
        try:
            servers.start()
        except RedisUnavailableError as exc:
            _session[f"{name}-error"] = str(exc)
            unavailable(str(exc))
        _session[name] = servers

        def finish() -> None:
            _session.pop(name, None)
            servers.stop()

        config.add_cleanup(finish)
    started: _Started = _session[name]
    return started


def cluster(config: pytest.Config) -> ClusterServers:
    """The session's three-master Redis Cluster."""
    return _once(config, "cluster", ClusterServers)


def sentinel(config: pytest.Config) -> SentinelServers:
    """The session's Sentinel set-up (master, replica, two Sentinels)."""
    return _once(config, "sentinel", SentinelServers)


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
            _session.pop("url", None)
            try:
                delete_prefix(url, RUN_PREFIX)
            finally:
                if server is not None:
                    server.stop()

        config.add_cleanup(finish)
    return str(_session["url"])


def with_prefix(url: str, prefix: str) -> str:
    """``url`` with ``?prefix=`` (or ``&prefix=``) for ``prefix``."""
    return f"{url}{'&' if '?' in url else '?'}prefix={quote(prefix, safe='')}"


def redis_store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """For a fixture: a store URI for :func:`~flask_postmark_auth.store.open_store` on the
    session's Redis with a prefix of its own (``?prefix=``), whose keys go afterwards."""
    url = server_url(request.config)
    prefix = unique_prefix()
    try:
        yield with_prefix(url, prefix)
    finally:
        delete_prefix(url, prefix)
