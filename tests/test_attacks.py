"""Attacks at the deployment edge (SPEC section 11), one group per attack, each reproduced as
an attacker would try it against a real deployment: a forged ``Host``, the app's own
collation, CSRF settings, sessions and ``SECRET_KEY``, timing, huge inputs, the mailer, odd
``next`` values, someone else's link, patient guessing, and a developer's dev outbox.

Every test here failed against the code before these defences landed.
"""

from __future__ import annotations

import logging
import statistics
import time
import unicodedata
from types import SimpleNamespace
from typing import Any, Literal

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from flask_login import current_user
from flask_wtf import CSRFProtect

from example_app import create_app
from flask_postmark_auth import ConfigurationError, PostmarkAuth, PostmarkConnector, signals
from flask_postmark_auth.messages import accepted_answers
from flask_postmark_auth.testing import (
    FakeClock,
    FakePostmark,
    RecordedMessage,
    code_in,
    link_in,
    record_messages,
)
from tests.helpers import STRONG_KEY, AppFactory, deployed_app

VICTIM = "ann@example.com"
ATTACKER = "mallory@example.net"
JSON = {"Accept": "application/json"}


def sent_to(outbox: list[RecordedMessage], address: str) -> list[RecordedMessage]:
    return [m for m in outbox if m.to == address]


# -- 1. Host-header poisoning ---------------------------------------------------------------


def test_host_header_poisoning_cannot_pick_the_links_host(make_app: AppFactory) -> None:
    app = make_app(BASE_URL="https://app.acme.example")
    client = app.test_client()
    with record_messages(app) as outbox:
        response = client.post(
            "/auth/magic-link",
            json={"email": VICTIM},
            headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
        )
    assert response.status_code == 202
    [mail] = outbox
    assert "evil.example" not in (mail.text_body or "") + (mail.html_body or "")
    assert "https://app.acme.example/auth/magic-link/" in (mail.text_body or "")
    assert mail.subject is not None
    assert "evil.example" not in mail.subject


# Flask before 3.1 warns of (and 404s) a Host that is not SERVER_NAME's.
@pytest.mark.filterwarnings("ignore:Current server name:UserWarning")
def test_host_header_poisoning_cannot_store_a_foreign_next(make_app: AppFactory) -> None:
    app = make_app(config={"SERVER_NAME": "app.acme.example"})
    client = app.test_client()
    with record_messages(app) as outbox:
        asked = client.post(
            "/auth/otp",
            json={"email": VICTIM, "next": "http://evil.example/phish"},
            base_url="http://evil.example",
        )
    if asked.status_code == 404:
        return  # Flask before 3.1 routes only SERVER_NAME's host: no way in at all
    assert asked.status_code == 202
    signed_in = client.post(
        "/auth/otp/verify",
        json={"email": VICTIM, "code": code_in(outbox[0])},
        base_url="http://app.acme.example",
    )
    assert signed_in.status_code == 200
    assert signed_in.json is not None
    assert signed_in.json["next"] == "/"


def test_host_header_poisoning_cannot_name_the_app_in_the_subject(make_app: AppFactory) -> None:
    app = make_app(
        SERVER_TOKEN="server-token",
        FROM_EMAIL="login@acme.example",  # no display name to name the app by
        BASE_URL="https://app.acme.example",
    )
    client = app.test_client()
    with record_messages(app) as outbox:
        client.post("/auth/otp", json={"email": VICTIM}, base_url="http://locked.example")
    assert outbox[0].subject == "Your sign-in code for app.acme.example"


def test_app_name_setting_names_the_app(make_app: AppFactory) -> None:
    app = make_app(APP_NAME="Acme Cloud", BASE_URL="https://app.acme.example")
    with record_messages(app) as outbox:
        app.test_client().post("/auth/otp", json={"email": VICTIM})
    assert outbox[0].subject == "Your sign-in code for Acme Cloud"


def test_production_without_a_canonical_url_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="POSTMARK_AUTH_BASE_URL"):
        PostmarkAuth(deployed_app())


def test_server_name_serves_as_the_canonical_url() -> None:
    app = deployed_app(SERVER_NAME="app.acme.example", PREFERRED_URL_SCHEME="https")
    PostmarkAuth(app)
    assert app.extensions["postmark_auth"].settings.base_url == "https://app.acme.example"


