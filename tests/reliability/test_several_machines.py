"""Several machines (issue 7, item 2; issue 12): two instances of the example app, separate
gunicorn processes on separate ports, sharing one store (each run under a key prefix or a
table of its own): one Redis, a three-master Redis Cluster, a Sentinel-watched master with
its replica (with a failover mid-sign-in), PostgreSQL and MariaDB. Whatever one instance
writes, the other sees: codes, links (and approvals from another device), throttles,
attempt counters, built-in users (so a ``signed_up`` flow fires once) and the dev outbox.

Every test runs once per backend of :data:`SHARED_BACKENDS`; another backend joins with one
entry there (a name and what turns the pytest config into its store URI, without prefix)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_postmark_auth.testing import FakePostmark, code_in, link_in
from support import redis_server, sql_servers
from support.processes import (
    GunicornApp,
    Visitor,
    app_env,
    as_mail,
    count_mail,
    mail_to,
)
from support.redis_server import delete_prefix, unique_prefix, with_prefix

pytestmark = [pytest.mark.reliability, pytest.mark.redis]

#: Backend name -> the store URI (without prefix) of the session's server of that kind,
#: started on first use; skips, or fails under CI=true, when it cannot be had.
SHARED_BACKENDS: dict[str, Callable[[pytest.Config], str]] = {
    "redis": redis_server.server_url,
    "redis-cluster": lambda config: redis_server.cluster(config).url,
    "redis-sentinel": lambda config: redis_server.sentinel(config).url,
    "postgresql": lambda config: sql_servers.server_uri(config, "postgresql"),
    "mariadb": lambda config: sql_servers.server_uri(config, "mariadb"),
}


@contextmanager
def own_part(store_url: str) -> Iterator[str]:
    """``store_url`` with a key prefix (Redis) or a table (SQL) of its own, emptied after."""
    if store_url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "mysql", "mariadb"):
        table = sql_servers.unique_table()
        try:
            yield sql_servers.with_table(store_url, table)
        finally:
            sql_servers.drop_tables(store_url, table)
        return
    prefix = unique_prefix()
    try:
        yield with_prefix(store_url, prefix)
    finally:
        delete_prefix(store_url, prefix)


FLOWS = {
    "welcome": {
        "trigger": "signed_up",
        "steps": [
            {
                "to": "{{ user.email }}",
                "subject": "Welcome aboard",
                "text": "Welcome, {{ user.email }}.",
                "tag": "welcome",
            }
        ],
    },
    "new-sign-in": {
        "trigger": "signed_in",
        "steps": [
            {
                "to": "{{ user.email }}",
                "subject": "A new sign-in",
                "text": "You just signed in by {{ method }}.",
                "tag": "signed-in",
            }
        ],
    },
}


@pytest.fixture(scope="module", params=list(SHARED_BACKENDS))
def shared_backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend both instances share (see :data:`SHARED_BACKENDS`)."""
    return str(request.param)


@pytest.fixture(scope="module")
def store_url(request: pytest.FixtureRequest, shared_backend: str) -> str:
    """The store URI (without prefix) of the shared backend."""
    return SHARED_BACKENDS[shared_backend](request.config)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePostmark]:
    with FakePostmark() as server:
        yield server


class Pair:
    """Instances A and B of one deployment."""

    def __init__(self, a: GunicornApp, b: GunicornApp) -> None:
        self.a = a
        self.b = b


@contextmanager
def start_pair(
    name: str,
    store_url: str,
    folder: Path,
    fake: FakePostmark,
    settings: dict[str, object],
    extra: dict[str, str] | None = None,
) -> Iterator[Pair]:
    with own_part(store_url) as store:
        env = app_env(fake, {"STORE": store, "IP_REQUESTS_PER_HOUR": 100_000, **settings}, extra)
        with (
            GunicornApp(f"{name}-a", env, folder) as a,
            GunicornApp(f"{name}-b", env, folder) as b,
        ):
            yield Pair(a, b)


