"""The demo's own pages in a real browser: the contact flow and the connector's Test panel."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from flask_postmark_auth.testing import FakePostmark

from .harness import mail_to, sign_in_by_code

if TYPE_CHECKING:
    from playwright.sync_api import Expect, Page

pytestmark = pytest.mark.browser


def test_contact_form_runs_the_flow(page: Page, fake: FakePostmark, expect: Expect) -> None:
    page.goto("/")
    page.get_by_role("navigation").get_by_role("link", name="Contact").click()
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Email address").fill("ada@example.org")
    page.get_by_label("Message").fill("Hello <b>team</b>, visit http://spam.example")
    page.get_by_role("button", name="Send").click()

    expect(page.get_by_role("status")).to_have_text("Thanks! We emailed ada@example.org.")
    mail = mail_to(fake, "ada@example.org", "contact")
    # Signed out, the address is unproven: the thank-you carries none of the visitor's words.
    assert mail.subject == "Thanks for writing"
    assert "spam.example" not in (mail.text_body or "") + (mail.html_body or "")
    assert mail.from_ == "Demo <login@example.com>"


def test_contact_form_signed_in_repeats_the_message(
    page: Page, fake: FakePostmark, expect: Expect
) -> None:
    sign_in_by_code(page, fake, "ada@example.org")
    page.goto("/contact")
    expect(page.get_by_label("Email address")).to_have_value("ada@example.org")
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Message").fill("Hello <b>team</b>")
    page.get_by_role("button", name="Send").click()

    expect(page.get_by_role("status")).to_have_text("Thanks! We emailed ada@example.org.")
    mail = mail_to(fake, "ada@example.org", "contact")
    assert mail.subject == "Thanks for writing, Ada"
    assert "Hello <b>team</b>" in (mail.text_body or "")
    assert "Hello &lt;b&gt;team&lt;/b&gt;" in (mail.html_body or "")  # html is autoescaped


def test_contact_form_refuses_a_bad_address(
    page: Page, fake: FakePostmark, expect: Expect
) -> None:
    page.goto("/contact")
    page.get_by_label("Email address").fill("ada@localhost")  # the browser lets it through
    page.get_by_label("Message").fill("Hi")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_have_text(
        "We could not send that: check the address and try again."
    )
    expect(page.get_by_label("Message")).to_have_value("Hi")
    assert fake.messages == []


def test_connector_needs_sign_in_and_its_test_passes(
    page: Page, fake: FakePostmark, expect: Expect
) -> None:
    page.goto("/connector")
    expect(page).to_have_url(re.compile(r"/auth/login\?next=%2Fconnector$"))
    sign_in_by_code(page, fake, "ops@example.com")
    expect(page).to_have_url(re.compile(r"/connector$"))
    expect(page.get_by_role("heading", name="Connector default")).to_be_visible()
    expect(page.locator(".meta")).not_to_contain_text(fake.server_token)

    page.get_by_label("Also send a test email to").fill("ops@example.com")
    page.get_by_role("button", name="Test", exact=True).click()

    panel = page.locator("#results")
    expect(panel.get_by_role("heading", name="Test Results")).to_be_visible()
    expect(panel.get_by_role("status")).to_have_text("All 4 checks passed.")
    expect(panel.locator(".badge.pass")).to_have_count(4)
    expect(panel.locator("li", has_text="Server API Token")).to_contain_text(
        "valid for server 'E2E FakePostmark' (Live)"
    )
    expect(panel.locator("li", has_text="Test email")).to_contain_text("sent, MessageID")
    test_mail = mail_to(fake, "ops@example.com", "connector-test")
    expect(panel).to_contain_text(test_mail.message_id)


@pytest.mark.parametrize(
    ("broken", "failing", "summary"),
    [
        pytest.param("stream", ["Message stream"], "1 of 3 checks failed.", id="no-stream"),
        pytest.param(
            "token",
            ["Server API Token", "Message stream"],
            "2 of 3 checks failed.",
            id="revoked-token",
        ),
    ],
)
def test_connector_test_shows_failing_checks(
    page: Page,
    fake: FakePostmark,
    expect: Expect,
    broken: str,
    failing: list[str],
    summary: str,
) -> None:
    sign_in_by_code(page, fake, "ops@example.com")
    if broken == "stream":
        fake.streams.pop("outbound")
    else:
        fake.server_token = "revoked-server-token"
    page.goto("/connector")
    page.get_by_role("button", name="Test", exact=True).click()

    panel = page.locator("#results")
    expect(panel.get_by_role("status")).to_have_text(summary)
    expect(panel.locator(".badge.fail")).to_have_count(len(failing))
    for name in failing:
        expect(panel.locator("li.fail", has_text=name)).to_have_count(1)
    expect(panel.locator("li.pass", has_text="From address")).to_have_count(1)
    if broken == "stream":
        expect(panel).to_contain_text("'outbound' does not exist on this server")
    else:
        expect(panel).to_contain_text("not checked: no valid token")
        expect(panel).not_to_contain_text("revoked-server-token")