@pytest.mark.parametrize(
    "value",
    [
        "app.acme.example",
        "ftp://acme.example",
        "https://",
        "https://a.example/?x=1",
        "https://user@a.example",
        "https://a.example:evil",
        "https://a.example/\r\nX: 1",
    ],
)
def test_a_bad_canonical_url_refuses_to_start(value: str) -> None:
    with pytest.raises(ConfigurationError, match="POSTMARK_AUTH_BASE_URL"):
        PostmarkAuth(deployed_app(POSTMARK_AUTH_BASE_URL=value))


def test_canonical_url_with_a_path_prefix(make_app: AppFactory) -> None:
    app = make_app(BASE_URL="https://acme.example/app/")
    with record_messages(app) as outbox:
        app.test_client().post("/auth/magic-link", json={"email": VICTIM})
    assert "https://acme.example/app/auth/magic-link/" in (outbox[0].text_body or "")


# -- 2. Look-alike address takeover -----------------------------------------------------------


class FoldingUsers:
    """An app whose database compares addresses accent-insensitively, as MySQL's default
    collation does: ``straße`` finds ``strasse``."""

    def __init__(self) -> None:
        self.users: dict[str, Any] = {}

    @staticmethod
    def fold(email: str) -> str:
        return email.replace("ß", "ss")

    def find(self, email: str) -> Any:
        return self.users.get(self.fold(email))

    def create(self, email: str) -> Any:
        from flask_login import UserMixin

        class User(UserMixin):  # type: ignore[misc]
            def __init__(self, address: str) -> None:
                self.id = address
                self.email = address

        # A get-or-create on the folded key, as the README's unique column would force.
        return self.users.setdefault(self.fold(email), User(email))


@pytest.fixture
def folding(make_app: AppFactory) -> tuple[Flask, FoldingUsers]:
    users = FoldingUsers()
    users.create("ann@strasse.example")
    auth = PostmarkAuth()
    auth.find_user(users.find)
    auth.create_user(users.create)
    app = make_app(auth=auth, RESEND_INTERVAL=0)
    return app, users


def test_look_alike_address_gets_no_mail_for_someone_elses_account(
    folding: tuple[Flask, FoldingUsers], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = folding
    client = app.test_client()
    with caplog.at_level(logging.DEBUG), record_messages(app) as outbox:
        answer = client.post("/auth/otp", json={"email": "ann@straße.example"})
        client.post("/auth/magic-link", json={"email": "ann@straße.example"})
    assert answer.status_code == 202  # the same answer as for any address
    assert outbox == []
    assert "find_user returned a user whose email is not the requested address" in caplog.text
    assert "straße" not in caplog.text
    assert "strasse" not in caplog.text


def test_look_alike_address_cannot_sign_in_to_someone_elses_account(
    folding: tuple[Flask, FoldingUsers],
) -> None:
    app, users = folding
    client = app.test_client()
    # A record exists for the look-alike's own code (every address gets one); the attacker
    # owns that mailbox. Give it a code it knows, as if the mail had gone out.
    with record_messages(app) as outbox:
        users.users.pop("ann@strasse.example")
        client.post("/auth/otp", json={"email": "ann@straße.example"})
        users.create("ann@strasse.example")  # the victim signs up meanwhile
    code = code_in(outbox[0])
    response = client.post("/auth/otp/verify", json={"email": "ann@straße.example", "code": code})
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_code"
    with app.test_request_context():
        assert not current_user.is_authenticated


# -- 3. Timing enumeration ------------------------------------------------------------------


def answer_times(app: Flask, auth: PostmarkAuth, known: set[str], flush: bool) -> Any:
    """Interleaved answer times of ``POST /auth/otp`` for known and unknown addresses."""
    client = app.test_client()
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(100):
        for is_known in (i % 2 == 0, i % 2 == 1):  # alternate which goes first
            email = f"{'known' if is_known else 'unknown'}{i}@example.com"
            start = time.perf_counter()
            response = client.post(
                "/auth/otp", json={"email": email}, base_url="http://app.acme.example"
            )
            times[is_known].append(time.perf_counter() - start)
            assert response.status_code == 202
            if flush:
                assert auth.flush(10)
    return statistics.median(times[True]), statistics.median(times[False])


@pytest.mark.parametrize("flush", [True, False], ids=["jobs-between", "jobs-overlapping"])
def test_timing_of_known_and_unknown_addresses_is_the_same(flush: bool) -> None:
    """A deployed app at its default delivery, Postmark answering after 50 ms and a 2 ms
    ``find_user``: the medians of interleaved answer times of known and unknown addresses
    differ by under 0.25 ms (the look-up, rendering and sending happen in the job),
    whether each job is done before the next request or runs beside it."""
    known = {f"known{i}@example.com" for i in range(100)}

    def find(email: str) -> Any:
        time.sleep(0.002)
        if email not in known:
            return None
        from flask_login import UserMixin

        user = UserMixin()
        user.id = user.email = email
        return user

    auth = PostmarkAuth()
    auth.find_user(find)
    app = deployed_app(
        SERVER_NAME="app.acme.example",
        WTF_CSRF_ENABLED=False,
        POSTMARK_AUTH_ALLOW_SIGNUP=False,
        POSTMARK_AUTH_RESEND_INTERVAL=0,
        POSTMARK_AUTH_IP_REQUESTS_PER_HOUR=10**6,
    )
    auth.init_app(app)

    def slow_postmark(path: str, payload: Any) -> Any:
        time.sleep(0.05)
        return accepted_answers(payload)[0]

    for connector in app.extensions["postmark_auth"].connectors.values():
        connector.interceptor = slow_postmark
    known_median, unknown_median = answer_times(app, auth, known, flush)
    auth.flush(30)
    gap = abs(known_median - unknown_median)
    assert gap < 0.00025, f"median gap {gap * 1000:.3f} ms"


def test_background_is_the_default_delivery_outside_testing() -> None:
    app = deployed_app(POSTMARK_AUTH_BASE_URL="https://app.acme.example")
    PostmarkAuth(app)
    assert app.extensions["postmark_auth"].settings.delivery == "background"


# -- 4. CSRF hole ---------------------------------------------------------------------------


def test_csrf_holds_when_the_apps_csrfprotect_checks_nothing_by_default(
    make_app: AppFactory,
) -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=STRONG_KEY, TESTING=True, WTF_CSRF_ENABLED=True, WTF_CSRF_CHECK_DEFAULT=False
    )
    CSRFProtect(app)
    PostmarkAuth(app)
    with record_messages(app) as outbox:
        response = app.test_client().post("/auth/otp", json={"email": VICTIM})
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "csrf"
    assert outbox == []


