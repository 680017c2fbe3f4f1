"""Delivery (SPEC sections 5 and 7): ``DELIVERY`` modes, Postmark failures and their answers,
throttles given back after a failed send, and a store that is down.

Sends go over HTTP to :class:`FakePostmark` on loopback, through a ready connector with
``backoff=0`` so retries cost no time."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from flask_postmark_auth import PostmarkAuth, PostmarkConnector, signals
from flask_postmark_auth.delivery import SendJob
from flask_postmark_auth.errors import DeliveryFailedError
from flask_postmark_auth.messages import accepted_answer
from flask_postmark_auth.store.base import Member
from flask_postmark_auth.testing import FakeClock, FakePostmark, RecordedMessage, code_in, link_in
from flask_postmark_auth.tokens import LinkSigner
from tests.helpers import AppFactory

ANN = "ann@example.com"
BOB = "bob@example.com"
FROM = "Acme <login@acme.example>"
JSON = {"Accept": "application/json"}
ROUTE = {"otp": "/auth/otp", "magic_link": "/auth/magic-link"}


def same_answer(response: Any) -> Any:
    """A send's JSON answer less the number a link's waiting page shows (random)."""
    answer = dict(response.json)
    assert answer.pop("number", None) in (None, *range(10, 100))
    return answer


SENT = {
    "otp": {"status": "sent", "expires_in": 600},
    "magic_link": {"status": "sent", "expires_in": 900},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def app(make_app: AppFactory, connector: PostmarkConnector) -> Flask:
    return make_app(CONNECTORS={"default": connector})


def delivery_failures(app: Flask) -> tuple[list[dict[str, Any]], Any]:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        seen.append(kwargs)

    return seen, signals.delivery_failed.connected_to(receiver, app)


def assert_delivery_failed(response: TestResponse, *, as_json: bool) -> None:
    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    if as_json:
        assert response.json is not None
        assert response.json["error"] == "delivery_failed"
        assert isinstance(response.json["message"], str)
        assert set(response.json) == {"error", "message"}
    else:
        assert response.mimetype == "text/html"
        assert "could not send" in text
        assert "<form" in text  # the form is re-rendered so the user can try again


# -- sync ---------------------------------------------------------------------------------


def test_sync_success(app: Flask, fake_postmark: FakePostmark) -> None:
    client = app.test_client()
    response = client.post("/auth/otp", json={"email": ANN})
    assert response.status_code == 202
    assert response.json == SENT["otp"]
    [message] = fake_postmark.messages
    assert message.endpoint == "/email"
    assert message.to == ANN
    assert message.from_ == FROM
    assert message.tag == "otp"
    assert message.track_opens is False
    assert message.track_links == "None"
    assert message.message_stream == "outbound"
    response = client.post("/auth/otp/verify", json={"email": ANN, "code": code_in(message)})
    assert response.status_code == 200


def test_transient_503_is_retried(app: Flask, fake_postmark: FakePostmark) -> None:
    fake_postmark.fail(503, times=1)
    response = app.test_client().post("/auth/magic-link", json={"email": ANN})
    assert response.status_code == 202
    assert response.json is not None
    assert {**response.json, "number": None} == {**SENT["magic_link"], "number": None}
    assert len(fake_postmark.requests) == 2
    [message] = fake_postmark.messages
    assert message.to == ANN
    assert app.test_client().post(link_in(message), json={}).status_code == 200


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
@pytest.mark.parametrize("method", ["otp", "magic_link"])
def test_persistent_503_answers_delivery_failed(
    app: Flask, fake_postmark: FakePostmark, method: str, as_json: bool
) -> None:
    fake_postmark.fail(503, times=4)  # the first attempt and its three retries
    client = app.test_client()
    seen, connected = delivery_failures(app)
    with connected:
        if as_json:
            response = client.post(ROUTE[method], json={"email": ANN})
        else:
            response = client.post(ROUTE[method], data={"email": ANN})
    assert_delivery_failed(response, as_json=as_json)
    assert len(fake_postmark.requests) == 4
    assert fake_postmark.messages == []
    assert [s["email"] for s in seen] == [ANN]


@pytest.mark.parametrize(
    "throttle",
    [{"RESEND_INTERVAL": 30}, {"EMAILS_PER_HOUR": 1, "RESEND_INTERVAL": 0}],
    ids=["resend-interval", "emails-per-hour"],
)
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
@pytest.mark.parametrize("method", ["otp", "magic_link"])
def test_failed_send_uses_up_no_throttle(
    make_app: AppFactory,
    connector: PostmarkConnector,
    fake_postmark: FakePostmark,
    method: str,
    as_json: bool,
    throttle: dict[str, int],
) -> None:
    app = make_app(CONNECTORS={"default": connector}, **throttle)
    client = app.test_client()

    def ask() -> TestResponse:
        if as_json:
            return client.post(ROUTE[method], json={"email": ANN})
        return client.post(ROUTE[method], data={"email": ANN})

    fake_postmark.fail(503, times=4)
    assert_delivery_failed(ask(), as_json=as_json)
    again = ask()  # at once, same address, same method: Postmark is back
    assert again.status_code == (202 if as_json else 303)
    [message] = fake_postmark.messages
    assert message.to == ANN
    # and the throttle is in force: this one is refused
    assert ask().status_code == 429
    assert len(fake_postmark.messages) == 1


def test_failed_send_leaves_no_usable_code(app: Flask, fake_postmark: FakePostmark) -> None:
    client = app.test_client()
    fake_postmark.fail(503, times=4)
    client.post("/auth/otp", json={"email": ANN})
    store = app.extensions["postmark_auth"].store
    assert store.get(f"otp:{ANN}") is None


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
def test_refused_connection_answers_delivery_failed(make_app: AppFactory, as_json: bool) -> None:
    closed = PostmarkConnector(
        "default",
        server_token="server-token",
        from_email=FROM,
        api_url=f"http://127.0.0.1:{free_port()}",
        backoff=0,
    )
    app = make_app(CONNECTORS={"default": closed}, RESEND_INTERVAL=30)
    client = app.test_client()
    try:
        if as_json:
            response = client.post("/auth/otp", json={"email": ANN})
        else:
            response = client.post("/auth/otp", data={"email": ANN})
        assert_delivery_failed(response, as_json=as_json)
        # no resend interval was used up: the same answer, not 429
        assert client.post("/auth/otp", json={"email": ANN}).status_code == 503
    finally:
        closed.close()


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
def test_waf_html_403_answers_delivery_failed(
    app: Flask, fake_postmark: FakePostmark, as_json: bool
) -> None:
    fake_postmark.fail_html(403)
    client = app.test_client()
    if as_json:
        response = client.post("/auth/magic-link", json={"email": ANN})
    else:
        response = client.post("/auth/magic-link", data={"email": ANN})
    assert_delivery_failed(response, as_json=as_json)
    assert "Access denied" not in response.get_data(as_text=True)  # the WAF page stays out
    assert len(fake_postmark.requests) == 1  # a 4xx is never retried


@pytest.mark.parametrize(
    ("fault", "requests"),
    [("bad-token", 1), ("unknown-stream", 1), ("dropped-connection", 4), ("http-500", 4)],
)
def test_service_failures_answer_delivery_failed(
    app: Flask, fake_postmark: FakePostmark, fault: str, requests: int
) -> None:
    if fault == "bad-token":
        fake_postmark.server_token = "another-token"
    elif fault == "unknown-stream":
        fake_postmark.streams.clear()
    elif fault == "dropped-connection":
        fake_postmark.drop_connection(times=4)
    else:
        fake_postmark.fail(500, times=4)
    seen, connected = delivery_failures(app)
    with connected:
        response = app.test_client().post("/auth/otp", json={"email": ANN})
    assert_delivery_failed(response, as_json=True)
    assert len(fake_postmark.requests) == requests
    assert len(seen) == 1
    assert "another-token" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "refuse",
    ["inactive-406", "invalid-recipient-300"],
)
@pytest.mark.parametrize("method", ["otp", "magic_link"])
def test_recipient_errors_answer_like_a_success(
    app: Flask, fake_postmark: FakePostmark, method: str, refuse: str
) -> None:
    client = app.test_client()
    success_json = client.post(ROUTE[method], json={"email": BOB})
    success_form = client.post(ROUTE[method], data={"email": "carl@example.com"})
    assert len(fake_postmark.messages) == 2
    seen, connected = delivery_failures(app)
    with connected:
        if refuse == "inactive-406":
            fake_postmark.inactive_recipients.update({ANN, "dan@example.com"})
            refused_json = client.post(ROUTE[method], json={"email": ANN})
            refused_form = client.post(ROUTE[method], data={"email": "Dan@Example.com"})
        else:
            fake_postmark.fail(422, 300, "Invalid 'To' address: 'ann@example.com'.", times=2)
            refused_json = client.post(ROUTE[method], json={"email": ANN})
            refused_form = client.post(ROUTE[method], data={"email": "dan@example.com"})
    assert len(fake_postmark.messages) == 2  # nothing more was accepted
    assert refused_json.status_code == success_json.status_code == 202
    assert same_answer(refused_json) == same_answer(success_json)
    assert refused_form.status_code == success_form.status_code == 303
    assert refused_form.headers["Location"] == success_form.headers["Location"]
    assert len(seen) == 2
    assert seen[0]["email"] == ANN
    assert seen[0]["purpose"] == method
    assert getattr(seen[0]["error"], "error_code", None) in (300, 406)


def test_inactive_recipient_uses_the_resend_interval_like_a_success(
    make_app: AppFactory, connector: PostmarkConnector, fake_postmark: FakePostmark
) -> None:
    client = make_app(CONNECTORS={"default": connector}, RESEND_INTERVAL=30).test_client()
    fake_postmark.inactive_recipients.add(ANN)
    assert client.post("/auth/otp", json={"email": ANN}).status_code == 202
    assert client.post("/auth/otp", json={"email": BOB}).status_code == 202
    refused = client.post("/auth/otp", json={"email": ANN})
    sent = client.post("/auth/otp", json={"email": BOB})
    assert refused.status_code == sent.status_code == 429
    assert refused.get_data() == sent.get_data()


# -- background ---------------------------------------------------------------------------


def test_background_answers_at_once_when_postmark_is_down(
    make_app: AppFactory,
    clock: FakeClock,
    connector: PostmarkConnector,
    fake_postmark: FakePostmark,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = PostmarkAuth(clock=clock)
    app = make_app(auth=auth, CONNECTORS={"default": connector}, DELIVERY="background")
    fake_postmark.fail(503, times=4)
    seen, connected = delivery_failures(app)
    caplog.set_level(logging.INFO, logger="flask_postmark_auth")
    with connected:
        response = app.test_client().post("/auth/otp", json={"email": ANN})
        assert response.status_code == 202
        assert response.json == SENT["otp"]
        assert auth.flush(timeout=10)
    assert len(fake_postmark.requests) == 4
    assert fake_postmark.messages == []
    assert [s["email"] for s in seen] == [ANN]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors
    assert any("failed" in r.getMessage() for r in errors)
    assert all(ANN not in r.getMessage() for r in caplog.records)  # addresses are masked


def test_background_flush_waits_for_pending_sends(
    make_app: AppFactory, clock: FakeClock, connector: PostmarkConnector
) -> None:
    auth = PostmarkAuth(clock=clock)
    app = make_app(auth=auth, CONNECTORS={"default": connector}, DELIVERY="background")
    release = threading.Event()
    delivered: list[RecordedMessage] = []

    def slow_postmark(path: str, payload: Any) -> Any:
        assert release.wait(10)
        answer = accepted_answer(path, payload)
        delivered.append(RecordedMessage.from_payload(path, payload, answer["MessageID"]))
        return answer

    connector.interceptor = slow_postmark
    client = app.test_client()
    response = client.post("/auth/otp", json={"email": ANN})
    assert response.status_code == 202  # answered while the send is still blocked
    assert delivered == []
    assert not auth.flush(timeout=0.05)  # still pending
    timer = threading.Timer(0.1, release.set)
    timer.start()
    try:
        assert auth.flush(timeout=10)
    finally:
        timer.cancel()
        release.set()
    assert [m.to for m in delivered] == [ANN]
    response = client.post("/auth/otp/verify", json={"email": ANN, "code": code_in(delivered[0])})
    assert response.status_code == 200


def test_background_success_delivers(
    make_app: AppFactory,
    clock: FakeClock,
    connector: PostmarkConnector,
    fake_postmark: FakePostmark,
) -> None:
    auth = PostmarkAuth(clock=clock)
    app = make_app(auth=auth, CONNECTORS={"default": connector}, DELIVERY="background")
    assert app.test_client().post("/auth/magic-link", json={"email": ANN}).status_code == 202
    assert auth.flush(timeout=10)
    [message] = fake_postmark.messages
    assert message.to == ANN


# -- a callable -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["otp", "magic_link"])
def test_callable_delivery_gets_a_portable_send_job(
    make_app: AppFactory,
    connector: PostmarkConnector,
    fake_postmark: FakePostmark,
    method: str,
) -> None:
    jobs: list[SendJob] = []
    app = make_app(CONNECTORS={"default": connector}, DELIVERY=jobs.append)
    client = app.test_client()
    response = client.post(ROUTE[method], json={"email": ANN})
    assert response.status_code == 202
    assert fake_postmark.requests == []  # nothing sent yet: the queue has it
    [job] = jobs
    assert isinstance(job, SendJob)
    assert job.recipient == ANN
    assert job.connector == "default"
    wire = json.dumps(job.to_dict())  # JSON-serialisable
    again = SendJob.from_dict(json.loads(wire))
    assert again == job
    # What to give back comes back as store names: the mailbox's quota and resend wait
    # as members of its group again (a Redis store keeps them in one hash).
    assert [type(key) for key in again.release_unhit] == [type(k) for k in job.release_unhit]
    assert [type(key) for key in again.release_delete] == [type(k) for k in job.release_delete]
    assert any(isinstance(key, Member) for key in again.release_unhit + again.release_delete)
    # later, in a worker: run it inside an app context
    with app.app_context():
        app.extensions["postmark_auth"].service.run_job(again)
    [message] = fake_postmark.messages
    assert message.to == ANN
    assert message.tag == ("otp" if method == "otp" else "magic-link")
    if method == "otp":
        answer = client.post("/auth/otp/verify", json={"email": ANN, "code": code_in(message)})
    else:
        answer = client.post(link_in(message), json={})
    assert answer.status_code == 200


def test_callable_delivery_of_a_postmark_template_send(
    make_app: AppFactory, connector: PostmarkConnector, fake_postmark: FakePostmark
) -> None:
    jobs: list[SendJob] = []
    app = make_app(
        CONNECTORS={"default": connector}, DELIVERY=jobs.append, OTP_TEMPLATE="sign-in-code"
    )
    client = app.test_client()
    assert client.post("/auth/otp", json={"email": ANN}).status_code == 202
    again = SendJob.from_dict(json.loads(json.dumps(jobs[0].to_dict())))
    assert again == jobs[0]
    with app.app_context():
        app.extensions["postmark_auth"].service.run_job(again)
    [message] = fake_postmark.messages
    assert message.endpoint == "/email/withTemplate"
    assert message.template == "sign-in-code"
    model = message.template_model or {}
    assert model["email"] == ANN
    answer = client.post("/auth/otp/verify", json={"email": ANN, "code": model["code"]})
    assert answer.status_code == 200


def test_callable_job_failing_later_keeps_the_throttle(
    make_app: AppFactory, connector: PostmarkConnector, fake_postmark: FakePostmark
) -> None:
    """Off the request path a failed send gives nothing back: only an address that gets
    mail can fail so, and giving back would tell it apart (tests/test_attacks.py)."""
    jobs: list[SendJob] = []
    app = make_app(CONNECTORS={"default": connector}, DELIVERY=jobs.append, RESEND_INTERVAL=30)
    client = app.test_client()
    assert client.post("/auth/otp", json={"email": ANN}).status_code == 202
    assert client.post("/auth/otp", json={"email": ANN}).status_code == 429
    fake_postmark.fail(503, times=4)
    job = SendJob.from_dict(json.loads(json.dumps(jobs[0].to_dict())))
    with app.app_context(), pytest.raises(DeliveryFailedError):
        app.extensions["postmark_auth"].service.run_job(job)
    assert client.post("/auth/otp", json={"email": ANN}).status_code == 429


# -- the store is down ----------------------------------------------------------------------


def unreachable_store(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite-directory":
        folder = tmp_path / "auth.db"
        folder.mkdir()  # a directory where the database file should be
        return f"sqlite:///{folder}"
    if kind == "sqlite-under-a-file":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x")
        return f"sqlite:///{blocker}/auth.db"
    return f"redis://127.0.0.1:{free_port()}/0"


STORE_ROUTES = ["/auth/otp", "/auth/otp/verify", "/auth/magic-link", "link"]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
@pytest.mark.parametrize("route", STORE_ROUTES)
@pytest.mark.parametrize("kind", ["sqlite-directory", "sqlite-under-a-file", "redis"])
def test_store_unavailable_answers_503(
    make_app: AppFactory, tmp_path: Path, kind: str, route: str, as_json: bool
) -> None:
    app = make_app(STORE=unreachable_store(kind, tmp_path))
    client = app.test_client()
    fields = {"email": ANN, "code": "123456"}
    path = "/auth/magic-link/not-a-real-token" if route == "link" else route
    response = client.post(path, json=fields) if as_json else client.post(path, data=fields)
    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "sqlite" not in text.lower()
    assert "redis" not in text.lower()
    if as_json:
        assert response.json is not None
        assert response.json["error"] == "store_unavailable"
        assert isinstance(response.json["message"], str)
    else:
        assert response.mimetype == "text/html"
        assert re.search(r"unavailable|try again", text, re.IGNORECASE)


@pytest.mark.parametrize("kind", ["sqlite-directory", "redis"])
def test_store_unavailable_on_the_confirm_page_and_login_still_renders(
    make_app: AppFactory, clock: FakeClock, tmp_path: Path, kind: str
) -> None:
    client = make_app(STORE=unreachable_store(kind, tmp_path)).test_client()
    # well signed, so checking it needs the store
    token = LinkSigner(["test-secret"], clock).dumps("some-nonce")
    response = client.get(f"/auth/magic-link/{token}", headers=JSON)
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["error"] == "store_unavailable"
    page = client.get(f"/auth/magic-link/{token}")
    assert page.status_code == 503
    assert "Traceback" not in page.get_data(as_text=True)
    assert client.get("/auth/login").status_code == 200
