"""Issue 13 as a person meets it, in Chromium at 1280 and 390 px: a pasted code signs in,
five wrong codes end in one-click "Send a new code", the demo's nav stays on every sign-in
page, and the dev outbox is a compact list with a copy button."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from example_app import create_app
from flask_postmark_auth.testing import FakePostmark
from support.redis_server import free_port

from .harness import LiveServer, app_config, code_in, link_in, mail_to, request_code

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Expect, Page

pytestmark = pytest.mark.browser

WIDTHS = [1280, 390]


def serve(config: dict[str, Any]) -> Iterator[LiveServer]:
    port = free_port()
    config = {"POSTMARK_AUTH_BASE_URL": f"http://127.0.0.1:{port}", **config}
    with LiveServer(create_app(config), port) as live:
        yield live


@pytest.fixture
def quick(fake: FakePostmark) -> Iterator[LiveServer]:
    """The demo sending through ``fake``, with a 3 s resend interval (so a test waits it out)."""
    yield from serve({**app_config(fake, "memory://"), "POSTMARK_AUTH_RESEND_INTERVAL": 3})


@pytest.fixture
def demo(fake: FakePostmark) -> Iterator[LiveServer]:
    """The demo as `make demo` runs it: the dev outbox on."""
    yield from serve(app_config(fake, "memory://", dev_outbox=True))


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def width(request: pytest.FixtureRequest) -> int:
    value: int = request.param
    return value


def open_at(browser: Browser, url: str, width: int) -> Page:
    context = browser.new_context(
        base_url=url, viewport={"width": width, "height": 800}, color_scheme="light"
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    context.set_default_timeout(10_000)
    return context.new_page()


def paste(page: Page, selector: str, value: str) -> None:
    """A real paste: ``value`` on the clipboard, then Ctrl+V into the field."""
    page.evaluate("value => navigator.clipboard.writeText(value)", value)
    page.locator(selector).fill("")
    page.locator(selector).focus()
    page.keyboard.press("Control+V")


def fits(page: Page, width: int) -> None:
    """Nothing sticks out sideways at this width."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll} px wide at {width} px"


def test_a_pasted_code_signs_in(
    browser: Browser, live: LiveServer, fake: FakePostmark, expect: Expect, width: int
) -> None:
    page = open_at(browser, live.url, width)
    page.goto("/auth/login")
    request_code(page, "paster@example.com")
    paste(page, "#code", "136 679")
    expect(page.locator("#code")).to_have_value("136679")  # not cut to "136 67"

    code = code_in(mail_to(fake, "paster@example.com", "otp").text_body)
    paste(page, "#code", f" {code[:3]}-{code[3:]} ")
    expect(page.locator("#code")).to_have_value(code)
    fits(page, width)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.context.close()


def test_five_wrong_codes_then_send_a_new_code(
    browser: Browser, quick: LiveServer, fake: FakePostmark, expect: Expect, width: int
) -> None:
    page = open_at(browser, quick.url, width)
    address = f"unlucky{width}@example.com"
    page.goto("/account")  # login_required: the sign-in page, with next=/account
    request_code(page, address)
    code = code_in(mail_to(fake, address, "otp").text_body)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        page.get_by_label("Sign-in code").fill(wrong)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Get a new code")).to_be_visible()
    expect(page.get_by_label("Sign-in code")).to_have_count(0)  # no field left to type into
    resend = page.locator("#resend")
    expect(resend).to_have_text(re.compile(r"^Send a new code( \(\d s\))?$"))
    # Within RESEND_INTERVAL the button counts down, disabled; then it works.
    expect(resend).to_be_enabled(timeout=6_000)
    expect(resend).to_have_text("Send a new code")
    fits(page, width)
    before = len(fake.messages)
    resend.click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    expect(page.locator("#code-email")).to_have_text(address)  # the address kept
    expect(page.get_by_label("Email address")).to_have_value(address)
    fresh = code
    for _ in range(100):  # background delivery: the mail may land after the page
        fresh = code_in(mail_to(fake, address, "otp").text_body)
        if fresh != code or len(fake.messages) > before:
            break
        page.wait_for_timeout(100)
    assert len([m for m in fake.messages if m.to == address]) == 2
    page.get_by_label("Sign-in code").fill(fresh)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/account$"))
    page.context.close()


def test_sign_in_pages_keep_the_apps_nav(
    browser: Browser, live: LiveServer, fake: FakePostmark, expect: Expect, width: int
) -> None:
    page = open_at(browser, live.url, width)
    page.goto("/auth/login")
    page.get_by_label("Email address").fill("nav@example.com")
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    link = link_in(mail_to(fake, "nav@example.com", "magic-link").text_body)
    pages = {
        "/auth/login": "Sign in",
        "/auth/otp/verify": "Enter your code",
        "/auth/magic-link": "Check your email",
        link.removeprefix(live.url): "Sign in",
        "/auth/nowhere": "Page not found",
        "/auth/logout": "Not available this way",
    }
    for path, heading in pages.items():
        page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Home")).to_be_visible()
        assert page.title().endswith("· Postmark Auth demo"), (path, page.title())
        fits(page, width)
    page.goto(link.removeprefix(live.url))
    expect(page.locator("#link-email")).to_have_text("nav@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Home").click()
    expect(page).to_have_url(re.compile(r"/$"))
    page.context.close()


def test_the_outbox_is_a_list_with_a_copy_button(
    browser: Browser, demo: LiveServer, expect: Expect, width: int
) -> None:
    page = open_at(browser, demo.url, width)
    token = page.request.get("/auth/login", headers={"Accept": "application/json"}).json()
    for n in range(14):
        sent = page.request.post(
            "/auth/otp",
            data={"email": f"reader{n}@example.com"},
            headers={"Accept": "application/json", "X-CSRFToken": token["csrf_token"]},
        )
        assert sent.status == 202, sent.text()
    page.goto("/auth/dev/outbox")
    items = page.locator("li.message")
    expect(items).to_have_count(14)
    height = page.locator("ul.messages").bounding_box()
    assert height is not None
    per_message = 120 if width > 600 else 200  # compact: no longer ~1,000 px an email
    assert height["height"] < 14 * per_message, height
    fits(page, width)

    newest = items.first
    expect(newest).to_contain_text("reader13@example.com")
    code = newest.locator("code.otp").inner_text()
    assert re.fullmatch(r"\d{6}", code)
    newest.get_by_role("button", name="Copy code").click()
    expect(newest.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == code
    newest.get_by_text("Show the message").click()
    expect(newest.locator("pre").first).to_contain_text(code)

    page.get_by_label("To address").fill("reader7@")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"\?to=reader7%40$"))
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("reader7@example.com")
    page.context.close()