def test_csrf_honours_the_apps_field_name_and_headers(make_app: AppFactory) -> None:
    app = make_app(
        config={
            "WTF_CSRF_ENABLED": True,
            "WTF_CSRF_FIELD_NAME": "xsrf",
            "WTF_CSRF_HEADERS": ["X-XSRF-Token"],
        }
    )
    client = app.test_client()
    page = client.get("/auth/login", headers=JSON)
    assert page.json is not None
    token = page.json["csrf_token"]
    with record_messages(app) as outbox:
        by_header = client.post(
            "/auth/otp", json={"email": VICTIM}, headers={"X-XSRF-Token": token}
        )
        by_field = client.post("/auth/magic-link", data={"email": VICTIM, "xsrf": token})
        default_header = client.post(
            "/auth/otp", json={"email": "bob@example.com"}, headers={"X-CSRFToken": token}
        )
    assert by_header.status_code == 202
    assert by_field.status_code == 303
    assert default_header.status_code == 400
    assert [m.to for m in outbox] == [VICTIM, VICTIM]


# -- 5. Sessions ------------------------------------------------------------------------------


def sign_in(app: Flask, client: FlaskClient, email: str = VICTIM, **extra: Any) -> Any:
    """Sign ``client`` in by code; ``extra`` goes into the verify body (``remember=True``)."""
    with record_messages(app) as outbox:
        client.post("/auth/otp", json={"email": email})
    return client.post(
        "/auth/otp/verify", json={"email": email, "code": code_in(outbox[-1]), **extra}
    )


def test_a_csrf_token_from_before_sign_in_is_refused_after_it(make_app: AppFactory) -> None:
    app = make_app(config={"WTF_CSRF_ENABLED": True}, RESEND_INTERVAL=0)
    client = app.test_client()
    page = client.get("/auth/login", headers=JSON)
    assert page.json is not None
    old = page.json["csrf_token"]
    with record_messages(app) as outbox:
        client.post("/auth/otp", json={"email": VICTIM}, headers={"X-CSRFToken": old})
    signed_in = client.post(
        "/auth/otp/verify",
        json={"email": VICTIM, "code": code_in(outbox[0])},
        headers={"X-CSRFToken": old},
    )
    assert signed_in.status_code == 200
    assert signed_in.json is not None
    fresh = signed_in.json["csrf_token"]
    assert fresh != old
    stale = client.post("/auth/logout", json={}, headers={"X-CSRFToken": old})
    assert stale.status_code == 400
    assert stale.json is not None
    assert stale.json["error"] == "csrf"
    assert client.post("/auth/logout", json={}, headers={"X-CSRFToken": fresh}).status_code == 200


