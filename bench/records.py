"""What a sign-in leaves in Redis and what it costs there: the memory of a pending sign-in
(``MEMORY USAGE`` of every key it made) and the round trips of each request of a cycle.

Memory: this package with default throttles (``RESEND_INTERVAL`` 30 s, so a pending
sign-in holds its code's record, its mailbox's hourly quota and its resend wait) asks for
codes for :data:`ADDRESSES` distinct addresses from one client IP; every key under the run's
prefix is then measured with ``MEMORY USAGE ... SAMPLES 0`` and grouped by kind. The IP's
own counter, shared by every address it asks for, is shown apart (one more per distinct IP).

Round trips: the requests of one code sign-in cycle (a first one, which makes the built-in
user, and a second), counted where redis-py writes to the socket (a pipeline is one).
Targets: at most :data:`BYTES_TARGET` bytes per pending sign-in and :data:`TRIPS_TARGET`
round trips per request.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask_postmark_auth.testing import FakePostmark, code_in

from .apps import package_app
from .common import REDIS_HOST, REDIS_PORT, RunConfig, Section, redis_answers

ADDRESSES = 500
BYTES_TARGET = 300
TRIPS_TARGET = 2


def _kind(name: str) -> str:
    """``hour`` for ``prefix{hour:ann@example.com}:k``."""
    inner = name.partition("{")[2]
    return inner.split(":", 1)[0] if inner else name


def count_trips() -> tuple[list[int], Any]:
    """Count redis-py's socket writes from now on: the list, and a function that stops."""
    import redis.connection

    cls: Any = redis.connection.AbstractConnection
    original = cls.send_packed_command
    sent: list[int] = []

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        original(self, command, check_health)

    cls.send_packed_command = counting

    def stop() -> None:
        cls.send_packed_command = original

    return sent, stop


def run(config: RunConfig) -> Section:
    section = Section("8. Redis: memory of a pending sign-in, round trips per request")
    if not redis_answers():
        section.add(f"skipped: no Redis answered PING at {REDIS_HOST}:{REDIS_PORT}.")
        section.summary = "Redis records: skipped (no Redis answered)."
        return section
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    # As long as the default prefix ("postmark_auth:"), so the keys weigh what they would.
    prefix = f"b{uuid.uuid4().hex[:12]}:"
    count = config.pick(ADDRESSES, 100)
    try:
        with FakePostmark() as fake:
            flow, _ = package_app(
                fake, f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}", RESEND_INTERVAL=30
            )
            web = flow.app.test_client()
            for i in range(count):
                answer = web.post("/auth/otp", json={"email": f"user{i:05d}@example.com"})
                if answer.status_code != 202:
                    raise RuntimeError(f"POST /auth/otp answered {answer.status_code}")
            kinds: dict[str, list[int]] = {}
            for key in client.scan_iter(match=prefix + "*", count=1000):
                used = int(client.memory_usage(key, samples=0) or 0)
                kinds.setdefault(_kind(key.decode()), []).append(used)
            cycling, _ = package_app(
                fake, f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}cycle:"
            )  # throttles out of reach: the same address signs in twice at once
            trips = _cycle_trips(cycling.app, fake)
    finally:
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()
    per_address = {k: v for k, v in kinds.items() if len(v) == count}
    bytes_each = sum(sum(v) for v in per_address.values()) / count
    section.add(
        f"{count} code requests for distinct addresses from one IP, default throttles "
        "(RESEND_INTERVAL 30 s); MEMORY USAGE SAMPLES 0 of every key under the run's prefix.",
        "",
    )
    section.table(
        ["key kind", "keys", "bytes each", "per pending sign-in"],
        [
            [kind, str(len(v)), f"{sum(v) / len(v):.0f}", "yes" if kind in per_address else "no"]
            for kind, v in sorted(kinds.items())
        ],
    )
    section.add("")
    section.check(
        f"a pending sign-in <= {BYTES_TARGET} B of Redis memory (MEMORY USAGE)",
        bytes_each <= BYTES_TARGET,
        f"{bytes_each:.0f} B: " + " + ".join(sorted(per_address)),
    )
    section.add("", "Round trips to Redis per request of a code sign-in cycle:")
    section.table(["request", "first sign-in", "again"], [[s, *map(str, n)] for s, n in trips])
    most = max(n for _, pair in trips for n in pair)
    section.check(
        f"at most {TRIPS_TARGET} Redis round trips per sign-in request",
        most <= TRIPS_TARGET,
        f"at most {most}",
    )
    section.summary = (
        f"A pending sign-in held {bytes_each:.0f} B of Redis memory (target {BYTES_TARGET}) "
        f"and a sign-in request took at most {most} round trips to Redis (target "
        f"{TRIPS_TARGET})."
    )
    return section


def _cycle_trips(app: Any, fake: FakePostmark) -> list[tuple[str, tuple[int, int]]]:
    web = app.test_client()
    address = "cycle@example.com"
    counts: dict[str, list[int]] = {"POST /auth/otp": [], "POST /auth/otp/verify": []}
    counts["POST /auth/logout"] = []
    # Unrecorded: the first use of each script on a server loads it (once per server).
    web.post("/auth/otp", json={"email": "warm@example.com"})
    web.post(
        "/auth/otp/verify", json={"email": "warm@example.com", "code": code_in(fake.messages[-1])}
    )
    web.post("/auth/logout", json={})
    for _ in range(2):
        sent, stop = count_trips()
        try:
            answer = web.post("/auth/otp", json={"email": address})
            if answer.status_code != 202:
                raise RuntimeError(f"POST /auth/otp answered {answer.status_code}")
            counts["POST /auth/otp"].append(len(sent))
            sent.clear()
            code = code_in(fake.messages[-1])
            answer = web.post("/auth/otp/verify", json={"email": address, "code": code})
            if answer.status_code != 200:
                raise RuntimeError(f"POST /auth/otp/verify answered {answer.status_code}")
            counts["POST /auth/otp/verify"].append(len(sent))
            sent.clear()
            web.post("/auth/logout", json={})
            counts["POST /auth/logout"].append(len(sent))
        finally:
            stop()
    return [(step, (n[0], n[1])) for step, n in counts.items()]
