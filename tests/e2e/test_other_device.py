"""Signing in on another device, in Chromium: two browser contexts, a laptop that asks for a
link and waits, and a phone that opens the link and approves the laptop by its number."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from flask_postmark_auth.testing import FakePostmark

from .harness import LiveServer, link_in, mail_to

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Expect, Page, ViewportSize

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Browser, live: LiveServer) -> Iterator[Page]:
    """A second browser (cookies of its own), phone-sized."""
    context = browser.new_context(base_url=live.url, viewport=PHONE, is_mobile=True)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def ask_for_a_link(page: Page, expect: Expect, email: str) -> int:
    """On the laptop: ask for a link from /account's sign-in; the number the page shows."""
    page.goto("/account")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    number = page.locator("#link-number").inner_text()
    assert re.fullmatch(r"[1-9]\d", number), number
    return int(number)


def test_the_phone_approves_by_number_and_the_laptop_signs_in_by_itself(
    page: Page, phone: Page, fake: FakePostmark, expect: Expect
) -> None:
    number = ask_for_a_link(page, expect, "ada@example.com")
    phone.goto(link_in(mail_to(fake, "ada@example.com", "magic-link").text_body))
    expect(phone.get_by_role("heading", name="Sign in where?")).to_be_visible()
    expect(phone.locator("#link-email")).to_have_text("ada@example.com")
    expect(phone.get_by_role("button", name="Sign in on this device")).to_be_visible()

    phone.get_by_label("Number on the other device").fill(str(number))
    phone.get_by_role("button", name="Approve the other device").click()
    expect(phone.get_by_role("heading", name="Approved")).to_be_visible()
    # The laptop's page moves on by itself, to where it was going, signed in.
    expect(page).to_have_url(re.compile(r"/account$"), timeout=15_000)
    expect(page.locator(".meta")).to_contain_text("ada@example.com")
    # The phone was not signed in.
    phone.goto("/")
    expect(phone.get_by_text("You are not signed in.")).to_be_visible()


def test_a_wrong_number_stops_the_laptop_waiting(
    page: Page, phone: Page, fake: FakePostmark, expect: Expect
) -> None:
    number = ask_for_a_link(page, expect, "alan@example.com")
    phone.goto(link_in(mail_to(fake, "alan@example.com", "magic-link").text_body))
    phone.get_by_label("Number on the other device").fill(str(10 + (number - 9) % 90))
    phone.get_by_role("button", name="Approve the other device").click()
    expect(phone.get_by_role("heading", name="Sign-in link not valid")).to_be_visible()
    expect(phone.get_by_role("alert")).to_contain_text("does not match")
    expect(page.locator("#wait-status")).to_contain_text("Ask for a new one", timeout=15_000)
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()


def test_signing_in_on_the_phone_instead(
    page: Page, phone: Page, fake: FakePostmark, expect: Expect
) -> None:
    ask_for_a_link(page, expect, "grace@example.com")
    phone.goto(link_in(mail_to(fake, "grace@example.com", "magic-link").text_body))
    phone.get_by_role("button", name="Sign in on this device").click()
    expect(phone).to_have_url(re.compile(r"/account$"))
    expect(phone.locator(".meta")).to_contain_text("grace@example.com")
    expect(page.locator("#wait-status")).to_contain_text("used on another device", timeout=15_000)