def test_sign_in_drops_what_the_session_held_before(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0)
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    sign_in(app, client)
    with client.session_transaction() as sess:
        assert "planted" not in sess


def remember_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("remember_token")
    assert cookie is not None
    return cookie.value


def whoami(app: Flask, cookie: str) -> str | None:
    """Who a fresh browser holding only the remember cookie ``cookie`` is."""

    other = app.test_client()
    other.set_cookie("remember_token", cookie)
    with other:
        other.get("/")
        return current_user.email if current_user.is_authenticated else None


def test_a_remember_cookie_stops_working_after_sign_out(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0)
    client = app.test_client()
    assert sign_in(app, client, remember=True).status_code == 200
    stolen = remember_cookie(client)
    assert whoami(app, stolen) == VICTIM
    client.post("/auth/logout", json={})
    assert whoami(app, stolen) is None


def test_a_remember_cookie_forged_with_the_secret_key_does_not_sign_in(
    make_app: AppFactory,
) -> None:
    from flask_login.utils import encode_cookie

    app = make_app(RESEND_INTERVAL=0)
    sign_in(app, app.test_client())  # the victim exists
    with app.test_request_context():
        forged = encode_cookie(VICTIM)
    assert whoami(app, forged) is None


def test_sign_out_everywhere_ends_every_session(make_app: AppFactory) -> None:
    auth = PostmarkAuth()
    app = make_app(auth=auth, RESEND_INTERVAL=0)
    laptop, phone = app.test_client(), app.test_client()
    sign_in(app, laptop, remember=True)
    sign_in(app, phone)
    cookie = remember_cookie(laptop)
    with app.app_context():
        assert auth.sign_out_everywhere("Ann@Example.com") is True
        assert auth.sign_out_everywhere("nobody@example.com") is False
    for client in (laptop, phone):
        with client:
            client.get("/")
            assert not current_user.is_authenticated
    assert whoami(app, cookie) is None
    assert sign_in(app, laptop).status_code == 200  # signing in again works


# -- 6. Weak keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["change-me", "a", "secret", "dev", "your-secret-key", "aaaabbbbaaaabbbbaaaa", None]
)
def test_weak_secret_keys_refuse_to_start_in_production(key: str | None) -> None:
    app = deployed_app(SECRET_KEY=key, POSTMARK_AUTH_BASE_URL="https://app.acme.example")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        PostmarkAuth(app)


def test_a_weak_fallback_key_refuses_to_start_too() -> None:
    app = deployed_app(
        SECRET_KEY_FALLBACKS=["change-me"], POSTMARK_AUTH_BASE_URL="https://app.acme.example"
    )
    with pytest.raises(ConfigurationError, match=r"SECRET_KEY_FALLBACKS\[0\]"):
        PostmarkAuth(app)


def test_a_strong_key_starts_and_debug_allows_a_weak_one() -> None:
    PostmarkAuth(deployed_app(POSTMARK_AUTH_BASE_URL="https://app.acme.example"))
    debug = deployed_app(SECRET_KEY="dev", DEBUG=True)
    PostmarkAuth(debug)


# -- 7. Denial of service ---------------------------------------------------------------------


def test_a_body_over_64_kib_is_refused_before_it_is_read(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    big = "a" * (64 * 1024)
    with record_messages(app) as outbox:
        as_json = client.post("/auth/otp", json={"email": VICTIM, "pad": big})
        as_form = client.post("/auth/magic-link", data={"email": VICTIM, "pad": big})
    assert as_json.status_code == 413
    assert as_json.json is not None
    assert as_json.json == {"error": "request_too_large", "message": as_json.json["message"]}
    assert as_form.status_code == 413
    assert as_form.mimetype == "text/html"
    assert "Traceback" not in as_form.get_data(as_text=True)
    assert outbox == []


class Chunked:
    """A request body of unknown length (chunked transfer), counting what is read of it."""

    def __init__(self, data: bytes) -> None:
        self.data, self.read_bytes = data, 0

    def read(self, size: int = -1) -> bytes:
        size = len(self.data) if size is None or size < 0 else size
        chunk, self.data = self.data[:size], self.data[size:]
        self.read_bytes += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


@pytest.mark.parametrize("kind", ["json", "form"])
def test_a_body_of_unknown_length_is_cut_off_at_64_kib(kind: str) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=STRONG_KEY, TESTING=True, WTF_CSRF_ENABLED=kind == "form")
    # The app's own CSRFProtect, set up first, reads a form body before any blueprint hook.
    CSRFProtect(app)
    PostmarkAuth(app)
    if kind == "json":
        body, content_type = b'{"email": "' + b"a" * (10 << 20) + b'"}', "application/json"
    else:
        body, content_type = (
            b"csrf_token=" + b"a" * (10 << 20),
            "application/x-www-form-urlencoded",
        )
    stream = Chunked(body)
    response = app.test_client().post(
        "/auth/otp",
        headers={"Content-Type": content_type, **JSON},
        environ_overrides={
            "wsgi.input": stream,
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        },
    )
    assert response.status_code == 413
    assert response.json is not None
    assert response.json["error"] == "request_too_large"
    assert stream.read_bytes < 1 << 20  # of 10 MiB