@pytest.fixture(scope="module")
def pair(
    store_url: str,
    shared_backend: str,
    fake: FakePostmark,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    """Two production-like instances: mail goes to FakePostmark; sign-in flows configured."""
    folder = tmp_path_factory.mktemp(f"machines-{shared_backend}")
    with start_pair(
        shared_backend, store_url, folder, fake, {"DEV_OUTBOX": False, "FLOWS": FLOWS}
    ) as both:
        yield both


def new_address(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def test_a_code_requested_on_a_verifies_on_b(pair: Pair, fake: FakePostmark) -> None:
    address = new_address("code")
    with Visitor(pair.a.url) as on_a, Visitor(pair.b.url) as on_b:
        assert on_a.post("/auth/otp", {"email": address}).status_code == 202
        code = code_in(mail_to(fake, address, "otp"))
        signed_in = on_b.post("/auth/otp/verify", {"email": address, "code": code})
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["email"] == address
        assert on_b.get("/account").status_code == 200
        again = on_a.post("/auth/otp/verify", {"email": address, "code": code})
        assert again.status_code == 400
        assert again.json() == {
            "error": "invalid_code",
            "message": again.json()["message"],
            "attempts_left": 0,
        }


def test_a_link_sent_by_a_is_consumed_on_b_then_refused_on_a(
    pair: Pair, fake: FakePostmark
) -> None:
    address = new_address("link")
    with Visitor(pair.a.url) as on_a, Visitor(pair.b.url) as on_b:
        assert on_a.post("/auth/magic-link", {"email": address}).status_code == 202
        link = link_in(mail_to(fake, address, "magic-link"))
        # The confirm page names the account and changes nothing.
        assert on_a.get(link).json() == {
            "valid": True,
            "email": address,
            "same_device": True,
            "can_approve": False,
        }
        signed_in = on_b.post(link)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["email"] == address
        assert on_a.get(link).json() == {"valid": False}
        refused = on_a.post(link)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_link"


def test_a_laptop_waiting_on_a_is_approved_by_a_phone_on_b(pair: Pair, fake: FakePostmark) -> None:
    address = new_address("device")
    with Visitor(pair.a.url) as laptop, Visitor(pair.b.url) as phone:
        asked = laptop.post("/auth/magic-link", {"email": address, "next": "/account"})
        assert asked.status_code == 202
        number = asked.json()["number"]
        assert laptop.get("/auth/magic-link/status").status_code == 202
        link = link_in(mail_to(fake, address, "magic-link"))
        assert phone.get(link).json()["can_approve"] is True
        approved = phone.post(link, {"approve": "other_device", "number": number})
        assert approved.status_code == 200, approved.text
        assert approved.json() == {"status": "approved"}
        signed_in = laptop.get("/auth/magic-link/status")  # on A, which wrote nothing of it
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["email"] == address
        assert signed_in.json()["next"] == "/account"
        assert laptop.get("/auth/magic-link/status").status_code == 400  # once
        assert phone.post(link).status_code == 400  # the link is used up on both


def test_throttles_are_shared(pair: Pair, fake: FakePostmark) -> None:
    address = new_address("throttle")
    with Visitor(pair.a.url) as on_a, Visitor(pair.b.url) as on_b:
        assert on_a.post("/auth/otp", {"email": address}).status_code == 202
        refused = on_b.post("/auth/otp", {"email": address})
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
        # The interval is per method: a link may go, once.
        assert on_b.post("/auth/magic-link", {"email": address}).status_code == 202
        assert on_a.post("/auth/magic-link", {"email": address}).status_code == 429
    assert count_mail(fake, {address}) == 2


def test_wrong_guesses_split_across_a_and_b_exhaust_the_attempts(
    pair: Pair, fake: FakePostmark
) -> None:
    address = new_address("guess")
    with Visitor(pair.a.url) as on_a, Visitor(pair.b.url) as on_b:
        assert on_a.post("/auth/otp", {"email": address}).status_code == 202
        code = code_in(mail_to(fake, address, "otp"))
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        left = []
        for n in range(5):  # OTP_MAX_ATTEMPTS is 5
            visitor = on_a if n % 2 == 0 else on_b
            answer = visitor.post("/auth/otp/verify", {"email": address, "code": wrong})
            assert answer.status_code == 400
            left.append(answer.json()["attempts_left"])
        assert left == [4, 3, 2, 1, 0]
        for visitor in (on_b, on_a):  # the right code is void now, on both
            answer = visitor.post("/auth/otp/verify", {"email": address, "code": code})
            assert answer.status_code == 400
            assert answer.json()["attempts_left"] == 0


def test_signed_up_flow_fires_once_when_one_new_address_signs_in_on_a_then_b(
    pair: Pair, fake: FakePostmark
) -> None:
    address = new_address("newcomer")
    with Visitor(pair.a.url) as on_a, Visitor(pair.b.url) as on_b:
        assert on_a.post("/auth/otp", {"email": address}).status_code == 202
        code = code_in(mail_to(fake, address, "otp"))
        assert on_a.post("/auth/otp/verify", {"email": address, "code": code}).status_code == 200
        assert on_b.post("/auth/magic-link", {"email": address}).status_code == 202
        link = link_in(mail_to(fake, address, "magic-link"))
        assert on_b.post(link).status_code == 200
    assert count_mail(fake, {address}, "welcome") == 1
    assert count_mail(fake, {address}, "signed-in") == 2


def test_signed_up_flow_fires_once_when_a_and_b_sign_the_new_address_in_at_once(
    pair: Pair, fake: FakePostmark, shared_backend: str, report: Callable[[str], None]
) -> None:
    rounds = 6
    for _ in range(rounds):
        address = new_address("together")
        with Visitor(pair.a.url) as on_a, Visitor(pair.b.url) as on_b:
            assert on_a.post("/auth/otp", {"email": address}).status_code == 202
            assert on_b.post("/auth/magic-link", {"email": address}).status_code == 202
            code = code_in(mail_to(fake, address, "otp"))
            link = link_in(mail_to(fake, address, "magic-link"))
            barrier = threading.Barrier(2)

            def post(
                visitor: Visitor,
                path: str,
                body: dict[str, Any],
                barrier: threading.Barrier = barrier,
            ) -> requests.Response:
                barrier.wait(timeout=30)
                return visitor.post(path, body)

            with ThreadPoolExecutor(2) as pool:
                by_code = pool.submit(
                    post, on_a, "/auth/otp/verify", {"email": address, "code": code}
                )
                by_link = pool.submit(post, on_b, link, {})
                statuses = [by_code.result().status_code, by_link.result().status_code]
        assert statuses == [200, 200]
        assert count_mail(fake, {address}, "welcome") == 1
        assert count_mail(fake, {address}, "signed-in") == 2
    report(
        f"several machines ({shared_backend}): {rounds} new addresses signed in on A and B "
        "at the same moment: "
        "one welcome (signed_up) email each, two signed_in emails each"
    )


def test_the_dev_outbox_shows_a_message_once(
    store_url: str, fake: FakePostmark, tmp_path: Path
) -> None:
    """Both instances in debug mode (FLASK_DEBUG=1, the only way to be allowed the outbox
    outside testing) record mail in the shared store instead of sending it."""
    settings: dict[str, object] = {"DEV_OUTBOX": True}
    with start_pair("outbox", store_url, tmp_path, fake, settings, {"FLASK_DEBUG": "1"}) as pair:
        a_code, b_link = new_address("outbox-code"), new_address("outbox-link")
        before = len(fake.messages)
        with Visitor(pair.a.url) as on_a, Visitor(pair.b.url) as on_b:
            assert on_a.post("/auth/otp", {"email": a_code}).status_code == 202
            assert on_b.post("/auth/magic-link", {"email": b_link}).status_code == 202
            seen_on_a = on_a.get("/auth/dev/outbox").json()["messages"]
            seen_on_b = on_b.get("/auth/dev/outbox").json()["messages"]
            assert seen_on_a == seen_on_b
            assert [m["to"] for m in seen_on_b] == [b_link, a_code]  # newest first, once each
            assert [m["tag"] for m in seen_on_b] == ["magic-link", "otp"]
            code = code_in(as_mail(seen_on_b[1]))
            assert (
                on_b.post("/auth/otp/verify", {"email": a_code, "code": code}).status_code == 200
            )
            assert on_a.post(link_in(as_mail(seen_on_a[0]))).status_code == 200
            assert on_b.post("/auth/dev/outbox/clear").json() == {"status": "cleared"}
            assert on_a.get("/auth/dev/outbox").json() == {"messages": []}
        assert len(fake.messages) == before  # nothing went to "Postmark"


def post_until_answered(visitor: Visitor, path: str, body: dict[str, Any]) -> requests.Response:
    """POST until the answer is not 503 ``store_unavailable`` (a failover settling), for at
    most 20 s."""
    deadline = time.monotonic() + 20
    while True:
        answer = visitor.post(path, body)
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        assert answer.json()["error"] == "store_unavailable"
        time.sleep(0.2)


@pytest.mark.parametrize("shared_backend", ["redis-sentinel"], indirect=True)
def test_a_sign_in_asked_on_a_before_a_failover_finishes_on_b_after_it_once(
    pair: Pair, fake: FakePostmark, request: pytest.FixtureRequest
) -> None:
    """A code and a link asked on A, then the replica promoted: B (whose connections went to
    the old master) signs in with them on the new master, and neither works a second time."""
    sentinel = redis_server.sentinel(request.config)
    by_code, by_link = new_address("failover-code"), new_address("failover-link")
    with Visitor(pair.a.url) as on_a, Visitor(pair.b.url) as on_b:
        for visitor in (on_a, on_b):  # both instances hold connections to the master
            assert visitor.post("/auth/otp", {"email": new_address("warm")}).status_code == 202
        assert on_a.post("/auth/otp", {"email": by_code}).status_code == 202
        assert on_a.post("/auth/magic-link", {"email": by_link}).status_code == 202
        code = code_in(mail_to(fake, by_code, "otp"))
        link = link_in(mail_to(fake, by_link, "magic-link"))
        old = sentinel.master_port()
        assert sentinel.failover() != old
        signed_in = post_until_answered(on_b, "/auth/otp/verify", {"email": by_code, "code": code})
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["email"] == by_code
        assert post_until_answered(on_b, link, {}).status_code == 200
        again = post_until_answered(on_a, "/auth/otp/verify", {"email": by_code, "code": code})
        assert again.status_code == 400
        assert post_until_answered(on_a, link, {}).json()["error"] == "invalid_link"
    sentinel.wait_ready()
