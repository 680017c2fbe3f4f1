"""The demo as a newcomer runs it: no Postmark account, mail read from the dev outbox page."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from flask_postmark_auth.testing import FakePostmark

from .harness import code_in, enter_code

if TYPE_CHECKING:
    from playwright.sync_api import Expect, Page

pytestmark = pytest.mark.browser


def test_sign_in_with_the_code_from_the_outbox_page(
    outbox_page: Page, fake: FakePostmark, expect: Expect
) -> None:
    page = outbox_page
    page.goto("/")
    for path in ("/", "/contact", "/auth/login", "/auth/otp/verify"):
        page.goto(path)  # every page links the outbox: the demo's and the extension's
        expect(page.get_by_label("Developer notice")).to_contain_text("mail is recorded, not sent")
        link = page.get_by_role("link", name=re.compile("dev outbox", re.IGNORECASE))
        expect(link.first).to_have_attribute("href", "/auth/dev/outbox")

    page.goto("/")
    page.get_by_label("Email address").fill("newcomer@example.com")
    page.get_by_role("button", name="Email me a code").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()

    # The extension's page links the outbox too.
    page.get_by_role("link", name="Open the dev outbox").click()
    expect(page.get_by_role("heading", name="Dev outbox")).to_be_visible()
    message = page.locator("li.message").first
    expect(message.locator(".to")).to_have_text("newcomer@example.com")
    code = message.locator("code.otp").inner_text()
    message.get_by_text("Show the message").click()  # the whole email, one click away
    assert code_in(message.locator("pre").first.inner_text()) == code

    page.go_back()
    expect(page.get_by_label("Email address")).to_have_value("newcomer@example.com")
    enter_code(page, code)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_text("Signed in as newcomer@example.com")).to_be_visible()
    assert fake.messages == []  # recorded, never sent to Postmark


def test_the_link_in_the_outbox_signs_in(
    outbox_page: Page, fake: FakePostmark, expect: Expect
) -> None:
    page = outbox_page
    page.goto("/auth/login")
    page.get_by_label("Email address").fill("clicker@example.com")
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("link", name="Open the dev outbox").click()

    message = page.locator("li.message").first
    message.get_by_role("link", name="Open the sign-in link").click()
    expect(page).to_have_url(re.compile(r"/auth/magic-link/[\w.\-]+$"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as clicker@example.com")).to_be_visible()
    assert fake.messages == []
