"""Signing in and out in a real browser: codes and links read from FakePostmark."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from flask_postmark_auth.testing import FakePostmark

from .harness import code_in, enter_code, link_in, mail_to, request_code, sign_in_by_code

if TYPE_CHECKING:
    from playwright.sync_api import Expect, Page

pytestmark = pytest.mark.browser


def test_sign_in_by_code(page: Page, fake: FakePostmark, expect: Expect) -> None:
    page.goto("/")
    expect(page.get_by_text("You are not signed in.")).to_be_visible()
    page.get_by_role("link", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/auth/login$"))

    request_code(page, "ada@example.com")
    mail = mail_to(fake, "ada@example.com", "otp")
    assert mail.track_links == "None"
    assert mail.from_ == "Demo <login@example.com>"
    enter_code(page, code_in(mail.text_body))

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_text("Signed in as ada@example.com")).to_be_visible()
    page.get_by_role("navigation").get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator(".meta")).to_contain_text("ada@example.com")


def test_sign_in_by_link_through_the_confirm_page(
    page: Page, fake: FakePostmark, expect: Expect
) -> None:
    page.goto("/account")  # @login_required: off to sign in, and back here after
    expect(page).to_have_url(re.compile(r"/auth/login\?next=%2Faccount$"))
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text("grace@example.com")).to_be_visible()

    link = link_in(mail_to(fake, "grace@example.com", "magic-link").text_body)
    response = page.goto(link)
    assert response is not None
    assert response.headers["referrer-policy"] == "no-referrer"
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # Opening the link (as a mail scanner would) signs nobody in.
    assert page.request.get("/account", max_redirects=0).status == 302

    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.locator(".meta")).to_contain_text("grace@example.com")


def test_a_used_link_is_refused(page: Page, fake: FakePostmark, expect: Expect) -> None:
    page.goto("/")
    page.get_by_label("Email address").fill("linus@example.com")
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    link = link_in(mail_to(fake, "linus@example.com", "magic-link").text_body)

    # Two tabs show the confirm page; the first button press uses the link up.
    page.goto(link)
    other = page.context.new_page()
    other.goto(link)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as linus@example.com")).to_be_visible()
    other.get_by_role("button", name="Sign in").click()
    expect(other.get_by_role("heading", name="Sign-in link not valid")).to_be_visible()
    expect(other.get_by_role("alert")).to_have_text(
        "This sign-in link is invalid, expired or already used."
    )

    # Signed out, the link still does nothing but say so.
    page.get_by_role("button", name="Sign out").click()
    response = page.goto(link)
    assert response is not None
    assert response.status == 400
    expect(page.get_by_role("heading", name="Sign-in link not valid")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_have_count(0)
    page.get_by_role("link", name="Request a new sign-in link").click()
    expect(page).to_have_url(re.compile(r"/auth/login$"))


def test_wrong_code_then_right_code(page: Page, fake: FakePostmark, expect: Expect) -> None:
    page.goto("/auth/login")
    request_code(page, "alan@example.com")
    code = code_in(mail_to(fake, "alan@example.com", "otp").text_body)
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))

    enter_code(page, wrong)
    expect(page.get_by_role("alert")).to_contain_text("That code is not valid")
    expect(page.get_by_role("alert")).to_contain_text("4 attempts left")
    expect(page.get_by_label("Email address")).to_have_value("alan@example.com")

    enter_code(page, code)
    expect(page.get_by_text("Signed in as alan@example.com")).to_be_visible()


def test_sign_out(page: Page, fake: FakePostmark, expect: Expect) -> None:
    sign_in_by_code(page, fake, "barbara@example.com")
    expect(page.locator(".who")).to_contain_text("barbara@example.com")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_text("You are not signed in.")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))
