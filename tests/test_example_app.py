"""The demo app: sign in through the dev outbox, then test the connector."""

from __future__ import annotations

import re

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
    code = re.search(r"\b\d{6}\b", outbox["messages"][0]["text"])
    assert code
    client.post("/auth/otp/verify", json={"email": "me@example.com", "code": code.group(0)})
    assert "Signed in as" in client.get("/").get_data(as_text=True)
    page = client.post("/connector", data={"send_to": ""}).get_data(as_text=True)
    assert "All 3 checks passed." in page
    assert fake_postmark.messages == []  # mail went to the outbox, not to Postmark