def test_a_huge_address_is_refused_before_unicode_normalization(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = unicodedata.normalize

    def spy(form: Literal["NFC", "NFD", "NFKC", "NFKD"], value: str) -> str:
        seen.append(len(value))
        return real(form, value)

    # flask_postmark_auth.addresses calls unicodedata.normalize (the module's attribute).
    monkeypatch.setattr(unicodedata, "normalize", spy)
    app = make_app()
    # U+FDFA becomes 18 characters under NFKC; 3,000 of them fit in a 9 KB body.
    response = app.test_client().post("/auth/otp", json={"email": "\ufdfa" * 3000 + "@x.io"})
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_email"
    assert all(length <= 2 * 254 for length in seen), seen


# -- 8. Mail abuse ----------------------------------------------------------------------------


def test_plus_tags_share_one_mailboxs_quota(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0, EMAILS_PER_HOUR=10, IP_REQUESTS_PER_HOUR=1000)
    client = app.test_client()
    with record_messages(app) as outbox:
        statuses = [
            client.post("/auth/otp", json={"email": f"ann+{n}@example.com"}).status_code
            for n in range(30)
        ]
    assert statuses == [202] * 10 + [429] * 20
    assert len(outbox) == 10


def test_plus_tags_share_the_resend_interval(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    assert client.post("/auth/otp", json={"email": "ann+1@example.com"}).status_code == 202
    again = client.post("/auth/otp", json={"email": "ann+2@example.com"})
    assert again.status_code == 429
    assert client.post("/auth/otp", json={"email": "bob@example.com"}).status_code == 202


def test_one_ipv6_network_is_one_client(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0, IP_REQUESTS_PER_HOUR=5, EMAILS_PER_HOUR=1000)
    client = app.test_client()

    def post(ip: str, n: int) -> int:
        return client.post(
            "/auth/otp", json={"email": f"u{n}@example.com"}, environ_base={"REMOTE_ADDR": ip}
        ).status_code

    same_64 = [post(f"2001:db8:1:2::{n:x}", n) for n in range(1, 8)]
    assert same_64 == [202] * 5 + [429] * 2
    assert post("2001:db8:1:3::1", 100) == 202  # the next /64 is another client


def contact_app(fake: FakePostmark, **config: Any) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "POSTMARK_AUTH_SERVER_TOKEN": fake.server_token,
            "POSTMARK_AUTH_FROM_EMAIL": "Demo <login@example.com>",
            "POSTMARK_AUTH_API_URL": fake.url,
            "POSTMARK_AUTH_STORE": "memory://",
            **config,
        }
    )


def test_the_contact_form_is_not_an_open_relay(fake_postmark: FakePostmark) -> None:
    app = contact_app(fake_postmark)
    client = app.test_client()
    spam = "Buy now at http://spam.example"
    answers = [
        client.post(
            "/contact",
            data={"email": f"victim{n % 40}@example.com", "name": spam, "message": spam},
        )
        for n in range(200)
    ]
    sent = list(fake_postmark.messages)
    assert len(sent) == 20  # FLOW_IP_REQUESTS_PER_HOUR from one client
    assert sum(a.status_code == 429 for a in answers) == 180
    assert "Retry-After" in answers[-1].headers
    for message in sent:  # nothing the visitor wrote reaches a stranger's inbox
        assert "spam.example" not in (message.text_body or "") + (message.html_body or "")
        assert message.subject is not None
        assert "spam.example" not in message.subject


def test_the_contact_form_limits_mail_to_one_recipient(fake_postmark: FakePostmark) -> None:
    app = contact_app(fake_postmark)
    statuses = [
        app.test_client()
        .post(
            "/contact",
            data={"email": VICTIM, "message": "hi"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},
        )
        .status_code
        for n in range(1, 9)
    ]
    assert statuses == [200] * 5 + [429] * 3  # FLOW_EMAILS_PER_HOUR
    assert len(fake_postmark.messages) == 5


