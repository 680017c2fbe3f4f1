"""Sign-in cycles by code over real HTTP to gunicorn, under concurrent load: this package
against a floor app, per store kind.

A cycle: ``POST /auth/otp`` with JSON ``{"email"}`` (202), the code read from the message
FakePostmark received, ``POST /auth/otp/verify`` with ``{"email", "code"}`` (200, signed
in), ``POST /auth/logout`` (200). Any other answer, or no code, crashes the benchmark: every
cycle must succeed.

Contestants (:mod:`bench.http_apps`), each its own gunicorn with the same settings
(:data:`WORKERS` ``gthread`` workers of :data:`THREADS` threads, keep-alive on):

* the package: default settings, throttles out of reach (``IP_REQUESTS_PER_HOUR`` and
  ``EMAILS_PER_HOUR`` huge, ``RESEND_INTERVAL`` 0), ``DELIVERY`` "sync", no dev outbox;
* the floor: bare Flask + Flask-Login doing the least a correct app must (a random code,
  its HMAC stored, one POST to Postmark over a kept-alive session, then look-up,
  ``compare_digest``, delete, ``login_user``; logout), sending synchronously too.

Stores, the same kind and durability for both: SQLite (a file in a temporary directory,
WAL, ``synchronous = NORMAL``), Redis (127.0.0.1:6379 db 0, a unique key prefix; the
floor uses ``SET ... EX`` / ``GETDEL``), PostgreSQL (127.0.0.1:5432 database ``test``, a
unique table; each write its own committed transaction). Keys and tables are removed
afterwards. A store that does not answer is skipped, with a note.

Load: :data:`CLIENTS` client threads in this process, each with its own
``requests.Session`` (its own cookies, kept-alive connection) and its own pool of
addresses, run cycles back to back in :data:`ROUNDS` windows of :data:`SECONDS` (full run;
``--quick``: :data:`QUICK_ROUNDS` of :data:`QUICK_SECONDS`) per contestant per store, the
two contestants' windows alternating (who goes first alternates too), after an unrecorded
warm-up of each: the machine's speed drifts over a minute by more than the difference
measured, and alternating short windows gives both the same drift. FakePostmark, in this
process on loopback, is Postmark for both apps (CSRF off for both). Cycles that finished
within a window count: cycles/s is their number over the windows' time; the latencies of
their steps (client-side, the whole answer read) give p50 and p99 per step and for the
cycle.

Targets, per store: the package's throughput >= 0.8x the floor's, and its cycle p99 <=
1.5x the floor's. The client threads, FakePostmark and both servers share the machine's
cores, so the figures are the system's, not the app's alone; the "bench CPU" column (this
process's CPU time per second of the window) shows how much of them the load generator took,
and near one core (one GIL) it may be what limits a contestant.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from flask_postmark_auth.testing import FakePostmark, code_in
from support.processes import GunicornApp, app_env

from .apps import HUGE
from .common import (
    REDIS_HOST,
    REDIS_PORT,
    BenchError,
    RunConfig,
    Section,
    percentile,
    progress,
    rate,
    ratio,
    redis_answers,
)
from .http_apps import KIND_ENV, NAME_ENV, TARGET_ENV, floor_schema

WORKERS = 2
THREADS = 4
CLIENTS = 16
#: Addresses per client, signed in in turn.
POOL = 20
ROUNDS = 4
SECONDS = 2.0
QUICK_ROUNDS = 2
QUICK_SECONDS = 1.0
WARM_SECONDS = 2.0
QUICK_WARM_SECONDS = 0.5
TIMEOUT = 30.0
THROUGHPUT_TARGET = 0.8
P99_TARGET = 1.5
SECRET_KEY = "bench-http-0123456789abcdefghijkl"
PG_HOST, PG_PORT, PG_DB, PG_USER = "127.0.0.1", 5432, "test", "postgres"
STEPS = ("otp", "verify", "logout")
JSON = {"Accept": "application/json"}
PACKAGE = "package"
FLOOR = "floor"
APPS = {
    PACKAGE: "bench.http_apps:create_package_app()",
    FLOOR: "bench.http_apps:create_floor_app()",
}


class HttpServer(GunicornApp):
    """:class:`support.processes.GunicornApp` serving one of :mod:`bench.http_apps` with
    ``gthread`` workers, no access log, ready when ``GET /ping`` answers."""

    def __init__(self, name: str, app: str, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(name, env, log_dir, workers=WORKERS)
        self.target = app

    def worker_options(self) -> list[str]:
        return ["--worker-class", "gthread", "--threads", str(THREADS)]

    def log_options(self) -> list[str]:
        return ["--error-logfile", "-", "--log-level", "warning"]

    def cpu_seconds(self) -> float | None:
        """CPU seconds used so far by gunicorn and its workers (Linux's ``/proc``; ``None``
        elsewhere)."""
        if self.process is None:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        try:
            master = self.process.pid
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
            for pid in [master, *map(int, children)]:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, ValueError, IndexError):
            return None
        return total

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        answered = 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with requests.get(f"{self.url}/ping", timeout=2) as r:
                    answered += r.status_code == 200
            except requests.RequestException:
                pass
            if answered >= 2 * self.workers:  # most likely every worker has booted by then
                return True
            time.sleep(0.05)
        return False


class Mailbox:
    """The newest code FakePostmark received for each address (this run's)."""

    def __init__(self, fake: FakePostmark) -> None:
        self.fake = fake
        self.lock = threading.Lock()
        self.seen = 0
        self.latest: dict[str, str] = {}

    def code_for(self, email: str) -> str:
        with self.lock:
            messages = self.fake.messages
            for message in messages[self.seen : len(messages)]:
                self.latest[message.to] = code_in(message)
            self.seen = len(messages)
            code = self.latest.pop(email, None)
        if code is None:
            raise BenchError(f"no code reached FakePostmark for {email}")
        return code

    def reset(self) -> None:
        with self.lock:
            self.fake.reset()
            self.seen = 0
            self.latest.clear()


@dataclass
class Load:
    """One window of load on one server: the steps' durations of the cycles that finished
    within it."""

    seconds: float
    #: CPU seconds this process (clients and FakePostmark) used per second of the window.
    cpu: float = 0.0
    #: CPU seconds the server (gunicorn and its workers) used in the window; None: unknown.
    server: float | None = None
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    cycles: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.cycles) / self.seconds

    def add(self, other: Load) -> None:
        """Take in another window's cycles (the CPU share averaged over the time)."""
        total = self.seconds + other.seconds
        self.cpu = (self.cpu * self.seconds + other.cpu * other.seconds) / total
        both = (self.server, other.server)
        self.server = None if None in both else sum(x or 0.0 for x in both)
        self.seconds = total
        self.cycles += other.cycles
        for step, times in other.steps.items():
            self.steps[step] += times


