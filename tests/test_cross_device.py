"""Signing in on another device (issue 14): a link asked for on a laptop, opened on a phone,
approves the laptop by the number its waiting page shows. Two test clients are two
browsers; the store-level races run in the store contract suite, on every backend."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import current_user

from flask_postmark_auth import signals
from flask_postmark_auth.testing import FakeClock, link_in, record_messages
from tests.helpers import AppFactory

ANN = "ann@example.com"
JSON = {"Accept": "application/json"}
STATUS = "/auth/magic-link/status"


def with_whoami(app: Flask) -> Flask:
    @app.get("/whoami")
    def whoami() -> str:
        return current_user.email if current_user.is_authenticated else ""

    return app


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return with_whoami(make_app(RESEND_INTERVAL=0))


def ask(app: Flask, laptop: FlaskClient, email: str = ANN, **extra: Any) -> tuple[str, int]:
    """The laptop asks for a link by JSON: the link's path and the number it shows."""
    with record_messages(app) as outbox:
        response = laptop.post("/auth/magic-link", json={"email": email, **extra})
    assert response.status_code == 202
    assert response.json is not None
    number = response.json["number"]
    assert isinstance(number, int)
    assert 10 <= number <= 99
    return link_in(outbox[0]), number


def whoami(client: FlaskClient) -> str:
    return client.get("/whoami").get_data(as_text=True)


def other(number: int) -> int:
    """A two-digit number that is not ``number``."""
    return 10 + (number - 10 + 1) % 90


