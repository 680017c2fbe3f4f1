"""Many workers, one machine (issue 7, item 1): the example app under gunicorn with 4 sync
workers on the default store (SQLite, a file of this run), signed into over real HTTP by 20
client threads, with sign-in mail going to a FakePostmark in this process."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from flask_postmark_auth.testing import FakePostmark, code_in, link_in
from support.processes import GunicornApp, Visitor, app_env, count_mail, mail_to

pytestmark = pytest.mark.reliability

WORKERS = 4
CLIENTS = 20
SIGN_INS = 500


def settings(folder: Path, **more: object) -> dict[str, object]:
    return {
        "STORE": f"sqlite:///{folder / 'auth.db'}",
        "DEV_OUTBOX": False,
        "RESEND_INTERVAL": 30,
        "EMAILS_PER_HOUR": 10,
        **more,
    }


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePostmark]:
    with FakePostmark() as server:
        yield server


@pytest.fixture(scope="module")
def server(fake: FakePostmark, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornApp]:
    """The example app, 4 workers, an IP limit no test here reaches."""
    folder = tmp_path_factory.mktemp("four-workers")
    env = app_env(fake, settings(folder, IP_REQUESTS_PER_HOUR=1_000_000))
    with GunicornApp("four-workers", env, folder, workers=WORKERS) as app:
        yield app


def run_id() -> str:
    return uuid.uuid4().hex[:8]


def sign_in(base_url: str, fake: FakePostmark, address: str, method: str) -> None:
    """One full sign-in by a new visitor, then the same code or link once more (refused)."""
    with Visitor(base_url) as visitor:
        if method == "otp":
            sent = visitor.post("/auth/otp", {"email": address})
            assert sent.status_code == 202, (sent.status_code, sent.text[:300])
            body = {"email": address, "code": code_in(mail_to(fake, address, "otp"))}
            path, refusal = "/auth/otp/verify", "invalid_code"
        else:
            sent = visitor.post("/auth/magic-link", {"email": address})
            assert sent.status_code == 202, (sent.status_code, sent.text[:300])
            body = {}
            path, refusal = link_in(mail_to(fake, address, "magic-link")), "invalid_link"
        signed_in = visitor.post(path, body)
        assert signed_in.status_code == 200, (signed_in.status_code, signed_in.text[:300])
        assert signed_in.json()["user"]["email"] == address
        # The session works on whichever worker answers next.
        account = visitor.get("/account")
        assert account.status_code == 200, account.status_code
        again = visitor.post(path, body)
        assert again.status_code == 400, (again.status_code, again.text[:300])
        assert again.json()["error"] == refusal


def test_500_sign_ins_by_20_clients_over_4_workers(
    server: GunicornApp, fake: FakePostmark, report: Callable[[str], None]
) -> None:
    run = run_id()
    jobs = [
        (f"many-{run}-{i}@example.com", "otp" if i % 2 == 0 else "magic_link")
        for i in range(SIGN_INS)
    ]
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS, thread_name_prefix="client") as pool:
        futures = [pool.submit(sign_in, server.url, fake, a, m) for a, m in jobs]
        errors = [f.exception() for f in futures]
    wall = time.monotonic() - started
    failed = [repr(e) for e in errors if e is not None]
    assert failed == [], f"{len(failed)} of {SIGN_INS} sign-ins failed, e.g. {failed[:3]}"
    addresses = {a for a, _ in jobs}
    assert count_mail(fake, addresses) == SIGN_INS  # one email per sign-in, no more
    served = Counter(int(entry[0]) for entry in server.access_log())
    assert len(served) == WORKERS, served  # every worker took part
    report(
        f"many workers: {SIGN_INS} sign-ins ({SIGN_INS // 2} by code, {SIGN_INS // 2} by link) "
        f"by {CLIENTS} clients over {WORKERS} gunicorn workers on SQLite in {wall:.1f} s = "
        f"{SIGN_INS / wall:.1f} sign-ins/s ({5 * SIGN_INS / wall:.0f} HTTP requests/s); "
        f"requests per worker {sorted(served.values())}; 0 errors, "
        f"{SIGN_INS} replays refused"
    )


def burst(
    visitors: list[Visitor], path: str, body: Mapping[str, object]
) -> list[requests.Response]:
    """Every visitor POSTs at once (released together by a barrier)."""
    barrier = threading.Barrier(len(visitors))

    def post(visitor: Visitor) -> requests.Response:
        barrier.wait(timeout=30)
        return visitor.post(path, body)

    with ThreadPoolExecutor(len(visitors)) as pool:
        return list(pool.map(post, visitors))


def test_a_burst_for_one_address_sends_one_email_across_workers(
    server: GunicornApp, fake: FakePostmark, report: Callable[[str], None]
) -> None:
    run = run_id()
    spread = []
    for round_ in range(6):
        address = f"burst-{run}-{round_}@example.com"
        method = "otp" if round_ % 2 == 0 else "magic-link"
        marker = f"burst={run}-{round_}"
        with ExitStack() as stack:
            visitors = [stack.enter_context(Visitor(server.url)) for _ in range(8)]
            answers = burst(visitors, f"/auth/{method}?{marker}", {"email": address})
        assert sorted(a.status_code for a in answers) == [202] + [429] * 7, [
            (a.status_code, a.text[:100]) for a in answers
        ]
        refused = [a for a in answers if a.status_code == 429]
        assert len({a.text for a in refused}) == 1  # the same body every time
        assert refused[0].json()["error"] == "rate_limited"
        waits = [int(a.headers["Retry-After"]) for a in refused]
        assert all(1 <= wait <= 30 for wait in waits), waits
        assert count_mail(fake, {address}) == 1
        deadline = time.monotonic() + 5  # gunicorn logs a request just after answering it
        while time.monotonic() < deadline and len(server.worker_pids(marker)) < 2:
            time.sleep(0.02)
        spread.append(len(server.worker_pids(marker)))
    # The eight requests of a burst were answered by several workers.
    assert max(spread) >= 2, spread
    report(
        f"many workers: 6 bursts of 8 simultaneous requests for one address (RESEND_INTERVAL "
        f"30): 1 accepted and 7 answered 429 each time; workers per burst {spread}"
    )


def test_a_code_or_link_raced_across_workers_signs_in_once(
    server: GunicornApp, fake: FakePostmark
) -> None:
    run = run_id()
    for round_ in range(8):
        address = f"race-{run}-{round_}@example.com"
        with Visitor(server.url) as requester:
            if round_ % 2 == 0:
                assert requester.post("/auth/otp", {"email": address}).status_code == 202
                code = code_in(mail_to(fake, address, "otp"))
                path, body = "/auth/otp/verify", {"email": address, "code": code}
            else:
                assert requester.post("/auth/magic-link", {"email": address}).status_code == 202
                path, body = link_in(mail_to(fake, address, "magic-link")), {}
        with ExitStack() as stack:
            visitors = [stack.enter_context(Visitor(server.url)) for _ in range(6)]
            answers = burst(visitors, path, body)
        assert sorted(a.status_code for a in answers) == [200] + [400] * 5, [
            (a.status_code, a.text[:100]) for a in answers
        ]


def test_the_ip_limit_holds_across_workers(
    fake: FakePostmark, tmp_path: Path, report: Callable[[str], None]
) -> None:
    limit, clients, per_client = 40, 12, 10
    env = app_env(fake, settings(tmp_path, IP_REQUESTS_PER_HOUR=limit))
    run = run_id()

    def client(index: int, url: str) -> list[requests.Response]:
        with Visitor(url) as visitor:
            return [
                visitor.post(
                    "/auth/otp" if n % 2 == 0 else "/auth/magic-link",
                    {"email": f"ip-{run}-{index}-{n}@example.com"},
                )
                for n in range(per_client)
            ]

    with GunicornApp("ip-limit", env, tmp_path, workers=WORKERS) as app:
        with ThreadPoolExecutor(clients) as pool:
            answers = [
                r for batch in pool.map(client, range(clients), [app.url] * clients) for r in batch
            ]
        pids = app.worker_pids()
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {202: limit, 429: clients * per_client - limit}, statuses
    refused = [a for a in answers if a.status_code == 429]
    assert len({a.text for a in refused}) == 1
    assert json.loads(refused[0].text)["error"] == "rate_limited"
    addresses = {
        f"ip-{run}-{i}-{n}@example.com" for i in range(clients) for n in range(per_client)
    }
    assert count_mail(fake, addresses) == limit
    assert len(pids) >= 2, pids
    report(
        f"many workers: IP limit {limit}/hour, {clients * per_client} sign-in emails asked for "
        f"from one IP by {clients} clients over {len(pids)} workers: {statuses[202]} accepted, "
        f"{statuses[429]} answered 429 (one body), {limit} emails sent"
    )
