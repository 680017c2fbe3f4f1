"""Signing in by code and by link, in JSON and HTML, with built-in and app users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import UserMixin, current_user, login_required

from flask_postmark_auth import PostmarkAuth, signals
from flask_postmark_auth.store.base import member
from flask_postmark_auth.testing import (
    FakeClock,
    RecordedMessage,
    code_in,
    link_in,
    record_messages,
)
from tests.helpers import AppFactory

EMAIL = "ann@example.com"


def request_code(client: FlaskClient, email: str = EMAIL, **extra: Any) -> Any:
    return client.post("/auth/otp", json={"email": email, **extra})


def verify(client: FlaskClient, code: str, email: str = EMAIL, **extra: Any) -> Any:
    return client.post("/auth/otp/verify", json={"email": email, "code": code, **extra})


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    app = make_app()

    @app.get("/whoami")
    def whoami_view() -> str:
        return current_user.email if current_user.is_authenticated else ""

    @app.get("/private")
    @login_required  # type: ignore[untyped-decorator]  # Flask-Login ships no types
    def private() -> str:
        return "secret page"

    return app


# -- codes ----------------------------------------------------------------------------------


def test_code_sign_in_by_json(
    app: Flask, client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    response = request_code(client, "  Ann@Example.COM ")
    assert response.status_code == 202
    assert response.json == {"status": "sent", "expires_in": 600}
    [message] = outbox
    assert message.to == EMAIL
    assert message.tag == "otp"
    assert message.track_opens is False
    assert message.track_links == "None"
    assert message.message_stream == "outbound"
    assert "10 minutes" in (message.text_body or "")
    code = code_in(message)
    assert code in (message.html_body or "")

    response = verify(client, code)
    assert response.status_code == 200
    answer = response.json
    assert answer.pop("csrf_token")  # a fresh one for the new session
    assert answer == {
        "status": "signed_in",
        "user": {"id": EMAIL, "email": EMAIL},
        "next": "/",
    }
    assert client.get("/whoami").get_data(as_text=True) == EMAIL
    assert client.get("/private").get_data(as_text=True) == "secret page"


def test_code_sign_in_by_html_forms(
    app: Flask, client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    page = client.get("/auth/login")
    assert page.status_code == 200
    assert 'name="email"' in page.get_data(as_text=True)
    response = client.post("/auth/otp", data={"email": EMAIL, "next": "/private"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/auth/otp/verify")
    form = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in form
    assert 'inputmode="numeric"' in form
    assert EMAIL in form  # prefilled from the session
    response = client.post("/auth/otp/verify", data={"email": EMAIL, "code": code_in(outbox[0])})
    assert response.status_code == 303
    assert response.headers["Location"] == "/private"  # kept server-side with the code
    assert client.get("/private").status_code == 200


def test_wrong_code_then_right_code(client: FlaskClient, outbox: list[RecordedMessage]) -> None:
    request_code(client)
    code = code_in(outbox[0])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = verify(client, wrong)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_code"
    assert response.json["attempts_left"] == 4
    assert verify(client, code).status_code == 200


def test_html_error_re_renders_the_form_with_status(
    client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    request_code(client)
    response = client.post("/auth/otp/verify", data={"email": EMAIL, "code": "000000x"})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "attempts left" in body.lower()
    assert "Traceback" not in body


def test_invalid_email_is_refused(client: FlaskClient, outbox: list[RecordedMessage]) -> None:
    response = client.post("/auth/otp", json={"email": "Ann <ann@example.com>"})
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_email"
    assert outbox == []
    html = client.post("/auth/otp", data={"email": "nope"})
    assert html.status_code == 400
    assert "valid email" in html.get_data(as_text=True)


def test_remember_me_sets_the_remember_cookie(
    client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    request_code(client)
    response = verify(client, code_in(outbox[0]), remember=True)
    assert "remember_token=" in " ".join(response.headers.getlist("Set-Cookie"))


def test_without_remember_there_is_no_remember_cookie(
    client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    request_code(client)
    response = verify(client, code_in(outbox[0]))
    assert "remember_token=" not in " ".join(response.headers.getlist("Set-Cookie"))


def test_logout(client: FlaskClient, outbox: list[RecordedMessage]) -> None:
    request_code(client)
    verify(client, code_in(outbox[0]))
    response = client.post("/auth/logout", json={})
    assert response.json == {"status": "signed_out"}
    assert client.get("/whoami").get_data(as_text=True) == ""
    request_code(client, "bob@example.com")
    verify(client, code_in(outbox[1]), email="bob@example.com")
    response = client.post("/auth/logout", data={"next": "//evil.example"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_login_json_gives_methods_and_a_csrf_token(client: FlaskClient) -> None:
    response = client.get("/auth/login", headers={"Accept": "application/json"})
    assert response.json is not None
    assert response.json["methods"] == ["otp", "magic_link"]
    assert response.json["csrf_token"]


def test_disabled_method_has_no_route(make_app: AppFactory) -> None:
    client = make_app(METHODS=["magic_link"]).test_client()
    assert client.post("/auth/otp", json={"email": EMAIL}).status_code == 404
    assert "request_code" not in client.get("/auth/login").get_data(as_text=True)


def test_url_prefix_moves_the_routes(make_app: AppFactory) -> None:
    client = make_app(URL_PREFIX="/signin").test_client()
    assert client.get("/signin/login").status_code == 200
    assert client.get("/auth/login").status_code == 404


# -- links ----------------------------------------------------------------------------------


def test_link_sign_in_through_the_confirm_page(
    client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    response = client.post("/auth/magic-link", json={"email": EMAIL, "next": "/private"})
    assert response.status_code == 202
    answer = response.json
    assert answer is not None
    assert 10 <= answer.pop("number") <= 99  # what the waiting page shows (other devices)
    assert answer == {"status": "sent", "expires_in": 900}
    [message] = outbox
    assert message.tag == "magic-link"
    assert message.track_links == "None"
    path = link_in(message)
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<form" in page.get_data(as_text=True)
    assert client.get("/whoami").get_data(as_text=True) == ""  # GET signed nobody in
    response = client.post(path)
    assert response.status_code == 303
    assert response.headers["Location"] == "/private"
    assert client.get("/whoami").get_data(as_text=True) == EMAIL


def test_link_html_request_redirects_to_check_your_email(
    client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    response = client.post("/auth/magic-link", data={"email": EMAIL})
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "15 minutes" in page.get_data(as_text=True)


def test_link_without_confirm_signs_in_on_get(
    make_app: AppFactory,
) -> None:
    app = make_app(MAGIC_LINK_CONFIRM=False)
    client = app.test_client()
    with record_messages(app) as outbox:
        client.post("/auth/magic-link", json={"email": EMAIL})
    response = client.get(link_in(outbox[0]))
    assert response.status_code == 303
    assert client.get(link_in(outbox[0])).status_code == 400  # used


def test_next_given_at_sign_in_wins_when_safe(
    client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    client.post("/auth/magic-link", json={"email": EMAIL, "next": "/first"})
    response = client.post(link_in(outbox[0]), json={"next": "/second"})
    assert response.json is not None
    assert response.json["next"] == "/second"


# -- users ----------------------------------------------------------------------------------


class AppUser(UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
    def __init__(self, email: str, active: bool = True) -> None:
        self.id = f"user-{email}"
        self.email = email
        self.active = active

    @property
    def is_active(self) -> bool:
        return self.active


def app_with_users(
    make_app: AppFactory, clock: FakeClock, **settings: Any
) -> tuple[Flask, dict[str, AppUser]]:
    users: dict[str, AppUser] = {"known@example.com": AppUser("known@example.com")}
    users["inactive@example.com"] = AppUser("inactive@example.com", active=False)
    auth = PostmarkAuth(clock=clock)

    @auth.find_user
    def find(email: str) -> AppUser | None:
        return users.get(email)

    @auth.create_user
    def create(email: str) -> AppUser:
        users[email] = AppUser(email)
        return users[email]

    from flask_login import LoginManager

    app = make_app(auth=auth, **settings)
    manager: LoginManager = app.login_manager  # type: ignore[attr-defined]
    manager.user_loader(lambda uid: next((u for u in users.values() if u.id == uid), None))
    return app, users


def test_app_users_sign_in_and_sign_up(make_app: AppFactory, clock: FakeClock) -> None:
    app, users = app_with_users(make_app, clock)
    client = app.test_client()
    signed_up: list[Any] = []
    with (
        signals.user_signed_up.connected_to(
            lambda sender, user, **kw: signed_up.append(user), app
        ),
        record_messages(app) as outbox,
    ):
        request_code(client, "known@example.com")
        response = verify(client, code_in(outbox[0]), email="known@example.com")
        assert response.json["user"] == {
            "id": "user-known@example.com",
            "email": "known@example.com",
        }
        request_code(client, "new@example.com")
        response = verify(client, code_in(outbox[1]), email="new@example.com")
    assert response.status_code == 200
    assert "new@example.com" in users
    assert [u.email for u in signed_up] == ["new@example.com"]


def test_inactive_user_gets_no_mail_and_cannot_sign_in(
    make_app: AppFactory, clock: FakeClock
) -> None:
    app, _ = app_with_users(make_app, clock)
    client = app.test_client()
    with record_messages(app) as outbox:
        response = request_code(client, "inactive@example.com")
    assert response.status_code == 202
    assert outbox == []


def test_find_user_without_create_user_and_signup_names_both(
    make_app: AppFactory, clock: FakeClock
) -> None:
    auth = PostmarkAuth(clock=clock)
    auth.find_user(lambda email: None)
    app = make_app(auth=auth)
    with pytest.raises(Exception, match=r"find_user.*create_user"):
        request_code(app.test_client())


def test_builtin_users_without_signup_is_an_error_at_first_request(
    make_app: AppFactory,
) -> None:
    app = make_app(ALLOW_SIGNUP=False)  # init_app itself is fine: callbacks may come later
    with pytest.raises(Exception, match="ALLOW_SIGNUP"):
        request_code(app.test_client())


def test_builtin_user_signs_up_once_per_address(
    app: Flask, client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    created: list[str] = []
    with signals.user_signed_up.connected_to(
        lambda sender, user, **kw: created.append(user.email), app
    ):
        for n in range(2):
            request_code(client)
            verify(client, code_in(outbox[n]))
            client.post("/auth/logout", json={})
            app.extensions["postmark_auth"].store.delete(member(f"send:{EMAIL}", "r:otp"))
    assert created == [EMAIL]


def test_signals_for_sent_and_signed_in(
    app: Flask, client: FlaskClient, outbox: list[RecordedMessage]
) -> None:
    seen: list[str] = []
    with (
        signals.code_sent.connected_to(lambda s, **kw: seen.append("code_sent"), app),
        signals.user_signed_in.connected_to(lambda s, **kw: seen.append("signed_in"), app),
        signals.sign_in_failed.connected_to(lambda s, **kw: seen.append("failed"), app),
    ):
        request_code(client)
        verify(client, "000000" if code_in(outbox[0]) != "000000" else "111111")
        verify(client, code_in(outbox[0]))
    assert seen == ["code_sent", "failed", "signed_in"]


def test_an_app_login_manager_is_kept(make_app: AppFactory, clock: FakeClock) -> None:
    from flask_login import LoginManager

    app = Flask(__name__)
    app.config.update(SECRET_KEY="x", TESTING=True)
    manager = LoginManager(app)
    PostmarkAuth(app, clock=clock)
    assert app.login_manager is manager  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_expired_entries_are_swept_so_the_store_stays_flat(
    make_app: AppFactory, clock: FakeClock, tmp_path: Path, kind: str
) -> None:
    store_uri = "memory://" if kind == "memory" else f"sqlite:///{tmp_path}/flat.db"
    app = make_app(STORE=store_uri, RESEND_INTERVAL=0, OTP_TTL=60, IP_REQUESTS_PER_HOUR=10**6)
    store = app.extensions["postmark_auth"].store
    client = app.test_client()
    sizes = []
    with record_messages(app) as outbox:
        for n in range(600):
            email = f"user{n % 20}@example.com"  # 20 built-in users, the rest expires
            client.post("/auth/otp", json={"email": email})
            client.post("/auth/otp/verify", json={"email": email, "code": code_in(outbox[-1])})
            client.post("/auth/logout", json={})
            clock.advance(30)
            if n % 100 == 99:
                sizes.append(store.size())
    # 600 sign-ins over 5 hours leave a bounded store: users, live counters, one IP window.
    assert max(sizes) < 150, sizes
    assert sizes[-1] <= sizes[1] + 20, sizes
