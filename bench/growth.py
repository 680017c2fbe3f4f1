"""Memory and growth: 50,000 sign-ins (request a code, verify it) of distinct addresses on
the memory store, with a fake clock moved one second per sign-in (about 14 simulated hours),
then ``store.purge()``.

Settings: defaults except ``OTP_TTL``/``MAGIC_LINK_TTL`` = 30 s (the shortest allowed) and
``IP_REQUESTS_PER_HOUR`` out of reach (every request comes from 127.0.0.1). The first
sign-ins send their mail over HTTP to FakePostmark; if that pace would take the whole run
past the time budget, the rest is recorded with ``record_messages`` instead (everything
but the HTTP call to Postmark stays the same), and the output says so.
"""

from __future__ import annotations

import contextlib
import gc
import re
import time
from collections.abc import Callable

from flask.testing import FlaskClient

from flask_postmark_auth.state import state
from flask_postmark_auth.testing import FakeClock, FakePostmark, RecordedMessage, record_messages

from .apps import HUGE, package_app
from .common import BenchError, RunConfig, Section, mib, progress, rss_bytes, table

CODE = re.compile(r"\b(\d{6})\b")
#: Sign-ins sent over HTTP to measure the pace first.
SAMPLE = 1000
#: Longest the whole loop may take over HTTP before the rest switches to record_messages.
HTTP_BUDGET = 120.0
TICK = 1.0


