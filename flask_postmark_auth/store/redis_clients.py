"""How the Redis store reaches Redis: the URI forms (one server, a Redis Cluster, Sentinel),
the redis-py client each one makes, and how a failure is told apart: a set-up that can never
work (wrong kind of server, refused credentials, unknown Sentinel service) from an outage.

``redis://`` / ``rediss://`` / ``unix://`` (``valkey://`` and ``valkeys://`` too) are
redis-py URLs; ``redis+cluster://[user:password@]host:port[,host:port...]`` names startup
nodes of a cluster; ``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB]``
names Sentinels and the service they watch (the credentials are the data nodes'; the query
options ``sentinel_username`` and ``sentinel_password`` are the Sentinels'). ``rediss+``
uses TLS. Other query options go to redis-py's connections, as in its URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

#: Every scheme the Redis store takes.
SCHEMES = frozenset(
    {"unix"}
    | {
        f"{base}{mode}"
        for base in ("redis", "rediss", "valkey", "valkeys")
        for mode in ("", "+cluster", "+sentinel")
    }
)
#: Ports assumed when a node names none.
DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}
#: Sentinel mode: milliseconds a write waits for its replica's acknowledgement.
ACK_TIMEOUT_MS = 100


@dataclass(frozen=True)
class RedisTarget:
    """Where the store's Redis is: ``kind`` is ``"server"`` (``url`` is a redis-py URL),
    ``"cluster"`` or ``"sentinel"`` (``nodes`` and, for Sentinel, ``service``); ``options``
    are connection keywords from the URI, ``sentinel_options`` the Sentinels' own."""

    kind: str
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    sentinel_options: dict[str, Any] = field(default_factory=dict)
    #: Sentinel mode: replicas that must acknowledge a write before it counts (0: none).
    replica_acks: int = 0

    def describe(self) -> str:
        """The target for a message, without credentials."""
        if self.kind == "server":
            return _without_password(self.url)
        hosts = ",".join(f"{h}:{p}" for h, p in self.nodes)
        return (
            f"Redis Cluster {hosts}"
            if self.kind == "cluster"
            else (f"Sentinel service {self.service!r} at {hosts}")
        )


