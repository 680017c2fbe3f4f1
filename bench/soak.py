"""Soak: mixed sign-ins across two gunicorn instances sharing Redis, for a long while.

``python -m bench.soak --minutes 30`` (``make soak``). Not part of ``make test`` or of
``python -m bench``. Every request goes to 127.0.0.1; the run stops by itself.

Reports errors (must be 0), p50/p99 latency per route, the RSS of each instance over time
and the store's size over time (both must stay flat once warm).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from flask_postmark_auth.store import RedisStore
from flask_postmark_auth.testing import FakePostmark
from support.processes import GunicornApp, Visitor, app_env
from support.redis_server import delete_prefix, find_or_start, unique_prefix

#: Addresses per client: reused, so once warm the store holds a steady set of users and
#: counters, and any growth shows.
ADDRESSES = 250
CODE = re.compile(r"\b(\d{6})\b")
LINK = re.compile(r"https?://[^/\s]+(/auth/magic-link/[\w.\-]+)")


class Mailbox:
    """Sign-in mail as FakePostmark receives it: per (address, tag), how many arrived and
    the newest text part. FakePostmark's own list is emptied as it is read, so a long run
    holds no more than a few messages."""

    def __init__(self, fake: FakePostmark) -> None:
        self.fake = fake
        self.count: dict[tuple[str, str], int] = defaultdict(int)
        self.newest: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()

    def wait(self, address: str, tag: str, nth: int, timeout: float = 10.0) -> str:
        """The text of the ``nth`` message to ``address`` with ``tag`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                messages = self.fake.messages
                arrived = len(messages)
                for message in messages[:arrived]:
                    key = (message.to, message.tag or "")
                    self.count[key] += 1
                    self.newest[key] = message.text_body or ""
                del messages[:arrived]
                if self.count[(address, tag)] >= nth:
                    return self.newest[(address, tag)]
            time.sleep(0.001)
        raise TimeoutError(f"no {tag} mail for {address}")


def rss_kib(app: GunicornApp) -> int:
    """Resident memory of an instance: its master and workers, in KiB."""
    assert app.process is not None
    pids = [app.process.pid]
    children = Path(f"/proc/{app.process.pid}/task/{app.process.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def run(minutes: float, clients: int, workers: int) -> int:
    redis_url, server = find_or_start()
    prefix = unique_prefix()
    fake = FakePostmark().start()
    logs = Path(tempfile.mkdtemp(prefix="soak-"))
    settings = {
        "STORE": f"{redis_url}?prefix={prefix}",
        "DEV_OUTBOX": False,
        "RESEND_INTERVAL": 0,
        "EMAILS_PER_HOUR": 1_000_000,
        "IP_REQUESTS_PER_HOUR": 100_000_000,
    }
    apps = [
        GunicornApp(name, app_env(fake, settings), logs, workers=workers).start()
        for name in ("A", "B")
    ]
    store = RedisStore(redis_url, prefix=prefix)
    mailbox = Mailbox(fake)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + minutes * 60
    samples: list[tuple[float, int, int, int, int]] = []

    def timed(route: str, visitor: Visitor, path: str, body: dict[str, str]) -> int:
        """POST and record the latency under ``route``; the status code."""
        started = time.perf_counter()
        status = visitor.post(path, body).status_code
        with lock:
            latencies[route].append((time.perf_counter() - started) * 1000)
        return status

    def client(number: int) -> None:
        rng = random.Random(number)
        visitors = [Visitor(app.url).start() for app in apps]
        sent: dict[tuple[str, str], int] = defaultdict(int)
        try:
            while time.monotonic() < deadline:
                address = f"soak{rng.randrange(ADDRESSES)}.{number}@example.com"
                first, second = rng.sample(visitors, 2)
                by_code = rng.random() < 0.5
                tag = "otp" if by_code else "magic-link"
                route = "/auth/otp" if by_code else "/auth/magic-link"
                status = timed(f"POST {route}", first, route, {"email": address})
                if status != 202:
                    errors.append(f"{route} {status}")
                    continue
                sent[(address, tag)] += 1
                text = mailbox.wait(address, tag, sent[(address, tag)])
                if by_code:
                    match = CODE.search(text)
                    body = {"email": address, "code": match.group(1) if match else ""}
                    status = timed("POST /auth/otp/verify", second, "/auth/otp/verify", body)
                else:
                    match = LINK.search(text)
                    path = match.group(1) if match else "/auth/magic-link/missing"
                    status = timed("POST /auth/magic-link/<token>", second, path, {})
                if status != 200:
                    errors.append(f"sign-in {status}")
                    continue
                status = timed("POST /auth/logout", second, "/auth/logout", {})
                if status != 200:
                    errors.append(f"logout {status}")
                with lock:
                    done[0] += 1
        except Exception as exc:  # counted and reported as an error, never hidden
            errors.append(f"client {number}: {exc!r}")
        finally:
            for visitor in visitors:
                visitor.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    interval = max(5.0, minutes * 60 / 30)
    try:
        while any(t.is_alive() for t in threads):
            elapsed = time.monotonic() - started
            samples.append((elapsed, done[0], rss_kib(apps[0]), rss_kib(apps[1]), store.size()))
            time.sleep(min(interval, max(0.5, deadline - time.monotonic() + 1)))
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        samples.append((elapsed, done[0], rss_kib(apps[0]), rss_kib(apps[1]), store.size()))
    finally:
        for app in apps:
            app.stop()
        store.close()
        fake.stop()
        delete_prefix(redis_url, prefix)
        if server is not None:
            server.stop()

    print(f"Soak: {minutes:g} min, {clients} clients, 2 instances x {workers} gunicorn workers,")
    print(f"one Redis ({redis_url}); sign-ins alternate code and link, asked on one instance")
    print("and completed on the other.\n")
    print(f"sign-ins: {done[0]:,} ({done[0] / elapsed:.1f}/s)   errors: {len(errors)}")
    for error in errors[:10]:
        print(f"  {error}")
    print(f"\n{'route':32}  {'n':>8}  {'p50 ms':>8}  {'p99 ms':>8}")
    for route, values in sorted(latencies.items()):
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{route:32}  {len(values):>8,}  {statistics.median(values):>8.2f}  {p99:>8.2f}")
    print(
        f"\n{'minute':>7}  {'sign-ins':>9}  {'RSS A MiB':>9}  {'RSS B MiB':>9}  {'store keys':>10}"
    )
    for at, count, rss_a, rss_b, size in samples:
        rss = f"{rss_a / 1024:>9.1f}  {rss_b / 1024:>9.1f}"
        print(f"{at / 60:>7.1f}  {count:>9,}  {rss}  {size:>10,}")
    return 1 if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance")
    args = parser.parse_args()
    raise SystemExit(run(args.minutes, args.clients, args.workers))


if __name__ == "__main__":
    main()
