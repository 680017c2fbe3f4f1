"""The dev outbox (SPEC section 5, ``DEV_OUTBOX``): on in debug or testing when no token is
set, it records mail in the store instead of sending it, and shows it at
``{URL_PREFIX}/dev/outbox``."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.errors import ConfigurationError
from flask_postmark_auth.testing import FakePostmark
from tests.helpers import AppFactory

ANN = "ann@example.com"
BOB = "bob@example.com"
OUTBOX = "/auth/dev/outbox"
JSON = {"Accept": "application/json"}


def messages(client: FlaskClient) -> list[dict[str, Any]]:
    response = client.get(OUTBOX, headers=JSON)
    assert response.status_code == 200
    assert response.json is not None
    found: list[dict[str, Any]] = response.json["messages"]
    return found


def send_raw(app: Flask, to: str, subject: str, text: str, html_body: str) -> None:
    with app.app_context():
        connector = app.extensions["postmark_auth"].connectors["default"]
        connector.send(to, subject, text_body=text, html_body=html_body)


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    app = make_app(RESEND_INTERVAL=0)
    assert app.extensions["postmark_auth"].settings.dev_outbox  # testing and no token
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_outbox_lists_mail_newest_first(client: FlaskClient) -> None:
    assert client.post("/auth/otp", json={"email": ANN}).status_code == 202
    assert client.post("/auth/magic-link", json={"email": BOB}).status_code == 202
    page = client.get(OUTBOX)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    body = page.get_data(as_text=True)
    # newest first: Bob's link above Ann's code
    bob_at = body.index(html.escape(BOB))
    ann_at = body.index(html.escape(ANN))
    assert bob_at < ann_at
    found = messages(client)
    assert [m["to"] for m in found] == [BOB, ANN]
    link_mail, code_mail = found
    assert link_mail["tag"] == "magic-link"
    assert code_mail["tag"] == "otp"
    for message in found:
        assert html.escape(message["subject"]) in body
        assert message["stream"] == "outbound"
    # the code is shown in the text part
    code = re.search(r"\b(\d{6})\b", code_mail["text"])
    assert code
    assert code.group(1) in body


def test_text_part_link_is_clickable(client: FlaskClient) -> None:
    client.post("/auth/magic-link", json={"email": ANN})
    [message] = messages(client)
    link = re.search(r"https?://\S+/magic-link/\S+", message["text"])
    assert link
    body = client.get(OUTBOX).get_data(as_text=True)
    assert f'<a href="{html.escape(link.group(0))}">' in body
    # and the link signs in
    path = link.group(0).split("localhost", 1)[1]
    assert client.post(path, json={}).status_code == 200


def test_html_part_is_in_a_sandboxed_iframe_with_scripts_escaped(
    app: Flask, client: FlaskClient
) -> None:
    evil_html = (
        "<p>Hello</p><script>alert('pwned')</script>"
        '<img src=x onerror="alert(2)">" onload="alert(3)'
    )
    evil_text = "<script>alert('text')</script> see https://example.com/a?b=1&c=2"
    send_raw(app, ANN, "Evil <b>subject</b>", evil_text, evil_html)
    body = client.get(OUTBOX).get_data(as_text=True)
    iframes = re.findall(r"<iframe\b[^>]*>", body)
    assert len(iframes) == 1
    iframe = iframes[0]
    assert 'sandbox=""' in iframe
    srcdoc = re.search(r'srcdoc="([^"]*)"', iframe)
    assert srcdoc
    # inside srcdoc the markup is escaped, and unescaping gives the HTML part back
    assert "&lt;script&gt;" in srcdoc.group(1)
    assert html.unescape(srcdoc.group(1)) == evil_html
    # nowhere raw on the page: no script tag but the page's own (its copy button), no
    # injected attribute, no raw subject markup
    assert body.lower().count("<script") == 1
    assert "<script>(function" in body.replace("\n", "")
    assert 'onload="alert(3)' not in body
    assert "<b>subject</b>" not in body
    assert "&lt;b&gt;subject&lt;/b&gt;" in body
    # the text part is escaped too, and its URL still clickable
    assert "&lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;" in body
    assert '<a href="https://example.com/a?b=1&amp;c=2">' in body


def test_outbox_json_form(client: FlaskClient) -> None:
    client.post("/auth/otp", json={"email": ANN})
    [message] = messages(client)
    assert message["to"] == ANN
    assert message["from"] == "Dev outbox <sign-in@example.com>"
    assert message["subject"].startswith("Your sign-in code")
    assert re.search(r"\b\d{6}\b", message["text"])
    assert "<html" in message["html"]
    assert message["tag"] == "otp"
    assert message["id"]
    assert message["created"]


def test_clear_button_empties_the_outbox(client: FlaskClient) -> None:
    client.post("/auth/otp", json={"email": ANN})
    client.post("/auth/otp", json={"email": BOB})
    page = client.get(OUTBOX).get_data(as_text=True)
    assert 'action="/auth/dev/outbox/clear"' in page
    response = client.post("/auth/dev/outbox/clear")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(OUTBOX)
    assert messages(client) == []
    assert "No mail yet" in client.get(OUTBOX).get_data(as_text=True)
    client.post("/auth/otp", json={"email": ANN})
    response = client.post("/auth/dev/outbox/clear", json={})
    assert response.json == {"status": "cleared"}
    assert messages(client) == []


def test_clear_button_form_carries_a_working_csrf_token(make_app: AppFactory) -> None:
    app = make_app(config={"WTF_CSRF_ENABLED": True})
    client = app.test_client()
    client.post("/auth/otp", json={"email": ANN}, headers={"X-CSRFToken": csrf_of(client)})
    page = client.get(OUTBOX).get_data(as_text=True)
    form = re.search(
        r'<form method="post" action="/auth/dev/outbox/clear">(.*?)</form>', page, re.S
    )
    assert form
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.group(1))
    assert token
    assert client.post("/auth/dev/outbox/clear", data={}).status_code == 400
    assert len(messages(client)) == 1
    response = client.post("/auth/dev/outbox/clear", data={"csrf_token": token.group(1)})
    assert response.status_code == 303
    assert messages(client) == []


def csrf_of(client: FlaskClient) -> str:
    page = client.get("/auth/login", headers=JSON)
    assert page.json is not None
    token: str = page.json["csrf_token"]
    return token


def test_two_apps_sharing_a_sqlite_store_share_the_outbox(
    make_app: AppFactory, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/x.db"
    first, second = make_app(STORE=store), make_app(STORE=store)
    one, two = first.test_client(), second.test_client()
    one.post("/auth/otp", json={"email": ANN})
    two.post("/auth/magic-link", json={"email": BOB})
    assert [m["to"] for m in messages(one)] == [BOB, ANN]
    assert [m["to"] for m in messages(two)] == [BOB, ANN]
    # a code shown by the second app's outbox signs in on the first app
    code = re.search(r"\b(\d{6})\b", messages(two)[1]["text"])
    assert code
    response = one.post("/auth/otp/verify", json={"email": ANN, "code": code.group(1)})
    assert response.status_code == 200
    two.post("/auth/dev/outbox/clear", json={})
    assert messages(one) == []


def test_outbox_is_404_when_off(make_app: AppFactory) -> None:
    app = make_app(SERVER_TOKEN="server-token", FROM_EMAIL="Acme <login@acme.example>")
    assert not app.extensions["postmark_auth"].settings.dev_outbox
    client = app.test_client()
    assert client.get(OUTBOX).status_code == 404
    assert client.get(OUTBOX, headers=JSON).status_code == 404
    assert client.post("/auth/dev/outbox/clear", json={}).status_code == 404
    assert "/dev/outbox" not in client.get("/auth/login").get_data(as_text=True)


def test_outbox_off_when_turned_off_in_testing(make_app: AppFactory) -> None:
    client = make_app(DEV_OUTBOX=False, CONNECTORS={"default": fake_connector()}).test_client()
    assert client.get(OUTBOX).status_code == 404


def fake_connector() -> Any:
    from flask_postmark_auth import PostmarkConnector

    return PostmarkConnector(
        "default",
        server_token="server-token",
        from_email="login@acme.example",
        api_url="http://127.0.0.1:9",
        max_retries=0,
    )


def test_dev_outbox_outside_debug_or_testing_is_refused(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="POSTMARK_AUTH_DEV_OUTBOX"):
        make_app(config={"TESTING": False}, DEV_OUTBOX=True)


def test_dev_outbox_is_allowed_in_debug(make_app: AppFactory) -> None:
    auth = PostmarkAuth()
    app = make_app(
        auth=auth, config={"TESTING": False, "DEBUG": True}, DEV_OUTBOX=True, STORE="memory://"
    )
    client = app.test_client()
    client.post("/auth/otp", json={"email": ANN})
    assert auth.flush(5)  # debug without testing delivers in the background by default
    assert [m["to"] for m in messages(client)] == [ANN]


def test_dev_outbox_on_records_instead_of_sending(
    make_app: AppFactory, fake_postmark: FakePostmark
) -> None:
    app = make_app(
        SERVER_TOKEN=fake_postmark.server_token,
        FROM_EMAIL="Acme <login@acme.example>",
        API_URL=fake_postmark.url,
        DEV_OUTBOX=True,
    )
    client = app.test_client()
    assert client.post("/auth/otp", json={"email": ANN}).status_code == 202
    assert fake_postmark.requests == []
    [message] = messages(client)
    assert message["from"] == "Acme <login@acme.example>"


@pytest.mark.parametrize(
    "path", ["/auth/login", "/auth/otp/verify", "/auth/magic-link", "link", "bad-link"]
)
def test_pages_link_to_the_outbox_while_it_is_on(
    make_app: AppFactory, client: FlaskClient, path: str
) -> None:
    if path in ("link", "bad-link"):
        client.post("/auth/magic-link", json={"email": ANN})
        found = re.search(r"https?://[^/\s]+(/\S*/magic-link/\S+)", messages(client)[0]["text"])
        assert found
        path = found.group(1) + ("x" if path == "bad-link" else "")
    body = client.get(path).get_data(as_text=True)
    assert f'href="{OUTBOX}"' in body
    off = make_app(SERVER_TOKEN="server-token", FROM_EMAIL="login@acme.example").test_client()
    if not path.startswith("/auth/magic-link/"):
        assert "/dev/outbox" not in off.get(path).get_data(as_text=True)