def test_the_phone_approves_and_the_laptop_signs_in(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    path, number = ask(app, laptop, next="/after")
    assert laptop.get(STATUS, headers=JSON).json == {"status": "pending"}
    assert laptop.get(STATUS, headers=JSON).status_code == 202

    shown = phone.get(path, headers=JSON).json
    assert shown == {"valid": True, "email": ANN, "same_device": False, "can_approve": True}
    html = phone.get(path).get_data(as_text=True)
    assert "Approve the other device" in html
    assert "Sign in on this device" in html
    assert f">{number}<" not in html  # the number is only on the laptop's screen

    seen: list[dict[str, Any]] = []
    with signals.user_signed_in.connected_to(lambda s, **kw: seen.append(kw), app):
        approved = phone.post(path, json={"approve": "other_device", "number": number})
        assert approved.status_code == 200
        assert approved.json == {"status": "approved"}
        assert whoami(phone) == ""  # the phone signs in nobody
        assert seen == []
        answer = laptop.get(STATUS, headers=JSON)
    assert answer.status_code == 200
    body = answer.json
    assert body is not None
    assert body.pop("csrf_token")
    assert body == {"status": "signed_in", "user": {"id": ANN, "email": ANN}, "next": "/after"}
    assert whoami(laptop) == ANN
    assert [(kw["method"], kw["device"]) for kw in seen] == [("magic_link", "other")]
    # Single use: the approval is gone, and so is the link.
    assert laptop.get(STATUS, headers=JSON).status_code == 400
    assert phone.post(path, json={}).status_code == 400
    assert phone.post(path, json={"approve": "other_device", "number": number}).status_code == 400


def test_the_waiting_page_shows_the_number_and_a_plain_link_to_go_on(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    with record_messages(app) as outbox:
        asked = laptop.post("/auth/magic-link", data={"email": ANN, "next": "/after"})
    assert asked.status_code == 303
    page = laptop.get(asked.headers["Location"]).get_data(as_text=True)
    number = int(re.search(r'id="link-number"[^>]*>(\d\d)<', page).group(1))  # type: ignore[union-attr]
    assert f'href="{STATUS}"' in page  # for people without JavaScript
    assert 'data-status-url="/auth/magic-link/status"' in page
    waiting = laptop.get(STATUS)  # not approved yet: the page again, saying so
    assert waiting.status_code == 202
    assert "Not approved yet" in waiting.get_data(as_text=True)

    path = link_in(outbox[0])
    approved = phone.post(path, data={"approve": "other_device", "number": f" {number} "})
    assert approved.status_code == 200
    assert "The other device signs in by itself" in approved.get_data(as_text=True)
    done = laptop.get(STATUS)
    assert done.status_code == 303
    assert done.headers["Location"] == "/after"
    assert whoami(laptop) == ANN
    gone = laptop.get(STATUS)
    assert gone.status_code == 400
    assert "Request a new sign-in link" in gone.get_data(as_text=True)


def test_a_wrong_number_voids_the_link(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    path, number = ask(app, laptop)
    failed: list[str] = []
    with signals.sign_in_failed.connected_to(lambda s, **kw: failed.append(kw["reason"]), app):
        wrong = phone.post(path, json={"approve": "other_device", "number": other(number)})
    assert wrong.status_code == 400
    assert wrong.json is not None
    assert wrong.json["error"] == "invalid_link"
    assert failed == ["wrong number: the link is void"]
    # Void for everyone: the right number, signing in on the phone, and the laptop's wait.
    assert phone.post(path, json={"approve": "other_device", "number": number}).status_code == 400
    assert phone.post(path, json={}).status_code == 400
    assert laptop.get(STATUS, headers=JSON).status_code == 400
    assert whoami(laptop) == whoami(phone) == ""


@pytest.mark.parametrize("typed", ["", "ab", "4", "123", None, True, 7, 100, [42]])
def test_input_that_is_no_number_voids_nothing(app: Flask, typed: object) -> None:
    laptop, phone = app.test_client(), app.test_client()
    path, number = ask(app, laptop)
    answer = phone.post(path, json={"approve": "other_device", "number": typed})
    assert answer.status_code == 400
    assert answer.json is not None
    assert answer.json["message"] == "Enter the two-digit number the other device shows."
    page = phone.post(path, data={"approve": "other_device", "number": "x"})
    assert page.status_code == 400
    assert "Approve the other device" in page.get_data(as_text=True)  # the form, again
    assert phone.post(path, json={"approve": "other_device", "number": str(number)}).json == {
        "status": "approved"
    }


def test_signing_in_on_the_phone_ends_the_laptops_wait(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    path, _ = ask(app, laptop)
    seen: list[str] = []
    with signals.user_signed_in.connected_to(lambda s, **kw: seen.append(kw["device"]), app):
        assert phone.post(path, json={}).status_code == 200
    assert seen == ["this"]
    assert whoami(phone) == ANN
    assert laptop.get(STATUS, headers=JSON).status_code == 400
    assert whoami(laptop) == ""


def test_the_browser_that_asked_signs_in_as_before(make_app: AppFactory) -> None:
    app = with_whoami(make_app(MAGIC_LINK_CONFIRM=False))
    laptop = app.test_client()
    path, _ = ask(app, laptop)
    assert laptop.get(path).status_code == 303  # confirm off: at once, in this browser only
    assert laptop.get(STATUS, headers=JSON).status_code == 400  # nothing to wait for


def test_the_confirm_page_in_the_browser_that_asked_offers_no_approval(app: Flask) -> None:
    laptop = app.test_client()
    path, _ = ask(app, laptop)
    shown = laptop.get(path, headers=JSON).json
    assert shown == {"valid": True, "email": ANN, "same_device": True, "can_approve": False}
    html = laptop.get(path).get_data(as_text=True)
    assert "Approve the other device" not in html
    assert "Sign in on this device" not in html
    assert "Press the button to finish signing in." in html


def test_only_the_browser_that_asked_can_wait_for_the_link(app: Flask) -> None:
    laptop, phone, stranger = app.test_client(), app.test_client(), app.test_client()
    path, number = ask(app, laptop)
    ask(app, stranger, "eve@example.com")  # a wait of its own does not see Ann's
    assert stranger.get(STATUS, headers=JSON).status_code == 202
    assert app.test_client().get(STATUS, headers=JSON).json == {
        "error": "invalid_link",
        "message": "This sign-in link is invalid, expired or already used.",
    }
    assert phone.post(path, json={"approve": "other_device", "number": number}).status_code == 200
    assert stranger.get(STATUS, headers=JSON).status_code == 202  # still its own, pending
    assert whoami(stranger) == ""
    assert laptop.get(STATUS, headers=JSON).status_code == 200


def test_a_link_without_a_waiting_browser_cannot_approve(app: Flask) -> None:
    phone = app.test_client()
    with app.app_context():  # a link made outside a browser (no waiter, no number)
        _, token = app.extensions["postmark_auth"].service.links.issue(ANN, None, None, None)
    path = f"/auth/magic-link/{token}"
    shown = phone.get(path, headers=JSON).json
    assert shown == {"valid": True, "email": ANN, "same_device": False, "can_approve": False}
    assert "Approve the other device" not in phone.get(path).get_data(as_text=True)
    assert phone.post(path, json={"approve": "other_device", "number": 42}).status_code == 400
    assert phone.post(path, json={}).status_code == 200  # the link itself still works
    assert whoami(phone) == ANN


def test_a_newer_link_replaces_the_wait(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    first, first_number = ask(app, laptop)
    second, second_number = ask(app, laptop)
    # The first link now looks like another browser's (the laptop waits for the second).
    assert laptop.get(first, headers=JSON).json["same_device"] is False  # type: ignore[index]
    assert phone.post(first, json={"approve": "other_device", "number": first_number}).json == {
        "status": "approved"
    }
    assert laptop.get(STATUS, headers=JSON).status_code == 202  # waits for the second
    assert (
        phone.post(second, json={"approve": "other_device", "number": second_number}).status_code
        == 200
    )
    assert laptop.get(STATUS, headers=JSON).status_code == 200


def test_the_wait_expires_with_the_link(app: Flask, clock: FakeClock) -> None:
    laptop, phone = app.test_client(), app.test_client()
    path, number = ask(app, laptop)
    clock.advance(900)
    assert laptop.get(STATUS, headers=JSON).status_code == 400
    assert phone.post(path, json={"approve": "other_device", "number": number}).status_code == 400


def test_an_approval_expires_with_its_link(app: Flask, clock: FakeClock) -> None:
    laptop, phone = app.test_client(), app.test_client()
    path, number = ask(app, laptop)
    clock.advance(890)
    assert phone.post(path, json={"approve": "other_device", "number": number}).status_code == 200
    clock.advance(10)
    assert laptop.get(STATUS, headers=JSON).status_code == 400
    assert whoami(laptop) == ""


def test_polling_counts_against_no_throttle(make_app: AppFactory) -> None:
    app = with_whoami(make_app(IP_REQUESTS_PER_HOUR=5, RESEND_INTERVAL=0))
    laptop, phone = app.test_client(), app.test_client()
    path, number = ask(app, laptop)
    for _ in range(200):
        assert laptop.get(STATUS, headers=JSON).status_code == 202
    assert app.test_client().get(STATUS, headers=JSON).status_code == 400  # no wait: no count
    assert phone.post(path, json={"approve": "other_device", "number": number}).status_code == 200
    assert laptop.get(STATUS, headers=JSON).status_code == 200


def test_keep_me_signed_in_on_the_waiting_page(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    path, number = ask(app, laptop)
    phone.post(path, json={"approve": "other_device", "number": number})
    answer = laptop.get(STATUS + "?remember=1", headers=JSON)
    assert answer.status_code == 200
    assert "remember_token=" in " ".join(answer.headers.getlist("Set-Cookie"))


def test_approving_changes_nothing_for_whoever_is_signed_in_on_the_phone(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    path, _ = ask(app, phone, "bob@example.com")
    phone.post(path, json={})
    assert whoami(phone) == "bob@example.com"
    path, number = ask(app, laptop)
    html = phone.get(path).get_data(as_text=True)
    assert "You are signed in as" in html
    assert "bob@example.com" in html
    assert phone.post(path, json={"approve": "other_device", "number": number}).status_code == 200
    assert whoami(phone) == "bob@example.com"
    assert laptop.get(STATUS, headers=JSON).status_code == 200
    assert whoami(laptop) == ANN


def test_a_link_opened_elsewhere_never_switches_accounts_unasked(make_app: AppFactory) -> None:
    """An attacker asks for a link to their own account and gets the victim to open it: the
    victim's browser shows whose account it is and asks; with confirm off as well."""
    app = with_whoami(make_app(MAGIC_LINK_CONFIRM=False, RESEND_INTERVAL=0))
    attacker, victim = app.test_client(), app.test_client()
    path, _ = ask(app, victim, "victim@example.com")
    victim.post(path, json={})
    path, number = ask(app, attacker, "attacker@example.net")
    page = victim.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "attacker@example.net" in html
    assert "You are signed in as" in html
    assert whoami(victim) == "victim@example.com"
    # Approving needs the number only the attacker's screen shows: a wrong guess voids
    # the link, and no answer signs the victim's browser in to the attacker's account.
    assert (
        victim.post(
            path, json={"approve": "other_device", "number": 50 if number != 50 else 51}
        ).status_code
        == 400
    )
    assert whoami(victim) == "victim@example.com"
    assert attacker.get(STATUS, headers=JSON).status_code == 400
