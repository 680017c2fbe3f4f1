"""What people see (SPEC section 15): codes that paste, no dead end after the last attempt,
pages inside the app's own layout, errors answered alike, and the dev outbox's list."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import LoginManager, login_required
from jinja2 import ChoiceLoader, DictLoader
from werkzeug.test import TestResponse

from flask_postmark_auth.errors import ConfigurationError
from flask_postmark_auth.pages import wait_text
from flask_postmark_auth.testing import FakeClock
from tests.helpers import AppFactory

ANN = "ann@example.com"
OUTBOX = "/auth/dev/outbox"
JSON = {"Accept": "application/json"}

#: An app's own base page: its nav, and the three blocks the sign-in pages fill.
APP_BASE = """<!doctype html><html><head><title>{% block title %}{% endblock %} | Acme</title>
{% block head %}{% endblock %}</head><body><nav id="app-nav"><a href="/">Acme home</a></nav>
<main>{% block content %}{% endblock %}</main></body></html>"""


def outbox_messages(client: FlaskClient, to: str | None = None) -> list[dict[str, Any]]:
    response = client.get(OUTBOX, query_string={"to": to} if to else {}, headers=JSON)
    assert response.status_code == 200
    assert response.json is not None
    found: list[dict[str, Any]] = body(response)["messages"]
    return found


def new_code(client: FlaskClient, email: str = ANN) -> str:
    assert client.post("/auth/otp", json={"email": email}).status_code == 202
    code = outbox_messages(client, email)[0]["code"]
    assert isinstance(code, str)
    assert re.fullmatch(r"\d{6}", code)
    return code


def body(response: TestResponse) -> dict[str, Any]:
    found = response.json
    assert isinstance(found, dict)
    return found


def verify(client: FlaskClient, code: object, email: str = ANN) -> TestResponse:
    return client.post("/auth/otp/verify", json={"email": email, "code": code})


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app(RESEND_INTERVAL=0, APP_NAME="Acme")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# -- codes that paste ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    ["{a} {b}", "{a}-{b}", " {a}{b} ", "{a}.{b}", "{a}\u00a0{b}\n", "{wide}", "\t{a} - {b}"],
)
def test_a_pasted_code_signs_in(client: FlaskClient, shape: str) -> None:
    code = new_code(client)
    wide = "".join(chr(ord(c) - ord("0") + 0xFF10) for c in code)
    response = verify(client, shape.format(a=code[:3], b=code[3:], wide=wide))
    assert response.status_code == 200, response.json
    assert body(response)["status"] == "signed_in"


@pytest.mark.parametrize(
    "junk", ["", "12", "1234567", "abcdef", "12345\x00", "\u0661" * 6, "+123456", "1" * 65, 123]
)
def test_malformed_input_uses_no_attempt(client: FlaskClient, junk: object) -> None:
    code = new_code(client)
    for _ in range(3):
        answer = verify(client, junk)
        assert answer.status_code == 400
        assert body(answer)["error"] == "invalid_code"
        assert body(answer)["attempts_left"] == 5
    wrong = "000000" if code != "000000" else "111111"
    assert body(verify(client, wrong))["attempts_left"] == 4  # a real guess counts
    assert body(verify(client, junk))["attempts_left"] == 4
    assert verify(client, code).status_code == 200


def test_malformed_input_does_not_spend_the_daily_guess_budget(client: FlaskClient) -> None:
    code = new_code(client)
    for _ in range(20):  # more than the 15 guesses a day that pause an address's codes
        assert body(verify(client, "12 34"))["attempts_left"] == 5
    assert verify(client, code).status_code == 200
    assert client.post("/auth/otp", json={"email": ANN}).status_code == 202  # not paused


def test_malformed_input_still_counts_against_the_ip_throttle(make_app: AppFactory) -> None:
    client = make_app(RESEND_INTERVAL=0, IP_REQUESTS_PER_HOUR=3).test_client()
    client.post("/auth/otp", json={"email": ANN})
    assert verify(client, "x").status_code == 400
    assert verify(client, "x").status_code == 400
    assert verify(client, "x").status_code == 429


def test_the_code_field_takes_a_paste(client: FlaskClient) -> None:
    html = client.get("/auth/otp/verify").get_data(as_text=True)
    [field] = re.findall(r'<input id="code"[^>]*>', html)
    assert "maxlength" not in field
    assert 'autocomplete="one-time-code"' in field
    assert 'inputmode="numeric"' in field
    pattern = re.search(r'pattern="([^"]*)"', field)
    assert pattern is not None
    for pasted in ("136 679", "136-679", " 136679 ", "136.679"):
        assert re.fullmatch(pattern.group(1), pasted)  # the browser's own check lets it by
    assert 'normalize("NFKC")' in html  # and the page tidies it as the server reads it


# -- no dead end -----------------------------------------------------------------------------


def test_after_the_last_attempt_the_page_sends_a_new_code(
    make_app: AppFactory, clock: FakeClock
) -> None:
    client = make_app(APP_NAME="Acme").test_client()
    form = {"email": ANN, "next": "/private"}
    assert client.post("/auth/otp", data=form).status_code == 303
    code = outbox_messages(client)[0]["code"]
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        assert client.post("/auth/otp/verify", data={**form, "code": wrong}).status_code == 400
    last = client.post("/auth/otp/verify", data={**form, "code": wrong})
    html = last.get_data(as_text=True)
    assert last.status_code == 400
    assert 'name="code"' not in html  # no field to type into, no Sign in button
    assert ">Sign in</button>" not in html
    resend = re.search(r'<form class="resend[^"]*" method="post" action="([^"]+)">', html)
    assert resend is not None
    assert resend.group(1) == "/auth/otp"
    assert f'name="email" value="{ANN}"' in html
    assert 'name="next" value="/private"' in html
    wait = re.search(r'id="resend"[^>]*data-wait="(\d+)"', html)
    assert wait is not None
    assert 0 < int(wait.group(1)) <= 30  # RESEND_INTERVAL is counted down

    early = client.post("/auth/otp", data={**form, "resend": "expired"})  # no script: the server
    assert early.status_code == 429
    early_html = early.get_data(as_text=True)
    seconds = int(early.headers["Retry-After"])
    assert f"Wait {seconds} second" in early_html
    assert f'data-wait="{seconds}"' in early_html
    assert 'name="code"' not in early_html

    clock.advance(31)
    again = client.post("/auth/otp", data={**form, "resend": "expired"})
    assert again.status_code == 303
    assert again.headers["Location"] == "/auth/otp/verify?next=/private"
    fresh = outbox_messages(client)[0]["code"]
    signed_in = client.post("/auth/otp/verify", data={**form, "code": fresh})
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == "/private"


def test_an_expired_code_offers_a_new_one(make_app: AppFactory, clock: FakeClock) -> None:
    client = make_app().test_client()
    client.post("/auth/otp", data={"email": ANN})
    code = outbox_messages(client)[0]["code"]
    clock.advance(601)
    html = client.post("/auth/otp/verify", data={"email": ANN, "code": code}).get_data(
        as_text=True
    )
    assert "Send a new code" in html
    assert 'data-wait="0"' in html  # the interval is long over
    assert 'name="code"' not in html


def test_the_rate_limit_says_how_long_to_wait(make_app: AppFactory) -> None:
    client = make_app().test_client()
    client.post("/auth/otp", json={"email": ANN})
    answer = client.post("/auth/otp", json={"email": ANN})
    assert answer.status_code == 429
    assert body(answer)["message"] == "Too many requests. Wait 30 seconds, then try again."
    assert answer.headers["Retry-After"] == "30"


def test_wait_text() -> None:
    assert wait_text(1) == "1 second"
    assert wait_text(30) == "30 seconds"
    assert wait_text(600) == "10 minutes"
    assert wait_text(86400) == "24 hours"


# -- pages inside the app ----------------------------------------------------------------------


def app_with_base(make_app: AppFactory, **settings: Any) -> Flask:
    app = make_app(BASE_TEMPLATE="acme_base.html", RESEND_INTERVAL=0, **settings)
    assert app.jinja_loader is not None
    app.jinja_loader = ChoiceLoader([DictLoader({"acme_base.html": APP_BASE}), app.jinja_loader])
    return app


def test_every_page_extends_the_apps_base(make_app: AppFactory) -> None:
    client = app_with_base(make_app).test_client()
    client.post("/auth/magic-link", json={"email": ANN})
    link = outbox_messages(client)[0]["link"]
    assert isinstance(link, str)
    pages = {
        "/auth/login": "Sign in | Acme",
        "/auth/otp/verify": "Enter your code | Acme",
        "/auth/magic-link": "Check your email | Acme",
        link.removeprefix("http://localhost"): f"Sign in as {ANN} | Acme",
        OUTBOX: "Dev outbox | Acme",
        "/auth/nowhere": "Page not found | Acme",
    }
    for path, title in pages.items():
        html = client.get(path).get_data(as_text=True)
        assert '<nav id="app-nav">' in html, path
        assert f"<title>{title}</title>" in html, path
        assert '<div class="postmark-auth' in html, path
        assert ".postmark-auth {" in html, path  # the pages' styles came along in head


def test_titles_carry_the_apps_name(client: FlaskClient) -> None:
    html = client.get("/auth/login").get_data(as_text=True)
    assert "<title>Sign in · Acme</title>" in html


def test_the_confirm_page_names_the_address(client: FlaskClient) -> None:
    client.post("/auth/magic-link", json={"email": ANN})
    link = outbox_messages(client)[0]["link"]
    html = client.get(link.removeprefix("http://localhost")).get_data(as_text=True)
    assert f'<strong id="link-email">{ANN}</strong>' in html


def test_base_template_must_be_a_name(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="POSTMARK_AUTH_BASE_TEMPLATE"):
        make_app(BASE_TEMPLATE="")


# -- errors answered alike ---------------------------------------------------------------------


def test_404_in_the_blueprint(client: FlaskClient) -> None:
    page = client.get("/auth/nowhere")
    assert page.status_code == 404
    assert "Page not found" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    answer = client.get("/auth/nowhere", headers=JSON)
    assert answer.status_code == 404
    assert body(answer)["error"] == "not_found"
    # A switched-off method answers the same way.
    assert client.get("/auth/login", headers=JSON).status_code == 200
    outside = client.get("/elsewhere")
    assert outside.status_code == 404
    assert "postmark-auth" not in outside.get_data(as_text=True)  # the app's own 404


def test_405_in_the_blueprint(client: FlaskClient) -> None:
    page = client.get("/auth/logout")
    html = page.get_data(as_text=True)
    assert page.status_code == 405
    assert "POST" in page.headers["Allow"].split(", ")
    assert "GET" not in page.headers["Allow"]
    assert '<form method="post" action="/auth/logout">' in html  # a way to sign out
    answer = client.get("/auth/logout", headers=JSON)
    assert answer.status_code == 405
    assert body(answer)["error"] == "method_not_allowed"


def test_the_csrf_error_of_a_json_client_names_the_header(make_app: AppFactory) -> None:
    client = make_app(config={"WTF_CSRF_ENABLED": True}).test_client()
    answer = client.post("/auth/otp", json={"email": ANN})
    assert answer.status_code == 400
    assert body(answer)["error"] == "csrf"
    assert "reload" not in body(answer)["message"].lower()
    assert "X-CSRFToken" in body(answer)["message"]
    page = client.post("/auth/otp", data={"email": ANN})
    assert "Reload the page" in page.get_data(as_text=True)  # people still get the form hint


def add_private_page(app: Flask) -> None:
    @app.get("/private")
    @login_required  # type: ignore[untyped-decorator]  # Flask-Login ships no types
    def private() -> str:
        return "private"


def test_login_required_answers_json_clients_401(make_app: AppFactory) -> None:
    app = make_app()
    add_private_page(app)
    client = app.test_client()
    answer = client.get("/private", headers=JSON)
    assert answer.status_code == 401
    assert body(answer)["error"] == "unauthorized"
    page = client.get("/private")
    assert page.status_code == 302
    assert page.headers["Location"] == "/auth/login?next=%2Fprivate"


def test_the_apps_own_login_manager_keeps_its_unauthorized_handler(
    make_app: AppFactory,
) -> None:
    def factory(callback: bool) -> FlaskClient:
        app = Flask(__name__)
        app.config.update(SECRET_KEY="test-secret", TESTING=True, WTF_CSRF_ENABLED=False)
        manager = LoginManager(app)
        manager.user_loader(lambda user_id: None)
        if callback:
            manager.unauthorized_handler(lambda: ("the app's own", 418))
        from flask_postmark_auth import PostmarkAuth

        PostmarkAuth().init_app(app)
        add_private_page(app)
        return app.test_client()

    assert factory(True).get("/private", headers=JSON).status_code == 418
    plain = factory(False)
    assert plain.get("/private", headers=JSON).status_code == 401
    assert plain.get("/private").headers["Location"].startswith("/auth/login?next=")


# -- the dev outbox ----------------------------------------------------------------------------


def test_outbox_json_has_code_and_link(app: Flask, client: FlaskClient) -> None:
    client.post("/auth/otp", json={"email": ANN})
    client.post("/auth/magic-link", json={"email": "bob@example.com"})
    with app.app_context():
        connector = app.extensions["postmark_auth"].connectors["default"]
        connector.send("cy@example.com", "Hello", text_body="See 123456 at https://x.example")
    plain, link_mail, code_mail = outbox_messages(client)
    assert plain["code"] is None  # not a sign-in email
    assert plain["link"] is None
    assert link_mail["code"] is None
    assert re.fullmatch(r"http://localhost/auth/magic-link/[\w.\-]+", link_mail["link"])
    assert code_mail["link"] is None
    assert code_mail["code"] in code_mail["text"]


def test_outbox_filters_by_address(client: FlaskClient) -> None:
    client.post("/auth/otp", json={"email": ANN})
    client.post("/auth/otp", json={"email": "bob@example.com"})
    assert [m["to"] for m in outbox_messages(client, "bob@")] == ["bob@example.com"]
    assert outbox_messages(client, "nobody") == []
    html = client.get(OUTBOX, query_string={"to": "bob@"}).get_data(as_text=True)
    assert ANN not in html
    assert 'name="to" value="bob@"' in html


def test_outbox_list_is_compact_with_a_copy_button(client: FlaskClient) -> None:
    for n in range(14):
        client.post("/auth/otp", json={"email": f"user{n}@example.com"})
    code = outbox_messages(client)[0]["code"]
    html = client.get(OUTBOX).get_data(as_text=True)
    items = re.findall(r'<li class="message">', html)
    assert len(items) == 14
    assert f'data-copy="{code}"' in html
    assert html.count("<details>") == 14  # each message opens on one click, closed at first
    assert html.index("user13@example.com") < html.index("user0@example.com")  # newest first