def post(session: requests.Session, url: str, body: dict[str, str], status: int) -> None:
    response = session.post(url, json=body, headers=JSON, timeout=TIMEOUT, allow_redirects=False)
    if response.status_code != status:
        raise BenchError(
            f"POST {url} answered {response.status_code}, not {status}: {response.text[:300]}"
        )


def client(
    url: str,
    emails: list[str],
    mailbox: Mailbox,
    deadline: float,
    stop: threading.Event,
    out: list[tuple[float, float, float, float]],
) -> None:
    """Cycles back to back until ``deadline``: ``(otp, verify, logout, ended)`` per cycle."""
    clock = time.perf_counter
    with requests.Session() as session:
        session.trust_env = False
        turn = 0
        while not stop.is_set() and clock() < deadline:
            email = emails[turn % len(emails)]
            turn += 1
            t0 = clock()
            post(session, f"{url}/auth/otp", {"email": email}, 202)
            t1 = clock()
            code = mailbox.code_for(email)
            t2 = clock()
            post(session, f"{url}/auth/otp/verify", {"email": email, "code": code}, 200)
            t3 = clock()
            post(session, f"{url}/auth/logout", {}, 200)
            t4 = clock()
            out.append((t1 - t0, t3 - t2, t4 - t3, t4))


def load(url: str, mailbox: Mailbox, tag: str, seconds: float) -> Load:
    """:data:`CLIENTS` clients on ``url`` for ``seconds``; raises the first failure."""
    outs: list[list[tuple[float, float, float, float]]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []
    stop = threading.Event()
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds

    def one(index: int) -> None:
        emails = [f"{tag}-c{index:02d}-{i:03d}@example.net" for i in range(POOL)]
        try:
            client(url, emails, mailbox, deadline, stop, outs[index])
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    used = (time.process_time() - cpu) / (time.perf_counter() - start)
    mailbox.reset()
    if errors:
        raise BenchError(f"a sign-in cycle failed ({tag}): {errors[0]}") from errors[0]
    result = Load(seconds, used)
    for out in outs:
        for otp, verify, logout, ended in out:
            if ended <= deadline:
                result.steps["otp"].append(otp)
                result.steps["verify"].append(verify)
                result.steps["logout"].append(logout)
                result.cycles.append(otp + verify + logout)
    if not result.cycles:
        raise BenchError(f"no cycle finished within {seconds:.1f} s ({tag})")
    return result


@dataclass(frozen=True)
class StoreKind:
    """One store kind: the package's URI, the floor's settings, and clean-up."""

    name: str
    package_uri: str
    floor: tuple[str, str, str]
    cleanup: Callable[[], None]


def sqlite_kind(tmp: str) -> StoreKind:
    path = os.path.join(tmp, "floor.db")
    floor_schema("sqlite", path, "")
    return StoreKind("SQLite", f"sqlite:///{tmp}/package.db", ("sqlite", path, ""), lambda: None)


def redis_kind() -> StoreKind:
    import redis

    unique = uuid.uuid4().hex[:12]
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    package, floor = f"bench-http-{unique}-pkg:", f"bench-http-{unique}-floor:"

    def cleanup() -> None:
        client = redis.Redis.from_url(url)
        for prefix in (package, floor):
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        client.close()

    return StoreKind("Redis", f"{url}?prefix={package}", ("redis", url, floor), cleanup)


def pg_conninfo() -> str:
    return f"host={PG_HOST} port={PG_PORT} dbname={PG_DB} user={PG_USER} connect_timeout=3"


def pg_answers() -> bool:
    try:
        import psycopg

        with psycopg.connect(pg_conninfo()) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True


def postgres_kind() -> StoreKind:
    import psycopg

    unique = secrets.token_hex(6)
    package, floor = f"bench_http_{unique}_pkg", f"bench_http_{unique}_floor"
    floor_schema("postgresql", pg_conninfo(), floor)

    def cleanup() -> None:
        with psycopg.connect(pg_conninfo(), autocommit=True) as conn:
            for table in (package, floor):
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    uri = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}?table={package}"
    return StoreKind("PostgreSQL", uri, ("postgresql", pg_conninfo(), floor), cleanup)