def parse(uri: str) -> RedisTarget:
    """The :class:`RedisTarget` a store URI names (without ``?prefix=``, which is the
    store's); :class:`ValueError` says what is wrong with a malformed one."""
    shown = _without_password(uri)  # for messages
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"{shown!r} is not a Redis URI (schemes: {', '.join(sorted(SCHEMES))})")
    base, _, mode = scheme.partition("+")
    tls = base in ("rediss", "valkeys")
    if not mode:
        native = {"valkey": "redis", "valkeys": "rediss"}.get(base, base)
        return RedisTarget("server", f"{native}://{rest}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    nodes = tuple(_node(part, DEFAULT_PORTS[mode], shown) for part in hosts.split(","))
    pairs = parse_qsl(query, keep_blank_values=True)
    ours = {name: value for name, value in pairs if name.startswith("sentinel_")}
    ours.update((name, value) for name, value in pairs if name == "replica_acks")
    options = _options(userinfo, [(n, v) for n, v in pairs if n not in ours])
    if tls:
        options["ssl"] = True
    if mode == "cluster":
        extra = set(ours)
        if extra:
            raise ValueError(f"{shown!r}: {', '.join(sorted(extra))} is for Sentinel URIs only")
        if path.strip("/") not in ("", "0") or options.pop("db", 0) != 0:
            raise ValueError(f"{shown!r}: a Redis Cluster has database 0 only; drop the /DB")
        return RedisTarget("cluster", uri, nodes, options=options)
    service, _, db = path.partition("/")
    if not service:
        raise ValueError(
            f"{shown!r} names no service: use redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]"
        )
    if db.strip("/"):
        if not db.strip("/").isdigit():
            raise ValueError(f"{shown!r}: the database after the service must be a number")
        options["db"] = int(db.strip("/"))
    acks = ours.pop("replica_acks", "1")
    if not acks.isdigit():
        raise ValueError(f"{shown!r}: replica_acks must be a whole number (0 turns it off)")
    unknown = set(ours) - {"sentinel_username", "sentinel_password"}
    if unknown:
        raise ValueError(f"{shown!r}: unknown option {', '.join(sorted(unknown))}")
    sentinel_options: dict[str, Any] = {
        name[len("sentinel_") :]: value for name, value in ours.items()
    }
    if tls:
        sentinel_options["ssl"] = True
    return RedisTarget(
        "sentinel", uri, nodes, unquote(service), options, sentinel_options, int(acks)
    )


def _node(text: str, default_port: int, uri: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6 address]:port``."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or not (port.isdigit() or port == "") or not 0 < int(port or default_port) < 65536:
        raise ValueError(f"{uri!r}: {text!r} is not HOST:PORT")
    return unquote(host), int(port or default_port)


def _options(userinfo: str, query: list[tuple[str, str]]) -> dict[str, Any]:
    """Connection keywords from the user info and query, typed as redis-py types its URLs'."""
    from redis import connection

    parse_url: Callable[[str], dict[str, Any]] = connection.parse_url
    auth = f"{userinfo}@" if userinfo else ""
    options: dict[str, Any] = parse_url(f"redis://{auth}localhost/?{urlencode(query)}")
    options.pop("host", None)
    return options


def _without_password(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.partition(':')[0]}:***@{tail}" if ":" in user else url


def connect(target: RedisTarget, socket_timeout: float = 2.0) -> Any:
    """A redis-py client for ``target``, decoding replies to ``str``: a ``Redis``, a
    ``RedisCluster`` (which reaches its nodes at once, so this may raise) or a master
    client of a ``Sentinel`` (which asks the Sentinels on each new connection)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    common: dict[str, Any] = {**timeouts, "decode_responses": True}
    # One quick retry, on connection errors only: it replaces a connection a restart (or a
    # failover) broke, without doubling a script that merely timed out. (No health-check
    # pings: the retry does their work, and with them redis-py before 6.0 recurses without
    # end on a server that wants a password it was not given.)
    retry = Retry(
        ExponentialBackoff(cap=0.1, base=0.02),
        retries=1,
        supported_errors=(redis.exceptions.ConnectionError,),
    )
    if target.kind == "server":
        return redis.Redis.from_url(target.url, retry=retry, **common)
    if target.kind == "cluster":
        from redis import cluster

        node: Callable[[str, int], Any] = cluster.ClusterNode
        nodes = [node(host, port) for host, port in target.nodes]
        options = {**common, **target.options}
        return cluster.RedisCluster(startup_nodes=nodes, retry=retry, **options)
    from redis import sentinel

    manager: Callable[..., Any] = sentinel.Sentinel
    own = {**timeouts, "retry": retry, **target.sentinel_options}
    sentinels = manager(list(target.nodes), sentinel_kwargs=own)
    return sentinels.master_for(target.service, retry=retry, **{**common, **target.options})


def misconfiguration(exc: BaseException) -> str | None:
    """Why ``exc`` shows a set-up that cannot work, or ``None`` for an outage (nothing
    listening, timing out, loading, a cluster down or resharding, a failover under way)."""
    from redis import exceptions as errors

    if isinstance(exc, (errors.AuthenticationError, errors.AuthenticationWrongNumberOfArgsError)):
        return f"the server refused the credentials ({exc})"
    if isinstance(exc, (getattr(errors, "AuthorizationError", ()), errors.NoPermissionError)):
        return f"the user may not run what the store needs ({exc})"
    if isinstance(exc, errors.RedisClusterException):
        cause = exc.__cause__ or exc.__context__
        if "not enabled" in str(exc):
            return "it is not a Redis Cluster node: use redis:// (or rediss://)"
        return misconfiguration(cause) if cause is not None else None
    cross_slot = isinstance(exc, errors.ResponseError) and str(exc).startswith("CROSSSLOT")
    if cross_slot or isinstance(exc, (errors.MovedError, errors.ClusterCrossSlotError)):
        return (
            f"the server acts as a Redis Cluster ({exc}): use "
            "redis+cluster://HOST:PORT[,HOST:PORT...]"
        )
    outage = (
        errors.ConnectionError,
        errors.TimeoutError,
        errors.ClusterError,
        errors.TryAgainError,
        errors.ReadOnlyError,
        errors.OutOfMemoryError,
    )
    if isinstance(exc, outage):
        return None
    if isinstance(exc, errors.ResponseError):
        return f"the server refused a command ({exc})"
    return None


def server_mode(client: Any) -> str:
    """``standalone``, ``cluster`` or ``sentinel``, as the server's ``INFO server`` says."""
    info = client.info("server")
    return str(info.get("redis_mode") or info.get("server_mode") or "standalone")


def check_sentinels(target: RedisTarget, client: Any) -> bool:
    """Ask every Sentinel about the service: raise :class:`ValueError` when one that
    answers is no Sentinel, or when none of those that answer knows the service; False when
    none answers (an outage), True when one knows it."""
    from redis import exceptions as errors

    manager = client.connection_pool.sentinel_manager
    answered, watched = False, set()
    for sentinel in manager.sentinels:
        try:
            masters = sentinel.sentinel_masters()
        except errors.ResponseError as exc:
            reason = misconfiguration(exc) or str(exc)
            where = "{host}:{port}".format_map(sentinel.connection_pool.connection_kwargs)
            raise ValueError(f"{where} did not answer as a Sentinel: {reason}") from exc
        except errors.ConnectionError as exc:
            if isinstance(exc, errors.AuthenticationError):
                raise ValueError(f"a Sentinel refused the credentials ({exc})") from exc
            continue
        except errors.TimeoutError:
            continue
        answered = True
        if target.service in masters:
            return True
        watched.update(masters)
    if not answered:
        return False
    names = ", ".join(sorted(watched)) or "none"
    raise ValueError(
        f"no Sentinel at {','.join(f'{h}:{p}' for h, p in target.nodes)} watches a service "
        f"named {target.service!r} (they watch: {names})"
    )


def failover_suspected(target: RedisTarget, client: Any) -> bool:
    """After a write no replica acknowledged: True unless a Sentinel says that the server
    written to is still the master and no failover is under way (then only the replica is
    down or slow, and the write stands)."""
    from redis import exceptions as errors

    pool = client.connection_pool
    current = pool.master_address
    if current is None:
        return True
    answered = False
    for sentinel in pool.sentinel_manager.sentinels:
        try:
            state = sentinel.sentinel_master(target.service)
        except (errors.ConnectionError, errors.TimeoutError, errors.ResponseError):
            continue
        answered = True
        moved = (str(state["ip"]), int(state["port"])) != (str(current[0]), int(current[1]))
        if moved or "failover_in_progress" in str(state.get("flags", "")):
            return True
    return not answered  # with no Sentinel answering, nothing says this is still the master


def evalsha_together(client: Any, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
    """Cluster only: send ``EVALSHA sha len(keys) *keys *args`` for each ``(sha, [keys, args])``
    of ``calls`` to the primary of its (single) slot, all before reading any answer: scripts
    of several slots in one round trip. Returns each reply, or the error it answered
    (``None`` when none could be read). The caller runs those again the ordinary way (which
    follows MOVED, loads scripts, reconnects); a reply lost after its script ran then counts
    twice, which only errs on the safe side for a throttle."""
    from redis.exceptions import ResponseError

    sent: list[tuple[Any, Any]] = []
    replies: list[Any] = [None] * len(calls)
    try:
        for sha, (keys, args) in calls:
            node = client.nodes_manager.get_node_from_slot(slot(keys[0]))
            redis_node = node.redis_connection or client.get_redis_connection(node)
            connection = _connection(redis_node.connection_pool)
            sent.append((redis_node, connection))
            connection.send_command("EVALSHA", sha, len(keys), *keys, *args)
        for i, (redis_node, connection) in enumerate(sent):
            try:
                replies[i] = redis_node.parse_response(connection, "EVALSHA")
            except ResponseError as exc:  # MOVED, NOSCRIPT, TRYAGAIN...: it did not run
                replies[i] = exc
    except Exception:  # a broken connection: the rest go the ordinary way
        for _, connection in sent:
            connection.disconnect()
    finally:
        for redis_node, connection in sent:
            redis_node.connection_pool.release(connection)
    return replies


def _connection(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        return pool.get_connection("EVALSHA")


def slot(key: str) -> int:
    """The cluster hash slot of ``key`` (its hash tag's)."""
    from redis.crc import key_slot

    return int(key_slot(key.encode()))