def flow_app(make_app: AppFactory, rate_limit: Any = "default", **settings: Any) -> Flask:
    flow: dict[str, Any] = {
        "steps": [{"to": "{{ form.email }}", "subject": "Hi", "text": "Hello"}],
    }
    if rate_limit != "default":
        flow["rate_limit"] = rate_limit
    app = make_app(FLOWS={"hello": flow}, **settings)

    @app.post("/hello")
    def hello() -> dict[str, Any]:
        from flask import request

        result = app.extensions["postmark_auth_test_auth"].run_flow(
            "hello", form={"email": request.form["email"]}
        )
        return {
            "statuses": [step.status for step in result.steps],
            "retry_after": result.retry_after,
        }

    return app


@pytest.fixture
def run_hello(make_app: AppFactory) -> Any:
    def run(rate_limit: Any = "default", times: int = 1, **settings: Any) -> list[Any]:
        auth = PostmarkAuth()
        app = flow_app(make_app, rate_limit, auth=auth, **settings)
        app.extensions["postmark_auth_test_auth"] = auth
        client = app.test_client()
        with record_messages(app):
            return [client.post("/hello", data={"email": VICTIM}).json for _ in range(times)]

    return run


def test_flow_steps_over_the_limit_are_rate_limited_with_a_retry_after(run_hello: Any) -> None:
    answers = run_hello(times=6, FLOW_EMAILS_PER_HOUR=3)
    assert [a["statuses"] for a in answers] == [["sent"]] * 3 + [["rate_limited"]] * 3
    assert answers[0]["retry_after"] is None
    assert 3590 <= answers[-1]["retry_after"] <= 3600


def test_a_flows_own_rate_limit_wins_and_none_turns_it_off(run_hello: Any) -> None:
    own = run_hello({"per_recipient": 1, "per_ip": 100}, times=2)
    assert [a["statuses"] for a in own] == [["sent"], ["rate_limited"]]
    per_ip = run_hello({"per_ip": 2}, times=3)
    assert [a["statuses"] for a in per_ip] == [["sent"], ["sent"], ["rate_limited"]]
    unlimited = run_hello(None, times=30)
    assert all(a["statuses"] == ["sent"] for a in unlimited)


def test_a_flow_run_from_code_outside_a_request_is_not_limited(make_app: AppFactory) -> None:
    auth = PostmarkAuth()
    app = flow_app(make_app, {"per_recipient": 1}, auth=auth)
    with record_messages(app) as outbox, app.app_context():
        results = [auth.run_flow("hello", form={"email": VICTIM}) for _ in range(3)]
    assert [r.ok for r in results] == [True] * 3
    assert len(outbox) == 3


@pytest.mark.parametrize(
    "rate_limit", [5, "often", {"per_day": 3}, {"per_ip": 0}, {"per_recipient": True}]
)
def test_a_bad_flow_rate_limit_fails_at_init_app(make_app: AppFactory, rate_limit: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"POSTMARK_AUTH_FLOWS.*rate_limit"):
        flow_app(make_app, rate_limit)


# -- 9. `next` never crashes ------------------------------------------------------------------


ODD_NEXTS = [
    "http://trusted.example:evil/",
    "http://trusted.example:99999/",
    "http://trusted.example:-1/",
    "http://localhost:evil/",
    "http://[::1]:80/",
    "http://[::1/",
    "http://[v1.x]/",
    "http://[2001:db8::1]:evil/",
    "https://trusted.example:%38%30/",
    "http://trusted.example:80:80/",
    "http://xn--/",
    "http://\u2100.example/",
    "mailto:ann@example.com",
]


@pytest.mark.parametrize("target", ODD_NEXTS)
def test_an_odd_next_never_crashes_after_the_link_is_used(
    make_app: AppFactory, target: str
) -> None:
    app = make_app(ALLOWED_REDIRECT_HOSTS=["trusted.example"])
    client = app.test_client()
    with record_messages(app) as outbox:
        client.post("/auth/magic-link", data={"email": VICTIM, "next": target})
    response = client.post(link_in(outbox[0]), data={"next": target})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


# -- 10. Login CSRF through a link ------------------------------------------------------------


def attackers_link(app: Flask) -> str:
    with record_messages(app) as outbox:
        app.test_client().post("/auth/magic-link", json={"email": ATTACKER})
    return link_in(outbox[0])


