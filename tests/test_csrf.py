"""CSRF on every POST route (SPEC section 6): Flask-WTF tokens in the ``csrf_token`` form
field or the ``X-CSRFToken`` header; failures answer 400 ``{"error": "csrf"}`` (JSON) or the
form re-rendered with status 400 (HTML), whether the package or the app's own
``CSRFProtect`` does the check; ``WTF_CSRF_ENABLED = False`` turns it off."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import CSRFProtect
from flask_wtf.csrf import generate_csrf
from werkzeug.test import TestResponse

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.testing import (
    FakeClock,
    RecordedMessage,
    code_in,
    link_in,
    record_messages,
)
from tests.helpers import AppFactory

EMAIL = "ann@example.com"
CSRF_ON = {"WTF_CSRF_ENABLED": True}
CSRF_MESSAGE = "The form expired"


def json_token(client: FlaskClient) -> str:
    response = client.get("/auth/login", headers={"Accept": "application/json"})
    assert response.json is not None
    token = response.json["csrf_token"]
    assert isinstance(token, str)
    assert token
    return token


def page_token(client: FlaskClient, path: str = "/auth/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


class Setup:
    """An app with CSRF on, a client, the mail it sends, and a way to make a route's
    request valid apart from CSRF (a real code or link where the route needs one)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.store = app.extensions["postmark_auth"].store

    def prepare(self, route: str, outbox: list[RecordedMessage]) -> tuple[str, dict[str, Any]]:
        """The path and fields of a request that succeeds once its CSRF token is right."""
        if route == "otp":
            return "/auth/otp", {"email": EMAIL}
        if route == "magic-link":
            return "/auth/magic-link", {"email": EMAIL}
        if route == "logout":
            return "/auth/logout", {}
        if route == "outbox-clear":
            return "/auth/dev/outbox/clear", {}
        # verify and link need mail first: ask for it with a valid token
        token = json_token(self.client)
        if route == "verify":
            self.client.post("/auth/otp", json={"email": EMAIL}, headers={"X-CSRFToken": token})
            return "/auth/otp/verify", {"email": EMAIL, "code": code_in(outbox[-1])}
        self.client.post("/auth/magic-link", json={"email": EMAIL}, headers={"X-CSRFToken": token})
        return link_in(outbox[-1]), {}


ROUTES = ["otp", "verify", "magic-link", "link", "logout", "outbox-clear"]
#: The answer each route gives once CSRF passes (JSON status, form status).
SUCCESS = {
    "otp": (202, 303),
    "verify": (200, 303),
    "magic-link": (202, 303),
    "link": (200, 303),
    "logout": (200, 303),
    "outbox-clear": (200, 303),
}


@pytest.fixture
def csrf_app(make_app: AppFactory) -> Flask:
    return make_app(config=CSRF_ON)


def with_app_csrfprotect_after(make_app: AppFactory, clock: FakeClock) -> Flask:
    app = make_app(config=CSRF_ON)
    CSRFProtect(app)
    return app


def with_app_csrfprotect_first(make_app: AppFactory, clock: FakeClock) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", TESTING=True, **CSRF_ON)
    CSRFProtect(app)
    PostmarkAuth(clock=clock).init_app(app)
    return app


def package_check_only(make_app: AppFactory, clock: FakeClock) -> Flask:
    app = make_app(config=CSRF_ON)
    assert "csrf" not in app.extensions
    return app


APPS: dict[str, Callable[[AppFactory, FakeClock], Flask]] = {
    "package": package_check_only,
    "app-csrfprotect-after": with_app_csrfprotect_after,
    "app-csrfprotect-first": with_app_csrfprotect_first,
}


@pytest.fixture(params=list(APPS))
def setup(request: pytest.FixtureRequest, make_app: AppFactory, clock: FakeClock) -> Setup:
    return Setup(APPS[request.param](make_app, clock))


def assert_csrf_json(response: TestResponse) -> None:
    assert response.status_code == 400
    assert response.is_json
    body = response.get_json()
    assert body["error"] == "csrf"
    assert isinstance(body["message"], str)
    assert body["message"]


def assert_csrf_html(response: TestResponse) -> None:
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert CSRF_MESSAGE in text
    assert "<form" in text or "Sign-in link not valid" in text
    assert "Traceback" not in text


def token_of_another_app() -> str:
    """A well-formed token, signed with another app's secret key."""
    other = Flask(__name__)
    other.config["SECRET_KEY"] = "another-secret"
    with other.test_request_context():
        token: str = generate_csrf()
        return token


WRONG_TOKENS = {
    "missing": None,
    "empty": "",
    "garbage": "not-a-token",
    "signed-elsewhere": token_of_another_app(),
}


