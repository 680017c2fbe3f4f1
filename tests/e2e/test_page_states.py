"""The sign-in pages' other states as a person meets them, in Chromium at 1280 and 390 px: an
expired code offers "Send a new code" for the same address, asking again too soon says how
many seconds to wait, and a stale form answers 400 with the demo's own page asking for a
reload. Time is the suite's FakeClock (the demo's store reads it), so nothing sleeps through
OTP_TTL or RESEND_INTERVAL."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

import example_app
from flask_postmark_auth.state import EXTENSION_KEY
from flask_postmark_auth.testing import FakeClock, FakePostmark

from .harness import LiveServer, code_in, enter_code, mails_to, request_code

if TYPE_CHECKING:
    from playwright.sync_api import Expect, Page, Response

pytestmark = pytest.mark.browser

WIDTHS = [1280, 390]
OTP_TTL = 600  # the demo's default: POSTMARK_AUTH_OTP_TTL
RESEND_INTERVAL = 30  # and POSTMARK_AUTH_RESEND_INTERVAL
COUNTDOWN = re.compile(r"^Send a new code \(\d+ s\)$")


@pytest.fixture(autouse=True)
def demo_clock(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> FakeClock:
    """The demo's PostmarkAuth takes its time from ``clock`` (autouse: set before ``live``
    builds the app, which hands it to the store)."""
    monkeypatch.setattr(example_app.auth, "clock", clock)
    return clock


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def width(request: pytest.FixtureRequest) -> int:
    value: int = request.param
    return value


@pytest.fixture
def person(page: Page, live: LiveServer, clock: FakeClock, width: int) -> Page:
    """The session's browser page on ``live``, ``width`` px wide, on the fake clock."""
    assert live.app.extensions[EXTENSION_KEY].store.clock is clock
    page.set_viewport_size({"width": width, "height": 800})
    return page


def fits(page: Page, width: int) -> None:
    """Nothing sticks out sideways at this width."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll} px wide at {width} px"


def in_the_demo(page: Page, expect: Expect, width: int) -> None:
    """The page is the demo's own: its layout, title and nav, fitting the screen."""
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Home")).to_be_visible()
    expect(nav.get_by_role("link", name="Account")).to_be_visible()
    assert page.title().endswith("· Postmark Auth demo"), page.title()
    fits(page, width)


def codes_to(fake: FakePostmark, address: str) -> list[str]:
    """The codes sent to ``address`` so far."""
    return [code_in(m.text_body) for m in fake.messages if m.to == address and m.tag == "otp"]


def wait_for_codes(fake: FakePostmark, address: str, count: int) -> list[str]:
    """The codes sent to ``address`` once there are ``count`` (delivery is in the
    background, so the mail may land after the page)."""
    return [code_in(m.text_body) for m in mails_to(fake, address, "otp", count)]


def ask_for_a_code(person: Page, fake: FakePostmark, address: str) -> str:
    """From the sign-in page: ask for a code for ``address``; the code."""
    person.goto("/auth/login")
    request_code(person, address)
    (code,) = wait_for_codes(fake, address, 1)
    return code


def posted(path: str) -> Callable[[Response], bool]:
    """A predicate for ``expect_response``: the POST to ``path``."""

    def match(response: Response) -> bool:
        return response.request.method == "POST" and response.url.split("?")[0].endswith(path)

    return match


def test_an_expired_code_offers_a_new_one(
    person: Page, fake: FakePostmark, clock: FakeClock, expect: Expect, width: int
) -> None:
    address = f"late{width}@example.com"
    old = ask_for_a_code(person, fake, address)
    clock.advance(OTP_TTL + 1)

    enter_code(person, old)
    expect(person.get_by_role("heading", name="Get a new code")).to_be_visible()
    expect(person.get_by_text("That code can no longer be used for")).to_be_visible()
    expect(person.locator("#code-email")).to_have_text(address)
    expect(person.get_by_label("Sign-in code")).to_have_count(0)
    resend = person.get_by_role("button", name="Send a new code")
    expect(resend).to_have_text("Send a new code")  # no countdown: the interval is long over
    expect(resend).to_be_enabled()
    in_the_demo(person, expect, width)

    resend.click()  # the address rides along in the form: nothing to retype
    expect(person.get_by_role("heading", name="Enter your code")).to_be_visible()
    expect(person.locator("#code-email")).to_have_text(address)
    expect(person.get_by_label("Email address")).to_have_value(address)
    countdown = person.locator("#resend")
    expect(countdown).to_have_text(COUNTDOWN)
    expect(countdown).to_be_disabled()
    expect(person.locator("#resend-wait")).to_have_text(
        "You can ask for a new code when this button turns on."
    )
    in_the_demo(person, expect, width)
    codes = wait_for_codes(fake, address, 2)
    assert len(codes) == 2, codes  # exactly one more message

    enter_code(person, codes[-1])
    expect(person.get_by_role("button", name="Sign out")).to_be_visible()