def test_the_link_page_names_the_account_and_who_is_signed_in(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0)
    victim = app.test_client()
    sign_in(app, victim)
    link = attackers_link(app)
    page = victim.get(link)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert ATTACKER in html
    assert "You are signed in as" in html
    assert VICTIM in html
    assert victim.get(link, headers=JSON).json == {
        "valid": True,
        "email": ATTACKER,
        "same_device": False,
        "can_approve": True,
    }
    with victim:
        victim.get("/")
        assert current_user.email == VICTIM  # looking changed nothing


def test_a_link_that_signs_in_at_once_still_asks_before_switching(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0, MAGIC_LINK_CONFIRM=False)
    victim = app.test_client()
    sign_in(app, victim)
    link = attackers_link(app)
    page = victim.get(link)
    assert page.status_code == 200
    assert "You are signed in as" in page.get_data(as_text=True)
    with victim:
        victim.get("/")
        assert current_user.email == VICTIM
    # Nobody signed in, but another browser asked for the link: it shows whose it is and
    # asks, instead of signing in at once (a login CSRF by mail otherwise).
    fresh = app.test_client()
    page = fresh.get(attackers_link(app))
    assert page.status_code == 200
    assert "Sign in on this device" in page.get_data(as_text=True)
    with fresh:
        fresh.get("/")
        assert not current_user.is_authenticated
    # In the browser that asked, it signs in at once, as configured.
    with record_messages(app) as outbox:
        fresh.post("/auth/magic-link", json={"email": ATTACKER})
    assert fresh.get(link_in(outbox[0])).status_code == 303


# -- 11. Long-run guessing --------------------------------------------------------------------


def test_guessing_codes_for_days_gets_at_most_fifteen_guesses_a_day(
    make_app: AppFactory, clock: FakeClock
) -> None:
    app = make_app(IP_REQUESTS_PER_HOUR=10**6)
    client = app.test_client()
    compared: list[str] = []

    def count(sender: Any, reason: str, **extra: Any) -> None:
        if reason == "wrong code":
            compared.append(reason)

    days = 4
    with signals.sign_in_failed.connected_to(count), record_messages(app):
        end = clock() + days * 86400
        while clock() < end:
            asked = client.post("/auth/otp", json={"email": VICTIM})
            if asked.status_code == 202:
                for guess in range(10):
                    wrong = client.post(
                        "/auth/otp/verify", json={"email": VICTIM, "code": f"{guess:06d}"}
                    )
                    assert wrong.json is not None
                    if wrong.json.get("attempts_left") == 0:
                        break
            clock.advance(600)  # a new code as soon as the last one would expire
    # At most one day's budget (3 codes of 5 guesses) per day, plus one straddling budget.
    assert len(compared) <= 15 * (days + 1), len(compared)
    # At the defaults that bounds a year of steady guessing under 1%.
    assert 1 - (1 - 10**-6) ** (15 * 366) < 0.01


def test_paused_codes_leave_magic_links_working(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app(RESEND_INTERVAL=0)
    client = app.test_client()
    for _ in range(3):
        client.post("/auth/otp", json={"email": VICTIM})
        for guess in range(5):
            client.post("/auth/otp/verify", json={"email": VICTIM, "code": f"{guess:06d}"})
    paused = client.post("/auth/otp", json={"email": VICTIM})
    assert paused.status_code == 429
    assert 86000 <= int(paused.headers["Retry-After"]) <= 86400
    unknown = client.post("/auth/otp", json={"email": "nobody-yet@example.com"})
    assert unknown.status_code == 202
    with record_messages(app) as outbox:
        assert client.post("/auth/magic-link", json={"email": VICTIM}).status_code == 202
    assert client.post(link_in(outbox[0]), json={}).status_code == 200
    clock.advance(86401)
    assert client.post("/auth/otp", json={"email": VICTIM}).status_code == 202


# -- 12. Dev outbox and logs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost:5000", 200),
        ("127.0.0.1:5000", 200),
        ("[::1]:5000", 200),
        ("LOCALHOST", 200),
        ("app.acme.example", 200),
        ("evil.example", 404),
        ("localhost.evil.example", 404),
        ("127.0.0.1.nip.io", 404),
        ("[::1", 404),
    ],
)
def test_the_dev_outbox_answers_only_this_machine(
    make_app: AppFactory, host: str, status: int
) -> None:
    app = make_app(BASE_URL="https://app.acme.example")
    client = app.test_client()
    client.post("/auth/otp", json={"email": VICTIM})
    response = client.get("/auth/dev/outbox", headers={"Host": host, **JSON})
    assert response.status_code == status
    if status == 200:
        assert response.json is not None
        assert response.json["messages"][0]["to"] == VICTIM
    cleared = client.post("/auth/dev/outbox/clear", headers={"Host": host, **JSON})
    assert cleared.status_code == status


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [
        (
            422,
            406,
            "You tried to send to recipient(s) that have been marked as inactive. "
            "Found inactive addresses: ann@example.com.",
        ),
        (422, 300, "Error parsing 'To': Illegal email address 'ann@example.com'."),
    ],
)
def test_postmarks_error_texts_never_put_an_address_in_the_logs(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, status: int, code: int, text: str
) -> None:
    api = "https://api.postmark.test"
    connector = PostmarkConnector(
        "default", server_token="token", from_email="a@acme.example", api_url=api, backoff=0
    )
    app = make_app(CONNECTORS={"default": connector}, DEV_OUTBOX=False)
    with responses.RequestsMock() as mock, caplog.at_level(logging.DEBUG):
        mock.post(f"{api}/email", status=status, json={"ErrorCode": code, "Message": text})
        response = app.test_client().post("/auth/otp", json={"email": VICTIM})
    assert response.status_code == 202  # a recipient's fault answers like a success
    assert "Postmark" in caplog.text
    assert VICTIM not in caplog.text
    assert "a***@example.com" in caplog.text