def run(config: RunConfig) -> Section:
    total = config.pick(50_000, 2_000)
    sample = min(SAMPLE, total // 4)
    checkpoints = max(1, total // 5)
    section = Section(f"5. Memory and growth: {total:,} sign-ins, then purge()")
    clock = FakeClock()
    addresses = [f"grow{i:05d}@example.net" for i in range(total)]
    with FakePostmark() as fake:
        flow, _ = package_app(
            fake,
            "memory://",
            clock=clock,
            OTP_TTL=30,
            MAGIC_LINK_TTL=30,
            RESEND_INTERVAL=30,
            EMAILS_PER_HOUR=10,
            IP_REQUESTS_PER_HOUR=HUGE,
        )
        store = state(flow.app).store
        users = state(flow.app).users
        client = flow.app.test_client()

        gc.collect()
        size_before, rss_before = store.size(), rss_bytes()
        trend: list[list[str]] = []
        clock_start = clock.now
        started = time.perf_counter()

        def checkpoint(done: int) -> None:
            gc.collect()
            trend.append(
                [
                    f"{done:,}",
                    f"{(clock.now - clock_start) / 3600:.1f}",
                    f"{store.size():,}",
                    mib(rss_bytes()),
                    f"{time.perf_counter() - started:.1f}",
                ]
            )

        read = _from_fake(fake)
        how = ""
        with contextlib.ExitStack() as stack:
            for i, address in enumerate(addresses):
                if i == sample:
                    http_rate = sample / (time.perf_counter() - started)
                    over_http, how = _decide(total, sample, http_rate)
                    progress(how)
                    if not over_http:
                        read = _from_outbox(stack.enter_context(record_messages(flow.app)))
                if i % checkpoints == 0:
                    checkpoint(i)
                _sign_in(client, address, read)
                clock.advance(TICK)
        elapsed = time.perf_counter() - started
        checkpoint(total)

        size_after, rss_after = store.size(), rss_bytes()
        kept_users = sum(users.load(a) is not None for a in addresses)
        dropped = store.purge()
        gc.collect()
        size_purged, rss_purged = store.size(), rss_bytes()

    section.add(
        f"Memory store; fake clock +{TICK:.0f} s per sign-in ({total * TICK / 3600:.1f} h "
        "simulated); OTP_TTL=MAGIC_LINK_TTL=30 s; RESEND_INTERVAL=30 s and",
        "EMAILS_PER_HOUR=10 (defaults, never reached: each address signs in once); "
        "IP_REQUESTS_PER_HOUR out of reach.",
        f"Mail: {how}",
        f"{total:,} sign-ins took {elapsed:.1f} s ({total / elapsed:,.0f}/s).",
        "",
        "Trend while signing in:",
        *table(["sign-ins", "clock h", "store.size()", "RSS MiB", "elapsed s"], trend),
        "",
    )
    section.table(
        ["moment", "store.size()", "RSS MiB"],
        [
            ["before", f"{size_before:,}", mib(rss_before)],
            [f"after {total:,} sign-ins", f"{size_after:,}", mib(rss_after)],
            ["after store.purge()", f"{size_purged:,}", mib(rss_purged)],
        ],
    )
    per_sign_in = (size_after - size_before) / total
    section.add(
        "",
        f"Growth: {per_sign_in:.2f} store entries and "
        f"{(rss_after - rss_before) / total:,.0f} bytes of RSS per sign-in before purge.",
        f"purge() dropped {dropped:,} expired entries ({size_after:,} -> {size_purged:,}); "
        f"kept: {kept_users:,} built-in users (no expiry, by design)",
        f"and {size_purged - kept_users:,} live entries (counters still in their window).",
        f"So {dropped / max(size_after, 1):.0%} of what the store held after the sign-ins "
        "had expired but was still kept until purge().",
        "RSS after purge: CPython keeps freed memory in its allocator, so it need not fall.",
    )
    section.summary = (
        f"{total:,} sign-ins of distinct addresses grew the memory store by "
        f"{per_sign_in:.2f} entries per sign-in ({size_after:,} entries, RSS "
        f"{mib(rss_before)} -> {mib(rss_after)} MiB); purge() dropped {dropped:,} expired "
        f"ones, leaving {size_purged:,} ({kept_users:,} of them built-in users)."
    )
    return section


MailReader = Callable[[str], str]


def _from_fake(fake: FakePostmark) -> MailReader:
    """Read the code from FakePostmark's last message, then forget every record."""

    def read(email: str) -> str:
        message = fake.messages[-1]
        fake.reset()
        return _code(message, email)

    return read


def _from_outbox(outbox: list[RecordedMessage]) -> MailReader:
    def read(email: str) -> str:
        return _code(outbox.pop(), email)

    return read


def _decide(total: int, sample: int, http_rate: float) -> tuple[bool, str]:
    """Whether the sign-ins after the sample keep sending over HTTP, and why, as a sentence."""
    projected = total / http_rate
    if projected <= HTTP_BUDGET:
        return True, (
            f"all {total:,} sign-ins sent their mail over HTTP to FakePostmark "
            f"(measured {http_rate:,.0f}/s on the first {sample:,}; projected "
            f"{projected:.0f} s <= {HTTP_BUDGET:.0f} s budget)."
        )
    return False, (
        f"the first {sample:,} sign-ins sent mail over HTTP at {http_rate:,.0f}/s; "
        f"{total:,} at that pace would take {projected:.0f} s, over the "
        f"{HTTP_BUDGET:.0f} s budget, so the other {total - sample:,} recorded their "
        "mail with record_messages (no HTTP; the rest of each request is unchanged)."
    )


def _code(message: RecordedMessage, email: str) -> str:
    if message.to != email:
        raise BenchError(f"message to {message.to}, expected {email}")
    match = CODE.search(message.text_body or "")
    if match is None:
        raise BenchError(f"no code in {message.text_body!r}")
    return match.group(1)


def _sign_in(client: FlaskClient, email: str, read_code: MailReader) -> None:
    response = client.post("/auth/otp", json={"email": email})
    if response.status_code != 202:
        raise BenchError(f"POST /auth/otp answered {response.status_code}")
    code = read_code(email)
    response = client.post("/auth/otp/verify", json={"email": email, "code": code})
    if response.status_code != 200:
        raise BenchError(f"POST /auth/otp/verify answered {response.status_code}")
