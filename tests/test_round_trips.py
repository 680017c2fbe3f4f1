"""What a sign-in costs the store: on Redis, each sign-in request is at most two round trips
(the counting with the reads it needs, then the writes), whoever the address is; a batch is
one pipeline. Counted at the socket, so a change that adds a call fails here."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_postmark_auth.testing import code_in, link_in, record_messages
from tests.helpers import AppFactory, count_round_trips

pytestmark = pytest.mark.redis

ANN = "ann@example.com"


@pytest.fixture
def app(make_app: AppFactory, redis_url: str) -> Flask:
    made = make_app(STORE=redis_url, DELIVERY="sync", RESEND_INTERVAL=0)
    # The first use of each script on a server loads it (once per server): not counted.
    client = made.test_client()
    with record_messages(made) as outbox:
        client.post("/auth/otp", json={"email": "warm@example.com"})
        client.post("/auth/magic-link", json={"email": "warm@example.com"})
    body = {"email": "warm@example.com", "code": code_in(outbox[0])}
    assert client.post("/auth/otp/verify", json=body).status_code == 200
    client.post("/auth/logout", json={})
    assert client.post(link_in(outbox[1]), json={}).status_code == 200
    client.post("/auth/logout", json={})
    client.post("/auth/otp/verify", json={"email": "none@example.com", "code": "123456"})
    return made


def trips(
    monkeypatch: pytest.MonkeyPatch, client: FlaskClient, url: str, body: dict[str, str]
) -> tuple[int, int]:
    """The answer's status and the round trips to Redis it took."""
    with monkeypatch.context() as patch:
        sent = count_round_trips(patch)
        status = client.post(url, json=body).status_code
    return status, len(sent)


def test_a_code_sign_in_is_two_round_trips_a_request(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    for first in (True, False):  # the first makes the built-in user, in the same batch
        with record_messages(app) as outbox:
            assert trips(monkeypatch, client, "/auth/otp", {"email": ANN}) == (202, 2)
        body = {"email": ANN, "code": code_in(outbox[0])}
        assert trips(monkeypatch, client, "/auth/otp/verify", body) == (200, 2), first
        assert trips(monkeypatch, client, "/auth/logout", {}) == (200, 2)


def test_failures_cost_no_more_than_they_must(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    with record_messages(app) as outbox:
        client.post("/auth/otp", json={"email": ANN})
    code = code_in(outbox[0])
    wrong = "000000" if code != "000000" else "111111"
    assert trips(monkeypatch, client, "/auth/otp/verify", {"email": ANN, "code": wrong}) == (
        400,
        1,
    )
    assert trips(monkeypatch, client, "/auth/otp/verify", {"email": ANN, "code": "12"}) == (
        400,
        1,
    )
    # Nothing pending: the guess is counted and given back (no attempt is used).
    body = {"email": "bob@example.com", "code": "123456"}
    assert trips(monkeypatch, client, "/auth/otp/verify", body) == (400, 2)


def test_a_link_sign_in_is_at_most_four_round_trips(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    with record_messages(app) as outbox:
        assert trips(monkeypatch, client, "/auth/magic-link", {"email": ANN}) == (202, 2)
    status, count = trips(monkeypatch, client, link_in(outbox[0]), {})
    assert status == 200
    assert count <= 4  # the confirm page reads the link, the sign-in reads it again
