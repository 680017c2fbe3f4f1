"""Each security property of the sign-in (SPEC section 7), each with a test that fails
without it. Store-dependent properties run on every backend (memory, SQLite, Redis)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_postmark_auth import PostmarkAuth, signals
from flask_postmark_auth.testing import (
    FakeClock,
    RecordedMessage,
    code_in,
    link_in,
    record_messages,
)
from flask_postmark_auth.tokens import LinkSigner, _code_key, code_hash
from tests.helpers import AppFactory

EMAIL = "ann@example.com"


def request_code(client: FlaskClient, email: str = EMAIL) -> Any:
    return client.post("/auth/otp", json={"email": email})


def verify(client: FlaskClient, code: str, email: str = EMAIL) -> Any:
    return client.post("/auth/otp/verify", json={"email": email, "code": code})


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


@pytest.fixture
def backend_app(make_app: AppFactory, store_uri: str) -> Flask:
    return make_app(STORE=store_uri, RESEND_INTERVAL=0, EMAILS_PER_HOUR=1000)


# -- codes ----------------------------------------------------------------------------------


def test_code_is_kept_only_as_a_keyed_hash(backend_app: Flask) -> None:
    client = backend_app.test_client()
    with record_messages(backend_app) as outbox:
        request_code(client)
    code = code_in(outbox[0])
    raw = backend_app.extensions["postmark_auth"].store.get(f"otp:{EMAIL}")
    assert raw is not None
    assert code not in raw
    digest, bar, target = raw.partition("|")
    assert (len(digest), bar, target) == (22, "|", "")
    assert digest == code_hash(backend_app.config["SECRET_KEY"], EMAIL, code)


def test_used_code_is_rejected(backend_app: Flask) -> None:
    client = backend_app.test_client()
    with record_messages(backend_app) as outbox:
        request_code(client)
    code = code_in(outbox[0])
    assert verify(client, code).status_code == 200
    client.post("/auth/logout", json={})
    response = verify(client, code)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_code"


def test_code_dies_after_max_wrong_guesses(backend_app: Flask) -> None:
    client = backend_app.test_client()
    with record_messages(backend_app) as outbox:
        request_code(client)
    code = code_in(outbox[0])
    lefts = [verify(client, other_code(code)).json["attempts_left"] for _ in range(5)]
    assert lefts == [4, 3, 2, 1, 0]
    response = verify(client, code)  # the right code, too late
    assert response.status_code == 400
    assert response.json["attempts_left"] == 0


def test_a_new_code_gets_its_attempts_afresh(backend_app: Flask) -> None:
    client = backend_app.test_client()
    with record_messages(backend_app) as outbox:
        request_code(client)
        first = code_in(outbox[0])
        assert [verify(client, other_code(first)).json["attempts_left"] for _ in range(3)] == [
            4,
            3,
            2,
        ]
        request_code(client)
    second = code_in(outbox[1])
    assert verify(client, other_code(second)).json["attempts_left"] == 4
    assert verify(client, second).status_code == 200
    # Signing in leaves no counter of the code behind.
    store = backend_app.extensions["postmark_auth"].store
    assert store.get(f"otp-tries:{EMAIL}") is None
    assert store.get(f"otp-guesses:{EMAIL}") is None


def test_a_code_stored_by_an_earlier_release_still_signs_in(backend_app: Flask) -> None:
    """Records of earlier releases (JSON, the hash in 64 hex digits) pending at an upgrade
    keep working until they expire."""
    client = backend_app.test_client()
    key = _code_key(b"test-secret")
    digest = hmac.new(key, f"{EMAIL}\x00123456".encode(), hashlib.sha256).hexdigest()
    record = {"id": "an-earlier-nonce", "hash": digest, "next": "/after"}
    backend_app.extensions["postmark_auth"].store.set(f"otp:{EMAIL}", json.dumps(record), 600)
    assert verify(client, "654321").json["attempts_left"] == 4
    response = verify(client, "123456")
    assert response.status_code == 200
    assert response.json["next"] == "/after"


def test_new_code_voids_the_old_one(backend_app: Flask) -> None:
    client = backend_app.test_client()
    with record_messages(backend_app) as outbox:
        request_code(client)
        request_code(client)
    first, second = code_in(outbox[0]), code_in(outbox[1])
    if first != second:
        assert verify(client, first).status_code == 400
    assert verify(client, second).status_code == 200


def test_code_expires_after_its_ttl(
    make_app: AppFactory, clock: FakeClock, store_uri: str
) -> None:
    app = make_app(STORE=store_uri, OTP_TTL=120)
    client = app.test_client()
    with record_messages(app) as outbox:
        request_code(client)
    clock.advance(121)
    assert verify(client, code_in(outbox[0])).status_code == 400


def test_code_works_just_before_its_ttl(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app(OTP_TTL=120)
    client = app.test_client()
    with record_messages(app) as outbox:
        request_code(client)
    clock.advance(119)
    assert verify(client, code_in(outbox[0])).status_code == 200


def test_codes_come_from_secrets_and_have_the_configured_length(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    import secrets as secrets_module

    real = secrets_module.randbelow

    def spy(n: int) -> int:
        calls.append(n)
        return real(n)

    monkeypatch.setattr("flask_postmark_auth.tokens.secrets.randbelow", spy)
    app = make_app(OTP_LENGTH=8)
    with record_messages(app) as outbox:
        request_code(app.test_client())
    assert calls == [10**8]
    assert len(code_in(outbox[0])) == 8


def test_code_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch, app: Flask) -> None:
    used: list[bool] = []
    import hmac

    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        used.append(True)
        return real(a, b)

    monkeypatch.setattr("flask_postmark_auth.tokens.hmac.compare_digest", spy)
    client = app.test_client()
    with record_messages(app) as outbox:
        request_code(client)
    verify(client, code_in(outbox[0]))
    assert used


@pytest.mark.parametrize("kind", ["code", "link"])
def test_eight_threads_with_one_secret_sign_in_exactly_once(
    make_app: AppFactory, store_uri: str, kind: str
) -> None:
    app = make_app(
        STORE=store_uri, RESEND_INTERVAL=0, EMAILS_PER_HOUR=1000, IP_REQUESTS_PER_HOUR=10_000
    )
    for round_ in range(25):
        email = f"race{round_}@example.com"
        with record_messages(app) as outbox:
            if kind == "code":
                request_code(app.test_client(), email)
            else:
                app.test_client().post("/auth/magic-link", json={"email": email})
        message = outbox[0]
        barrier = threading.Barrier(8)
        statuses: list[int] = []
        lock = threading.Lock()

        def attempt(
            message: RecordedMessage = message,
            email: str = email,
            barrier: threading.Barrier = barrier,
            statuses: list[int] = statuses,
            lock: threading.Lock = lock,
        ) -> None:
            client = app.test_client()
            barrier.wait()
            if kind == "code":
                status = verify(client, code_in(message), email).status_code
            else:
                status = client.post(link_in(message), json={}).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [200] + [400] * 7, (round_, statuses)


def test_concurrent_wrong_guesses_cannot_exceed_the_attempt_limit(
    make_app: AppFactory, store_uri: str
) -> None:
    app = make_app(STORE=store_uri, OTP_MAX_ATTEMPTS=3)
    with record_messages(app) as outbox:
        request_code(app.test_client())
    code = code_in(outbox[0])
    barrier = threading.Barrier(8)

    def guess() -> None:
        barrier.wait()
        verify(app.test_client(), other_code(code))

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert verify(app.test_client(), code).status_code == 400


# -- links ----------------------------------------------------------------------------------


def send_link(app: Flask, email: str = EMAIL, **extra: Any) -> str:
    with record_messages(app) as outbox:
        app.test_client().post("/auth/magic-link", json={"email": email, **extra})
    return link_in(outbox[0])


def test_link_get_changes_nothing(backend_app: Flask) -> None:
    path = send_link(backend_app)
    client = backend_app.test_client()
    for _ in range(3):  # a scanner may follow a link several times
        assert client.get(path).status_code == 200
    response = client.post(path, json={})
    assert response.status_code == 200


def test_link_works_once(backend_app: Flask) -> None:
    path = send_link(backend_app)
    client = backend_app.test_client()
    assert client.post(path, json={}).status_code == 200
    response = backend_app.test_client().post(path, json={})
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_link"


def test_link_expires(make_app: AppFactory, clock: FakeClock, store_uri: str) -> None:
    app = make_app(STORE=store_uri)
    path = send_link(app)
    clock.advance(901)
    response = app.test_client().post(path, json={})
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_link"


def test_expired_link_sends_no_new_email(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app()
    path = send_link(app)
    clock.advance(901)
    with record_messages(app) as outbox:
        app.test_client().get(path)
        app.test_client().post(path, json={})
    assert outbox == []


def bodies(responses: list[Any]) -> set[str]:
    return {f"{r.status_code} {r.get_data(as_text=True)}" for r in responses}


def test_tampered_foreign_expired_and_used_links_fail_alike(
    make_app: AppFactory, clock: FakeClock
) -> None:
    app = make_app()
    used = send_link(app)
    app.test_client().post(used, json={})
    fresh = send_link(app, "bob@example.com")
    prefix, token = fresh.rsplit("/", 1)
    tampered = f"{prefix}/{token[:-2]}{'AA' if token[-2:] != 'AA' else 'BB'}"
    foreign = f"{prefix}/{LinkSigner(['another-secret'], clock).dumps('nonce')}"
    expired = send_link(app, "cy@example.com")
    clock.advance(901)
    answers = [app.test_client().post(p, json={}) for p in (used, tampered, foreign, expired)]
    assert bodies(answers) == {
        '400 {"error":"invalid_link","message":"This sign-in link is invalid, expired or '
        'already used."}\n'
    }


def test_secret_key_rotation_keeps_links_and_codes_working(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    path = send_link(app)
    with record_messages(app) as outbox:
        request_code(client, "bob@example.com")
    app.config["SECRET_KEY_FALLBACKS"] = [app.config["SECRET_KEY"]]
    app.config["SECRET_KEY"] = "the-new-secret"
    assert client.post(path, json={}).status_code == 200
    client.post("/auth/logout", json={})
    assert verify(client, code_in(outbox[0]), "bob@example.com").status_code == 200
    # Without the fallback, the old link is foreign.
    old = send_link(app, "cy@example.com")
    app.config["SECRET_KEY_FALLBACKS"] = []
    app.config["SECRET_KEY"] = "yet-another"
    assert client.post(old, json={}).status_code == 400


def test_next_is_kept_server_side_not_in_the_link(app: Flask) -> None:
    path = send_link(app, next="/private-destination")
    assert "private-destination" not in path
    response = app.test_client().post(path, json={})
    assert response.json is not None
    assert response.json["next"] == "/private-destination"


def test_link_pages_send_no_referrer_and_no_store(app: Flask) -> None:
    path = send_link(app)
    client = app.test_client()
    for response in (client.get(path), client.post(path, json={}), client.get("/auth/login")):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"


# -- enumeration ----------------------------------------------------------------------------


def users_app(make_app: AppFactory, clock: FakeClock, allow_signup: bool) -> Flask:
    from flask_login import UserMixin

    class User(UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
        def __init__(self, email: str, active: bool) -> None:
            self.id, self.email, self._active = email, email, active

        @property
        def is_active(self) -> bool:
            return self._active

    people = {
        "known@example.com": User("known@example.com", True),
        "inactive@example.com": User("inactive@example.com", False),
    }
    auth = PostmarkAuth(clock=clock)
    auth.find_user(people.get)
    auth.create_user(lambda email: User(email, True))
    return make_app(auth=auth, ALLOW_SIGNUP=allow_signup)


@pytest.mark.parametrize("allow_signup", [True, False])
@pytest.mark.parametrize("route", ["/auth/otp", "/auth/magic-link"])
@pytest.mark.parametrize("as_json", [True, False])
def test_same_answer_for_known_unknown_and_inactive(
    make_app: AppFactory, clock: FakeClock, allow_signup: bool, route: str, as_json: bool
) -> None:
    app = users_app(make_app, clock, allow_signup)
    answers = []
    with record_messages(app) as outbox:
        for email in ("known@example.com", "unknown@example.com", "inactive@example.com"):
            client = app.test_client()
            if as_json:
                response = client.post(route, json={"email": email})
            else:
                response = client.post(route, data={"email": email})
            body = response.get_json(silent=True)
            if isinstance(body, dict):  # the number a link's waiting page shows is random
                assert body.pop("number", None) in (None, *range(10, 100))
            # The browser that asked for a link sees its status pending alike, whoever the
            # address belongs to (a link nobody gets stays until it expires).
            status = client.get("/auth/magic-link/status", headers={"Accept": "application/json"})
            answers.append(
                (
                    response.status_code,
                    response.headers.get("Location"),
                    repr(body) if as_json else response.get_data(),
                    status.status_code,
                    status.get_data(),
                )
            )
    assert len(set(answers)) == 1
    if route == "/auth/magic-link":
        assert answers[0][3] == 202
    sent_to = {m.to for m in outbox}
    assert "inactive@example.com" not in sent_to
    assert ("unknown@example.com" in sent_to) is allow_signup


@pytest.mark.parametrize("allow_signup", [True, False])
def test_wrong_code_answers_alike_for_known_and_unknown(
    make_app: AppFactory, clock: FakeClock, allow_signup: bool
) -> None:
    app = users_app(make_app, clock, allow_signup)
    answers = []
    for email in ("known@example.com", "unknown@example.com", "inactive@example.com"):
        client = app.test_client()
        request_code(client, email)
        response = verify(client, "000000", email)
        answers.append((response.status_code, response.get_data()))
    assert len(set(answers)) == 1


# -- throttles ------------------------------------------------------------------------------


def test_resend_interval_per_address_and_method(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app(RESEND_INTERVAL=30)
    client = app.test_client()
    with record_messages(app) as outbox:
        assert request_code(client).status_code == 202
        response = request_code(client)
        assert response.status_code == 429
        assert response.json["error"] == "rate_limited"
        assert response.headers["Retry-After"] == "30"
        # another method is not held back by this one's interval
        assert client.post("/auth/magic-link", json={"email": EMAIL}).status_code == 202
        clock.advance(30)
        assert request_code(client).status_code == 202
    assert len(outbox) == 3


def test_rate_limited_body_is_the_same_whoever_owns_the_address(
    make_app: AppFactory, clock: FakeClock
) -> None:
    app = users_app(make_app, clock, allow_signup=False)
    answers = set()
    for email in ("known@example.com", "unknown@example.com"):
        client = app.test_client()
        request_code(client, email)
        response = request_code(client, email)
        answers.add((response.status_code, response.headers["Retry-After"], response.get_data()))
    assert len(answers) == 1


def test_emails_per_hour_counts_every_method(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app(RESEND_INTERVAL=0, EMAILS_PER_HOUR=3)
    client = app.test_client()
    assert request_code(client).status_code == 202
    assert client.post("/auth/magic-link", json={"email": EMAIL}).status_code == 202
    assert request_code(client).status_code == 202
    response = client.post("/auth/magic-link", json={"email": EMAIL})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) <= 3600
    assert request_code(client, "other@example.com").status_code == 202
    clock.advance(3600)
    assert request_code(client).status_code == 202


def test_ip_requests_per_hour_covers_every_sign_in_post(make_app: AppFactory) -> None:
    app = make_app(IP_REQUESTS_PER_HOUR=4, RESEND_INTERVAL=0)
    client = app.test_client()
    assert request_code(client, "a@example.com").status_code == 202
    assert verify(client, "000000", "a@example.com").status_code == 400
    assert client.post("/auth/magic-link", json={"email": "b@example.com"}).status_code == 202
    assert client.post("/auth/magic-link/bogus", json={}).status_code == 400
    response = request_code(client, "c@example.com")
    assert response.status_code == 429
    other_ip = app.test_client()
    response = other_ip.post(
        "/auth/otp", json={"email": "c@example.com"}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert response.status_code == 202


def test_throttles_are_shared_through_the_store(
    make_app: AppFactory, shared_store_uri: str
) -> None:
    """Two apps (two workers) on one store see one another's counts."""
    one = make_app(STORE=shared_store_uri, RESEND_INTERVAL=30)
    two = make_app(STORE=shared_store_uri, RESEND_INTERVAL=30)
    assert request_code(one.test_client()).status_code == 202
    assert request_code(two.test_client()).status_code == 429


