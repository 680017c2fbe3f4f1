"""Send-path latency when Postmark is slow: POST /auth/otp with FakePostmark answering after
100 ms, with ``POSTMARK_AUTH_DELIVERY`` "sync" and "background".

Distinct addresses, throttles off, SQLite store. Requests go back to back (a burst, the
harder case for the background pool); the extension's ``flush()`` runs between rounds,
outside the timing, and every message must have reached FakePostmark by then.
"""

from __future__ import annotations

import tempfile
import time

from flask.testing import FlaskClient

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.testing import FakePostmark

from .apps import package_app
from .common import BenchError, RunConfig, Section, ms, percentile, progress

DELAY = 0.1
#: Target: background p50 below this many seconds.
TARGET_P50 = 0.010
MODES = ("sync", "background")


def run(config: RunConfig) -> Section:
    section = Section("4. Send-path latency under a slow Postmark (100 ms per request)")
    rounds = config.pick(4, 1)
    per_round = {"sync": config.pick(30, 10), "background": config.pick(100, 20)}
    section.add(
        f"POST /auth/otp (JSON) latency, {rounds} alternating rounds of "
        f"{per_round['sync']} sync / {per_round['background']} background requests,",
        "back to back, each to a new address; FakePostmark delays every answer by "
        f"{DELAY * 1000:.0f} ms; flush() between rounds.",
        "",
    )
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    sent: dict[str, int] = {mode: 0 for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp, FakePostmark() as fake:
        apps: dict[str, tuple[FlaskClient, PostmarkAuth]] = {}
        for mode in MODES:
            flow, auth = package_app(fake, f"sqlite:///{tmp}/{mode}.db", DELIVERY=mode)
            apps[mode] = (flow.app.test_client(), auth)
        # Warm up without the delay: connections, templates, SQLite files.
        for mode, (client, auth) in apps.items():
            for i in range(5):
                _post(client, f"warm-{mode}-{i}@example.net")
            auth.flush(10)
        fake.reset()
        fake.slow(DELAY)
        for number in range(rounds):
            order = MODES if number % 2 == 0 else MODES[::-1]
            for mode in order:
                client, auth = apps[mode]
                before = len(fake.messages)
                for i in range(per_round[mode]):
                    address = f"lat-{mode}-{number}-{i}@example.net"
                    started = time.perf_counter()
                    _post(client, address)
                    samples[mode].append(time.perf_counter() - started)
                flushed = time.perf_counter()
                if not auth.flush(60):
                    raise BenchError(f"{mode}: background sends did not finish in 60 s")
                fake.wait_for_messages(before + per_round[mode], timeout=10)
                sent[mode] += len(fake.messages) - before
                progress(
                    f"latency round {number + 1}/{rounds} {mode}: p50 "
                    f"{ms(percentile(samples[mode][-per_round[mode] :], 50))} ms, flush "
                    f"{time.perf_counter() - flushed:.2f} s"
                )
    rows = []
    for mode in MODES:
        values = samples[mode]
        rows.append(
            [
                mode,
                str(len(values)),
                ms(percentile(values, 50)),
                ms(percentile(values, 90)),
                ms(percentile(values, 99)),
                ms(max(values)),
                f"{sent[mode]}/{len(values)}",
            ]
        )
    section.table(["delivery", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms", "sent"], rows)
    p50 = percentile(samples["background"], 50)
    section.add("")
    section.check(
        f"background p50 < {TARGET_P50 * 1000:.0f} ms",
        p50 < TARGET_P50,
        f"p50 {ms(p50)} ms, p99 {ms(percentile(samples['background'], 99))} ms",
    )
    section.summary = (
        f"With Postmark answering after 100 ms, POST /auth/otp took p50 "
        f"{ms(percentile(samples['sync'], 50))} ms with sync delivery and "
        f"{ms(p50)} ms (p99 {ms(percentile(samples['background'], 99))} ms) with background "
        f"delivery (target p50 < 10 ms: {'PASS' if p50 < TARGET_P50 else 'FAIL'})."
    )
    return section


def _post(client: FlaskClient, email: str) -> None:
    response = client.post("/auth/otp", json={"email": email})
    if response.status_code != 202:
        raise BenchError(
            f"POST /auth/otp answered {response.status_code}: {response.get_data(as_text=True)}"
        )