# -- found in review ------------------------------------------------------------------------


def test_a_postmark_outage_does_not_tell_addresses_apart_with_background_delivery(
    make_app: AppFactory, fake_postmark: FakePostmark, connector: PostmarkConnector
) -> None:
    auth = PostmarkAuth()
    known = {VICTIM}

    @auth.find_user
    def find(email: str) -> Any:
        return SimpleNamespace(email=email, is_active=True) if email in known else None

    app = make_app(
        auth=auth, CONNECTORS={"default": connector}, DELIVERY="background", ALLOW_SIGNUP=False
    )
    fake_postmark.fail(503, times=100)
    client = app.test_client()
    answers = {}
    for email in (VICTIM, "nobody@example.com"):
        first = client.post("/auth/otp", json={"email": email}).status_code
        assert auth.flush(30)
        second = client.post("/auth/otp", json={"email": email}).status_code
        guess = client.post("/auth/otp/verify", json={"email": email, "code": "000000"}).json
        assert guess is not None
        answers[email] = (first, second, guess["attempts_left"])
    assert answers[VICTIM] == answers["nobody@example.com"] == (202, 429, 4)


def test_a_missing_client_address_is_one_bucket_not_none(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0, IP_REQUESTS_PER_HOUR=3, EMAILS_PER_HOUR=100)
    client = app.test_client()
    statuses = [
        client.post(
            "/auth/otp", json={"email": f"u{n}@example.com"}, environ_base={"REMOTE_ADDR": ""}
        ).status_code
        for n in range(5)
    ]
    assert statuses == [202, 202, 202, 429, 429]


def test_the_guess_budget_spent_on_a_void_code_still_pauses_codes(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0)
    client = app.test_client()
    client.post("/auth/otp", json={"email": VICTIM})
    for guess in range(5):  # the first code dies
        client.post("/auth/otp/verify", json={"email": VICTIM, "code": f"{guess:06d}"})
    client.post("/auth/otp", json={"email": VICTIM})
    for guess in range(4):  # 9 guesses counted so far
        client.post("/auth/otp/verify", json={"email": VICTIM, "code": f"{guess:06d}"})
    client.post("/auth/otp", json={"email": VICTIM})
    client.post("/auth/otp/verify", json={"email": VICTIM, "code": "000000"})  # 10
    for _ in range(6):  # the code lives on; then guesses beyond the budget land on it
        client.post("/auth/otp/verify", json={"email": VICTIM, "code": "000001"})
    paused = client.post("/auth/otp", json={"email": VICTIM})
    assert paused.status_code == 429
    assert int(paused.headers["Retry-After"]) > 80000


def test_switching_accounts_by_link_drops_the_old_remember_cookie(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=0)
    victim = app.test_client()
    sign_in(app, victim, remember=True)
    assert victim.get_cookie("remember_token") is not None
    link = attackers_link(app)
    assert victim.post(link, json={}).status_code == 200  # switched, remember not asked for
    assert victim.get_cookie("remember_token") is None


@pytest.mark.parametrize(
    "key",
    ["change-me-in-prod-0000", "your-secret-key-123456", "replace-me-with-a-real-key"],
)
def test_placeholder_like_keys_refuse_to_start(key: str) -> None:
    app = deployed_app(SECRET_KEY=key, POSTMARK_AUTH_BASE_URL="https://app.acme.example")
    with pytest.raises(ConfigurationError, match="placeholder"):
        PostmarkAuth(app)