# -- open redirects -------------------------------------------------------------------------

OPEN_REDIRECTS = [
    "https://evil.example",
    "//evil.example",
    "\\\\evil.example",
    " //evil.example",
    "/\\evil.example",
    "\t//evil.example",
    "https://host\\.evil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://localhost/wrong-scheme",
    "https://localhost@evil.example/",
    "https:evil.example",
    "/\r\nSet-Cookie: x=1",
    "/%0d%0aSet-Cookie:x=1",
    "///evil.example",
    "https://evil.example%2F@localhost/",
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_open_redirect_vectors_fall_back_to_login_redirect(app: Flask, target: str) -> None:
    client = app.test_client()
    with record_messages(app) as outbox:
        client.post(
            "/auth/otp", json={"email": EMAIL, "next": target}, base_url="https://localhost"
        )
    response = client.post(
        "/auth/otp/verify",
        data={"email": EMAIL, "code": code_in(outbox[0]), "next": target},
        base_url="https://localhost",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/account", "/a/b?c=d#e", "https://localhost/x"])
def test_safe_next_is_honoured(app: Flask, target: str) -> None:
    client = app.test_client()
    with record_messages(app) as outbox:
        client.post("/auth/otp", json={"email": EMAIL})
    response = client.post(
        "/auth/otp/verify",
        data={"email": EMAIL, "code": code_in(outbox[0]), "next": target},
        base_url="https://localhost",
    )
    assert response.headers["Location"] == target


def test_allowed_redirect_hosts(make_app: AppFactory) -> None:
    app = make_app(ALLOWED_REDIRECT_HOSTS=["app.example"])
    path = send_link(app, next="https://app.example/welcome")
    response = app.test_client().post(path, json={})
    assert response.json is not None
    assert response.json["next"] == "https://app.example/welcome"


# -- secrets stay out of logs ---------------------------------------------------------------


def test_codes_links_tokens_and_server_token_never_reach_the_logs(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "server-token-abcdef0123456789"
    app = make_app(SERVER_TOKEN=token, FROM_EMAIL="Acme <login@acme.example>")
    client = app.test_client()
    with record_messages(app) as outbox:
        request_code(client)
        client.post("/auth/magic-link", json={"email": "bob@example.com"})
    code, link = code_in(outbox[0]), link_in(outbox[1])
    verify(client, other_code(code))
    verify(client, code)
    client.post(link, json={})
    client.post(link, json={})
    text = caplog.text
    assert caplog.records  # something was logged
    for secret in (code, link, link.rsplit("/", 1)[1], token, EMAIL, "bob@example.com"):
        assert secret not in text
    assert "a***@example.com" in text


# -- tracking, tags, streams ----------------------------------------------------------------


def test_sign_in_mail_uses_its_connectors_stream_tag_and_no_tracking(
    make_app: AppFactory,
) -> None:
    app = make_app(
        CONNECTORS={
            "default": {
                "server_token": "t1",
                "from_email": "a@acme.example",
                "message_stream": "codes",
            },
            "links": {
                "server_token": "t2",
                "from_email": "b@acme.example",
                "message_stream": "links",
            },
        },
        MAGIC_LINK_CONNECTOR="links",
    )
    client = app.test_client()
    with record_messages(app) as outbox:
        request_code(client)
        client.post("/auth/magic-link", json={"email": EMAIL})
    otp, link = outbox
    assert (otp.message_stream, otp.tag, otp.from_) == ("codes", "otp", "a@acme.example")
    assert (link.message_stream, link.tag, link.from_) == ("links", "magic-link", "b@acme.example")
    for message in outbox:
        assert message.track_opens is False
        assert message.track_links == "None"


def test_postmark_template_alternative(make_app: AppFactory) -> None:
    app = make_app(OTP_TEMPLATE="sign-in-code", MAGIC_LINK_TEMPLATE=12345)
    client = app.test_client()
    with record_messages(app) as outbox:
        request_code(client)
        client.post("/auth/magic-link", json={"email": EMAIL})
    otp, link = outbox
    assert otp.template == "sign-in-code"
    assert otp.template_model is not None
    assert otp.template_model["expires_in_minutes"] == 10
    assert len(otp.template_model["code"]) == 6
    assert link.template == 12345
    assert link.template_model is not None
    assert "/auth/magic-link/" in link.template_model["link"]
    assert otp.track_links == "None"


def test_delivery_failed_signal_for_recipient_errors(make_app: AppFactory) -> None:
    app = make_app()
    failures: list[Any] = []

    def refuse(path: str, payload: Any) -> Any:
        from flask_postmark_auth.errors import InactiveRecipientError

        raise InactiveRecipientError(422, 406, "Inactive recipient.")

    app.extensions["postmark_auth"].connectors["default"].interceptor = refuse
    with signals.delivery_failed.connected_to(lambda s, **kw: failures.append(kw), app):
        response = request_code(app.test_client())
    assert response.status_code == 202  # exactly like a success
    assert len(failures) == 1
    assert failures[0]["email"] == EMAIL