@pytest.mark.parametrize("wrong", list(WRONG_TOKENS))
@pytest.mark.parametrize("route", ROUTES)
def test_json_without_a_valid_token_is_refused(setup: Setup, route: str, wrong: str) -> None:
    with record_messages(setup.app) as outbox:
        path, fields = setup.prepare(route, outbox)
        sent = len(outbox)
        json_token(setup.client)  # the session has a token; the request lacks the right one
        token = WRONG_TOKENS[wrong]
        headers = {} if token is None else {"X-CSRFToken": token}
        response = setup.client.post(path, json=fields, headers=headers)
        assert_csrf_json(response)
        assert len(outbox) == sent  # nothing was sent
    if route == "link":  # and the link was not used up
        assert setup.client.get(path).status_code == 200


@pytest.mark.parametrize("wrong", list(WRONG_TOKENS))
@pytest.mark.parametrize("route", ROUTES)
def test_form_without_a_valid_token_re_renders_with_400(
    setup: Setup, route: str, wrong: str
) -> None:
    with record_messages(setup.app) as outbox:
        path, fields = setup.prepare(route, outbox)
        sent = len(outbox)
        page_token(setup.client)
        token = WRONG_TOKENS[wrong]
        data = dict(fields) if token is None else {**fields, "csrf_token": token}
        response = setup.client.post(path, data=data)
        assert_csrf_html(response)
        assert len(outbox) == sent


@pytest.mark.parametrize("route", ROUTES)
def test_form_preferring_json_gets_the_json_error(setup: Setup, route: str) -> None:
    with record_messages(setup.app) as outbox:
        path, fields = setup.prepare(route, outbox)
    response = setup.client.post(path, data=fields, headers={"Accept": "application/json"})
    assert_csrf_json(response)


@pytest.mark.parametrize("route", ROUTES)
def test_token_from_login_json_works_in_the_header(setup: Setup, route: str) -> None:
    with record_messages(setup.app) as outbox:
        path, fields = setup.prepare(route, outbox)
        token = json_token(setup.client)
        response = setup.client.post(path, json=fields, headers={"X-CSRFToken": token})
    assert response.status_code == SUCCESS[route][0], response.get_json()
    if route in ("otp", "magic-link"):
        assert outbox[-1].to == EMAIL


@pytest.mark.parametrize("route", ROUTES)
def test_token_from_login_json_works_as_form_field(setup: Setup, route: str) -> None:
    with record_messages(setup.app) as outbox:
        path, fields = setup.prepare(route, outbox)
        token = json_token(setup.client)
        response = setup.client.post(path, data={**fields, "csrf_token": token})
    assert response.status_code == SUCCESS[route][1], response.get_data(as_text=True)


def test_token_from_the_login_page_form_works(setup: Setup) -> None:
    with record_messages(setup.app) as outbox:
        token = page_token(setup.client)
        response = setup.client.post("/auth/otp", data={"email": EMAIL, "csrf_token": token})
    assert response.status_code == 303
    assert [m.to for m in outbox] == [EMAIL]


def test_token_from_another_session_is_refused(setup: Setup) -> None:
    other = setup.app.test_client()
    token = json_token(other)
    json_token(setup.client)
    with record_messages(setup.app) as outbox:
        response = setup.client.post(
            "/auth/otp", json={"email": EMAIL}, headers={"X-CSRFToken": token}
        )
    assert_csrf_json(response)
    assert outbox == []


def test_token_in_a_json_body_field_works_with_the_package_check(csrf_app: Flask) -> None:
    client = csrf_app.test_client()
    token = json_token(client)
    with record_messages(csrf_app) as outbox:
        response = client.post("/auth/otp", json={"email": EMAIL, "csrf_token": token})
    assert response.status_code == 202
    assert len(outbox) == 1


def test_csrf_refusal_comes_before_any_work(csrf_app: Flask) -> None:
    """A refused request leaves no code behind and uses up no resend interval."""
    client = csrf_app.test_client()
    store = csrf_app.extensions["postmark_auth"].store
    with record_messages(csrf_app) as outbox:
        assert client.post("/auth/otp", json={"email": EMAIL}).status_code == 400
        assert store.get(f"otp:{EMAIL}") is None
        token = json_token(client)
        response = client.post("/auth/otp", json={"email": EMAIL}, headers={"X-CSRFToken": token})
    assert response.status_code == 202
    assert len(outbox) == 1


@pytest.mark.parametrize("route", ROUTES)
def test_csrf_disabled_turns_the_check_off(make_app: AppFactory, route: str) -> None:
    setup = Setup(make_app(config={"WTF_CSRF_ENABLED": False}))
    with record_messages(setup.app) as outbox:
        path, fields = setup.prepare(route, outbox)
        json_answer = setup.client.post(path, json=fields)
    assert json_answer.status_code == SUCCESS[route][0], json_answer.get_json()
    setup = Setup(make_app(config={"WTF_CSRF_ENABLED": False}))
    with record_messages(setup.app) as outbox:
        path, fields = setup.prepare(route, outbox)
        form_answer = setup.client.post(path, data=fields)
    assert form_answer.status_code == SUCCESS[route][1]


def test_csrf_is_on_by_default(clock: FakeClock) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", TESTING=True)
    PostmarkAuth(app, clock=clock)
    response = app.test_client().post("/auth/otp", json={"email": EMAIL})
    assert_csrf_json(response)