def prepare_package_store(uri: str, tmp: str) -> None:
    """Open and check the package's store once here, so the workers do not race to create
    its table."""
    from flask_postmark_auth.store import open_store

    store = open_store(uri, instance_path=tmp)
    store.check()
    store.close()


def servers_for(kind: StoreKind, fake: FakePostmark, tmp: str) -> dict[str, HttpServer]:
    settings: dict[str, object] = {
        "STORE": kind.package_uri,
        "DELIVERY": "sync",
        "DEV_OUTBOX": False,
        "RESEND_INTERVAL": 0,
        "EMAILS_PER_HOUR": HUGE,
        "IP_REQUESTS_PER_HOUR": HUGE,
    }
    floor_kind, target, name = kind.floor
    extra = {"SECRET_KEY": SECRET_KEY, KIND_ENV: floor_kind, TARGET_ENV: target, NAME_ENV: name}
    prepare_package_store(kind.package_uri, tmp)
    envs = {PACKAGE: app_env(fake, settings, extra), FLOOR: app_env(fake, {}, extra)}
    label = kind.name.lower()
    return {
        who: HttpServer(f"http-{label}-{who}", APPS[who], envs[who], Path(tmp))
        for who in (PACKAGE, FLOOR)
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def run(config: RunConfig) -> Section:
    seconds = QUICK_SECONDS if config.quick else SECONDS
    rounds = QUICK_ROUNDS if config.quick else ROUNDS
    warm = QUICK_WARM_SECONDS if config.quick else WARM_SECONDS
    section = Section("7. Sign-in cycles over HTTP (gunicorn) under load: package vs floor")
    section.add(
        f"{CLIENTS} client threads (own cookies, keep-alive, {POOL} addresses each) run "
        "cycles back to back: POST /auth/otp,",
        "the code read from FakePostmark (in this process; not timed in the steps), POST "
        "/auth/otp/verify, POST /auth/logout.",
        f"Each contestant: gunicorn, {WORKERS} gthread workers x {THREADS} threads; "
        f"{rounds} windows of {seconds:.0f} s per store, alternating with the other's,",
        f"after {warm:.1f} s of warm-up each.",
        "Sync delivery to FakePostmark for both; CSRF off; the package's throttles out of "
        "reach. Latencies in ms, per step",
        "as the client saw them; cycle = otp + verify + logout. Every cycle must succeed.",
        "",
    )
    kinds: list[Callable[[str], StoreKind]] = [sqlite_kind]
    notes: list[str] = []
    if redis_answers():
        kinds.append(lambda _tmp: redis_kind())
    else:
        notes.append(f"Redis: none answering at {REDIS_HOST}:{REDIS_PORT}, skipped.")
    if pg_answers():
        kinds.append(lambda _tmp: postgres_kind())
    else:
        notes.append(f"PostgreSQL: none answering at {PG_HOST}:{PG_PORT}, skipped.")

    rows: list[list[str]] = []
    verdicts: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as tmp,
        FakePostmark() as fake,
    ):
        mailbox = Mailbox(fake)
        for number, make in enumerate(kinds):
            kind = make(tmp)
            results: dict[str, Load] = {}
            servers: dict[str, HttpServer] = {}
            try:
                servers = servers_for(kind, fake, tmp)
                for who, server in servers.items():
                    server.start()
                    progress(f"http_load: {kind.name} {who} up at {server.url}")
                for who in (PACKAGE, FLOOR):
                    load(servers[who].url, mailbox, f"{kind.name.lower()}-{who}-warm", warm)
                for turn in range(rounds):
                    first = (number + turn) % 2 == 0
                    for who in [PACKAGE, FLOOR] if first else [FLOOR, PACKAGE]:
                        tag = f"{kind.name.lower()}-{who}-{turn}"
                        before = servers[who].cpu_seconds()
                        window = load(servers[who].url, mailbox, tag, seconds)
                        after = servers[who].cpu_seconds()
                        if before is not None and after is not None:
                            window.server = after - before
                        if who in results:
                            results[who].add(window)
                        else:
                            results[who] = window
                for who in (PACKAGE, FLOOR):
                    progress(
                        f"http_load: {kind.name} {who}: {rate(results[who].rate)} cycles/s, "
                        f"cycle p99 {ms(percentile(results[who].cycles, 99))} ms"
                    )
            finally:
                for server in servers.values():
                    server.stop()
                kind.cleanup()
            floor = results[FLOOR]
            floor_p99 = percentile(floor.cycles, 99)
            for who in (PACKAGE, FLOOR):
                result = results[who]
                p99 = percentile(result.cycles, 99)
                cells = [kind.name, who, str(len(result.cycles)), rate(result.rate)]
                for step in STEPS:
                    times = result.steps[step]
                    cells += [ms(percentile(times, 50)), ms(percentile(times, 99))]
                cells += [ms(percentile(result.cycles, 50)), ms(p99)]
                cells += [ratio(result.rate / floor.rate), ratio(p99 / floor_p99)]
                cells.append(f"{result.cpu * 100:.0f}%")
                used = result.server
                cells.append("n/a" if used is None else ms(used / len(result.cycles)))
                rows.append(cells)
            package = results[PACKAGE]
            speed = package.rate / floor.rate
            slowness = percentile(package.cycles, 99) / floor_p99
            section_targets = (
                section.check(
                    f"http_load {kind.name}: package throughput >= {THROUGHPUT_TARGET}x floor",
                    speed >= THROUGHPUT_TARGET,
                    f"{ratio(speed)}: {rate(package.rate)} vs {rate(floor.rate)} cycles/s",
                ),
                section.check(
                    f"http_load {kind.name}: package cycle p99 <= {P99_TARGET}x floor",
                    slowness <= P99_TARGET,
                    f"{ratio(slowness)}: {ms(percentile(package.cycles, 99))} vs "
                    f"{ms(floor_p99)} ms",
                ),
            )
            verdicts.append(
                f"{kind.name} {ratio(speed)} throughput, {ratio(slowness)} p99 ("
                + "/".join("PASS" if t.passed else "FAIL" for t in section_targets)
                + ")"
            )

    # The PASS/FAIL lines came first; put the table above them.
    checks = section.lines[-2 * len(kinds) :]
    del section.lines[-2 * len(kinds) :]
    heads = ["store", "contestant", "cycles", "cycles/s"]
    for step in STEPS:
        heads += [f"{step} p50", "p99"]
    heads += ["cycle p50", "p99", "x floor/s", "x floor p99", "bench CPU", "server CPU"]
    section.table(heads, rows, left=2)
    section.add(
        "",
        "x floor/s: throughput over the floor's; x floor p99: cycle p99 over the floor's.",
        "bench CPU: this process's CPU time (client threads, FakePostmark) per second of "
        "the window (100% = one core;",
        "its threads share one GIL, so near 100% the load generator, not the server, may "
        "limit both contestants).",
        "server CPU: ms of CPU time gunicorn and its workers used per cycle counted (from "
        "/proc; n/a elsewhere).",
        *notes,
        "",
        *checks,
    )
    section.summary = (
        f"Over HTTP to gunicorn with {CLIENTS} concurrent clients, the package against the "
        "floor: " + "; ".join(verdicts) + "."
    )
    return section
