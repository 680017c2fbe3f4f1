"""The same login cycle for this package on each store backend: memory, SQLite, Redis, and a
Redis Cluster.

Redis is the server answering on 127.0.0.1:6379, if one does; the benchmark never starts
one. Its keys carry a per-run prefix and are deleted afterwards. The cluster (three masters
on loopback, one core's worth of servers beside the benchmark's own process) is started here
from ``redis-server`` when it is on PATH, and stopped afterwards. PostgreSQL and MariaDB are
the machine's servers (found as the suite finds them, never started), each store on a table
of this run, dropped afterwards.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import uuid

from flask_postmark_auth.testing import FakePostmark
from support import sql_servers
from support.redis_server import ClusterServers, RedisUnavailableError

from .apps import package_app, pool
from .common import (
    CPU_NOTE,
    REDIS_HOST,
    REDIS_PORT,
    RunConfig,
    Section,
    alternate,
    ms,
    progress,
    rate,
    rate_cells,
    rate_headers,
    redis_answers,
)
from .cycle import STEPS, CycleRunner

ROUND_SECONDS = 1.0
#: Target: the cycle on a Redis Cluster against one Redis.
CLUSTER_TARGET = 0.9
#: Targets: the cycle on a shared store (Redis, PostgreSQL) against SQLite on one machine.
SHARED_TARGETS = {"redis": 0.85, "postgresql": 0.8}


def run(config: RunConfig) -> Section:
    section = Section("3. Login cycle of this package per store backend")
    section.add(
        "The cycle of benchmark 2 (same settings and driver), one app per store, "
        f"{config.rounds} alternating rounds.",
        "",
    )
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}"
    has_redis = redis_answers()
    cluster: ClusterServers | None = None
    try:
        cluster = ClusterServers()
        cluster.start()
    except RedisUnavailableError as exc:
        section.add(f"redis-cluster: skipped ({exc}).", "")
        cluster = None
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as tmp, FakePostmark() as fake:
        stores = {"memory": "memory://", "sqlite": f"sqlite:///{tmp}/auth.db"}
        if has_redis:
            stores["redis"] = redis_url
        if cluster is not None:
            stores["redis-cluster"] = f"{cluster.url}?prefix={prefix}"
        sql_tables = _add_sql_stores(stores)
        runners = {
            kind: CycleRunner(package_app(fake, uri, name=kind)[0], fake, pool(kind))
            for kind, uri in stores.items()
        }
        try:
            sizes = {
                kind: runner.warm_up(ROUND_SECONDS, 10, config.pick(5000, 300))
                for kind, runner in runners.items()
            }
            spreads = alternate(
                [(kind, functools.partial(r.rate, sizes[kind])) for kind, r in runners.items()],
                config.rounds,
                "stores",
            )
        finally:
            if has_redis:
                _delete_keys(prefix)
            if cluster is not None:
                cluster.stop()
            for uri, table in sql_tables.items():
                sql_servers.drop_tables(uri, table)
    memory = spreads["memory"]
    rows = []
    for kind in ("memory", "sqlite", "redis", "redis-cluster", "postgresql", "mariadb"):
        if kind not in spreads:
            rows.append([kind, "skipped: no Redis" if kind == "redis" else "skipped"])
            continue
        steps = runners[kind].steps
        rows.append(
            [
                kind,
                str(sizes[kind]),
                *rate_cells(spreads[kind], memory),
                " / ".join(ms(statistics.median(steps[s])) for s in STEPS),
            ]
        )
    section.table(
        ["store", "cycles/round", *rate_headers("memory"), "median ms: " + " / ".join(STEPS)],
        rows,
    )
    section.add(*CPU_NOTE.splitlines())
    if not has_redis:
        section.add("", f"redis: skipped: no Redis answered PING at {REDIS_HOST}:{REDIS_PORT}.")
    for kind, target in SHARED_TARGETS.items():
        if kind in spreads:
            versus = spreads[kind].wall.median / spreads["sqlite"].wall.median
            section.add("")
            section.check(
                f"{kind} >= {target} x sqlite (cycles/s, medians)",
                versus >= target,
                f"{versus:.2f}x",
            )
    if "redis" in spreads and "redis-cluster" in spreads:
        versus = spreads["redis-cluster"].wall.median / spreads["redis"].wall.median
        section.add("")
        section.check(
            f"redis-cluster >= {CLUSTER_TARGET} x redis (cycles/s, medians)",
            versus >= CLUSTER_TARGET,
            f"{versus:.2f}x",
        )
    parts = [f"{kind} {rate(result.wall.median)}/s" for kind, result in spreads.items()]
    section.summary = "Per store the package's cycle ran at " + ", ".join(parts)
    section.summary += "" if has_redis else " (Redis skipped: none answered)"
    section.summary += "."
    return section


def _add_sql_stores(stores: dict[str, str]) -> dict[str, str]:
    """Add a store on each SQL server of the machine that answers (PostgreSQL, MariaDB; the
    benchmark starts none), on a table of this run; return ``{server: table}`` to drop."""
    tables = {}
    for kind in ("postgresql", "mariadb"):
        try:
            uri = sql_servers.find(kind)
        except (sql_servers.SQLUnavailableError, ImportError) as exc:
            progress(f"{kind}: skipped ({exc})")
            continue
        tables[uri] = sql_servers.unique_table()
        stores[kind] = sql_servers.with_table(uri, tables[uri])
    return tables


def _delete_keys(prefix: str) -> None:
    """Remove this run's keys from Redis."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        progress(f"deleted {len(keys)} Redis keys under {prefix}")
    finally:
        client.close()
