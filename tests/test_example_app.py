"""The demo app: sign in through the dev outbox, then test the connector."""

from __future__ import annotations

import re

import pytest

from example_app import create_app
from flask_postmark_auth.testing import FakePostmark


def test_demo_signs_in_through_the_outbox_and_tests_the_connector(
    fake_postmark: FakePostmark,
) -> None:
    app = create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "POSTMARK_AUTH_SERVER_TOKEN": fake_postmark.server_token,
            "POSTMARK_AUTH_FROM_EMAIL": "Demo <login@example.com>",
            "POSTMARK_AUTH_API_URL": fake_postmark.url,
            "POSTMARK_AUTH_DEV_OUTBOX": True,
            "POSTMARK_AUTH_STORE": "memory://",
        }
    )
    client = app.test_client()
    assert "Dev outbox on" in client.get("/").get_data(as_text=True)
    assert client.get("/connector").status_code == 302  # sign in first
    assert client.post("/auth/otp", json={"email": "me@example.com"}).status_code == 202
    outbox = client.get("/auth/dev/outbox", headers={"Accept": "application/json"}).json
    assert outbox is not None
    code = re.search(r"\b\d{6}\b", outbox["messages"][0]["text"])
    assert code
    client.post("/auth/otp/verify", json={"email": "me@example.com", "code": code.group(0)})
    assert "Signed in as" in client.get("/").get_data(as_text=True)
    page = client.post("/connector", data={"send_to": ""}).get_data(as_text=True)
    assert "All 3 checks passed." in page
    assert fake_postmark.messages == []  # mail went to the outbox, not to Postmark


def test_environment_config_keeps_strings_and_reads_booleans() -> None:
    from example_app import env_config

    config = env_config(
        {
            "POSTMARK_AUTH_SERVER_TOKEN": "1234",
            "POSTMARK_AUTH_FROM_EMAIL": "Acme <login@acme.example>",
            "POSTMARK_AUTH_MESSAGE_STREAM": "outbound",
            "POSTMARK_AUTH_DEV_OUTBOX": "False",
            "POSTMARK_AUTH_OTP_LENGTH": "8",
            "POSTMARK_AUTH_METHODS": '["otp"]',
            "HOME": "/root",
        }
    )
    assert config == {
        "POSTMARK_AUTH_SERVER_TOKEN": "1234",
        "POSTMARK_AUTH_FROM_EMAIL": "Acme <login@acme.example>",
        "POSTMARK_AUTH_MESSAGE_STREAM": "outbound",
        "POSTMARK_AUTH_DEV_OUTBOX": False,
        "POSTMARK_AUTH_OTP_LENGTH": 8,
        "POSTMARK_AUTH_METHODS": ["otp"],
    }


def test_a_token_in_the_environment_sends_for_real(
    fake_postmark: FakePostmark, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTMARK_AUTH_SERVER_TOKEN", fake_postmark.server_token)
    monkeypatch.setenv("POSTMARK_AUTH_FROM_EMAIL", "Acme <login@acme.example>")
    monkeypatch.setenv("POSTMARK_AUTH_MESSAGE_STREAM", "outbound")
    monkeypatch.setenv("POSTMARK_AUTH_API_URL", fake_postmark.url)
    app = create_app({"TESTING": True, "POSTMARK_AUTH_STORE": "memory://"})
    assert "example_fake_postmark" not in app.extensions
    assert not app.debug
    client = app.test_client()
    home = client.get("/").get_data(as_text=True)
    assert "Dev outbox" not in home
    assert client.get("/auth/dev/outbox").status_code == 404
    page = client.get("/auth/login", headers={"Accept": "application/json"})
    assert page.json is not None
    csrf = page.json["csrf_token"]
    response = client.post(
        "/auth/otp", json={"email": "me@example.com"}, headers={"X-CSRFToken": csrf}
    )
    assert response.status_code == 202
    (mail,) = fake_postmark.messages
    assert (mail.to, mail.from_, mail.message_stream) == (
        "me@example.com",
        "Acme <login@acme.example>",
        "outbound",
    )


def test_no_token_means_debug_with_the_dev_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTMARK_AUTH_SERVER_TOKEN", raising=False)
    app = create_app({"POSTMARK_AUTH_STORE": "memory://"})
    fake = app.extensions["example_fake_postmark"]
    try:
        assert app.debug
        page = app.test_client().get("/").get_data(as_text=True)
        assert "Dev outbox on: mail is recorded, not sent." in page
        assert 'href="/auth/dev/outbox"' in page
    finally:
        fake.stop()


def test_contact_form_checks_its_fields(fake_postmark: FakePostmark) -> None:
    app = create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "POSTMARK_AUTH_SERVER_TOKEN": fake_postmark.server_token,
            "POSTMARK_AUTH_FROM_EMAIL": "Demo <login@example.com>",
            "POSTMARK_AUTH_API_URL": fake_postmark.url,
            "POSTMARK_AUTH_STORE": "memory://",
        }
    )
    client = app.test_client()
    response = client.post("/contact", data={"email": "a@example.com", "message": " "})
    assert response.status_code == 400
    assert "Please give your email address and a message." in response.get_data(as_text=True)
    response = client.post("/contact", data={"email": "a@example.com", "message": "x" * 2001})
    assert response.status_code == 400
    response = client.post("/contact", data={"email": "not an address", "message": "Hi"})
    assert response.status_code == 400
    assert fake_postmark.messages == []
    response = client.post("/contact", data={"email": "a@example.com", "message": "Hi"})
    assert response.status_code == 200
    assert "Thanks! We emailed a@example.com." in response.get_data(as_text=True)
    assert [m.tag for m in fake_postmark.messages] == ["contact"]