def test_asking_again_too_soon_says_how_long_to_wait(
    person: Page, fake: FakePostmark, clock: FakeClock, expect: Expect, width: int
) -> None:
    address = f"eager{width}@example.com"
    ask_for_a_code(person, fake, address)

    # Back on the sign-in page (the address still filled in), at once: 30 seconds to go.
    person.goto("/auth/login")
    expect(person.get_by_label("Email address")).to_have_value(address)
    with person.expect_response(posted("/auth/otp")) as answer:
        person.get_by_role("button", name="Email me a code").click()
    assert answer.value.status == 429
    assert answer.value.headers["retry-after"] == str(RESEND_INTERVAL)
    expect(person.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    expect(person.get_by_role("alert")).to_have_text(
        f"Too many requests. Wait {RESEND_INTERVAL} seconds, then try again."
    )
    expect(person.get_by_label("Email address")).to_have_value(address)
    expect(person.get_by_role("button", name="Email me a code")).to_be_enabled()
    in_the_demo(person, expect, width)

    # Twelve seconds on, the code page's own "Send a new code" (its countdown skipped, as a
    # browser without scripts would) says what is left, and its button counts that down.
    clock.advance(12)
    person.goto("/auth/otp/verify")
    expect(person.locator("#resend")).to_be_disabled()
    with person.expect_response(posted("/auth/otp")) as answer:
        person.locator("form.resend").evaluate("form => form.requestSubmit()")
    assert answer.value.status == 429
    left = RESEND_INTERVAL - 12
    expect(person.get_by_role("heading", name="Enter your code")).to_be_visible()
    expect(person.get_by_role("alert")).to_have_text(
        f"Too many requests. Wait {left} seconds, then try again."
    )
    expect(person.locator("#resend")).to_have_attribute("data-wait", str(left))
    expect(person.locator("#resend")).to_have_text(COUNTDOWN)
    expect(person.locator("#resend")).to_be_disabled()
    expect(person.get_by_label("Sign-in code")).to_be_editable()  # the first code still works
    in_the_demo(person, expect, width)
    assert len(codes_to(fake, address)) == 1  # nothing more was sent


def test_a_stale_form_asks_for_a_reload_in_the_apps_page(
    person: Page, fake: FakePostmark, expect: Expect, width: int
) -> None:
    address = f"stale{width}@example.com"
    reload = "The form expired. Reload the page and try again."

    def refused(answer: Response) -> None:
        assert answer.status == 400, answer.status
        expect(person.get_by_role("alert")).to_have_text(reload)
        expect(person.get_by_role("heading", name="Bad Request")).to_have_count(0)
        body = person.locator("body").inner_text()
        assert "could not understand" not in body, body  # not Werkzeug's page
        assert "CSRF" not in body, body  # nor Flask-WTF's reason
        in_the_demo(person, expect, width)

    # The sign-in form with its hidden csrf_token altered.
    person.goto("/auth/login")
    person.get_by_label("Email address").fill(address)
    person.locator("input[name=csrf_token]").evaluate(
        "field => { field.value = 'stale' + field.value; }"
    )
    with person.expect_response(posted("/auth/otp")) as answer:
        person.get_by_role("button", name="Email me a code").click()
    refused(answer.value)
    expect(person.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    expect(person.get_by_label("Email address")).to_have_value(address)
    assert codes_to(fake, address) == []
    request_code(person, address)  # the page came back with a good token: it works now
    (code,) = wait_for_codes(fake, address, 1)

    # The code form after the session cookie is gone (its token no longer matches).
    person.context.clear_cookies()
    person.get_by_label("Sign-in code").fill(code)
    with person.expect_response(posted("/auth/otp/verify")) as answer:
        person.get_by_role("button", name="Sign in", exact=True).click()
    refused(answer.value)
    expect(person.get_by_role("heading", name="Enter your code")).to_be_visible()
    expect(person.get_by_label("Email address")).to_have_value(address)
    enter_code(person, code)  # the code was not spent on the refused form
    expect(person.get_by_role("button", name="Sign out")).to_be_visible()
