"""`make screenshots`: drive the demo (dev outbox on, FakePostmark behind the connector) in
headless Chromium and save small PNGs for the README into docs/screenshots/.

    python -m tests.e2e.screenshots [OUTPUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from example_app import create_app
from flask_postmark_auth.testing import FakePostmark

from .harness import (
    VIEWPORT,
    LiveServer,
    app_config,
    browser_unavailable,
    enter_code,
    launch_options,
)

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
EMAIL = "ada@example.com"


def main(output: Path = OUTPUT) -> list[Path]:
    reason = browser_unavailable()
    if reason is not None:
        sys.exit(f"cannot take screenshots: {reason}")
    from playwright.sync_api import expect, sync_playwright

    output.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with (
        FakePostmark(server_name="Demo server") as fake,
        LiveServer(create_app(app_config(fake, "memory://", dev_outbox=True))) as live,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(**launch_options())
        context = browser.new_context(
            base_url=live.url, viewport=VIEWPORT, color_scheme="light", device_scale_factor=1
        )
        page = context.new_page()

        def shot(name: str) -> None:
            path = output / name
            page.screenshot(path=path, animations="disabled", caret="hide")
            saved.append(path)

        # 1. The extension's sign-in page, inside the demo's own layout.
        page.goto("/auth/login")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_label("Email address").blur()
        shot("sign-in.png")

        # 2. The dev outbox: a compact list (two link emails, then Ada's code).
        for other in ("grace@example.com", "alan@example.com"):
            page.goto("/auth/login")
            page.get_by_label("Email address").fill(other)
            page.get_by_role("button", name="Email me a sign-in link").click()
            expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
        page.goto("/auth/login")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_role("button", name="Email me a code").click()
        expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        page.goto("/auth/dev/outbox")
        message = page.locator("li.message").filter(has_text=EMAIL).first
        code = message.locator("code.otp").inner_text()
        shot("dev-outbox.png")

        # 3. The code email itself, opened from the list.
        message.get_by_text("Show the message").click()
        iframe = message.locator("iframe")
        iframe.scroll_into_view_if_needed()
        expect(iframe.content_frame.get_by_text(code, exact=True)).to_be_visible()
        iframe.evaluate("el => window.scrollTo(0, el.getBoundingClientRect().top + scrollY - 90)")
        shot("dev-outbox-code-email.png")

        # 4. The code page on a phone (390 px), a pasted "123 456" tidied to its digits.
        phone = browser.new_context(
            base_url=live.url,
            viewport={"width": 390, "height": 760},
            color_scheme="light",
            device_scale_factor=1,
            storage_state=context.storage_state(),
        )
        mobile = phone.new_page()
        mobile.goto("/auth/otp/verify")
        mobile.get_by_label("Sign-in code").focus()
        mobile.keyboard.insert_text(f"{code[:3]} {code[3:]}")
        mobile.get_by_label("Sign-in code").blur()
        path = output / "code-page-mobile.png"
        mobile.screenshot(path=path, animations="disabled", caret="hide")
        saved.append(path)
        phone.close()

        # 5. The connector's Test Results panel, signed in.
        page.goto("/auth/otp/verify")
        enter_code(page, code)
        expect(page.get_by_text(f"Signed in as {EMAIL}")).to_be_visible()
        page.goto("/connector")
        page.get_by_label("Also send a test email to").fill(EMAIL)
        page.get_by_role("button", name="Test", exact=True).click()
        panel = page.locator("#results")
        expect(panel.get_by_role("status")).to_have_text("All 4 checks passed.")
        # The page title at the top, the whole panel below it.
        page.locator("main h1").evaluate("el => window.scrollTo(0, el.offsetTop - 24)")
        shot("connector-test-results.png")

        # 6. Another device: the laptop waits with its number, the phone asks which to do.
        laptop = browser.new_context(
            base_url=live.url, viewport=VIEWPORT, color_scheme="light", device_scale_factor=1
        )
        waiting = laptop.new_page()
        waiting.goto("/auth/login")
        waiting.get_by_label("Email address").fill("lin@example.com")
        waiting.get_by_role("button", name="Email me a sign-in link").click()
        expect(waiting.locator("#link-number")).to_be_visible()
        path = output / "link-waiting.png"
        waiting.screenshot(path=path, animations="disabled", caret="hide")
        saved.append(path)
        outbox = waiting.request.get(
            "/auth/dev/outbox?to=lin@example.com", headers={"Accept": "application/json"}
        ).json()
        link = outbox["messages"][0]["link"]
        phone = browser.new_context(
            base_url=live.url,
            viewport={"width": 390, "height": 844},
            color_scheme="light",
            device_scale_factor=1,
        )
        approving = phone.new_page()
        approving.goto(link)
        approving.get_by_label("Number on the other device").fill(
            waiting.locator("#link-number").inner_text()
        )
        approving.get_by_label("Number on the other device").blur()
        path = output / "link-other-device-mobile.png"
        approving.screenshot(path=path, animations="disabled", caret="hide", full_page=True)
        saved.append(path)
        phone.close()
        laptop.close()

        context.close()

        # 7. The sign-in page in German and in Arabic (right to left), as a browser set to
        # that language gets it, in the package's own page frame.
        own_frame = {
            **app_config(fake, "memory://", dev_outbox=True),
            "POSTMARK_AUTH_BASE_TEMPLATE": "postmark_auth/base.html",
        }
        with LiveServer(create_app(own_frame)) as framed:
            for locale, address in (("de-DE", "erika@example.com"), ("ar", "layla@example.com")):
                speaking = browser.new_context(
                    base_url=framed.url,
                    viewport={"width": 640, "height": 470},
                    color_scheme="light",
                    device_scale_factor=1,
                    locale=locale,
                )
                localized = speaking.new_page()
                localized.goto("/auth/login")
                localized.locator("#email").fill(address)
                localized.locator("#email").blur()
                path = output / f"sign-in-{locale.split('-')[0]}.png"
                localized.screenshot(path=path, animations="disabled", caret="hide")
                saved.append(path)
                speaking.close()
        browser.close()
    return saved


if __name__ == "__main__":
    for path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT):
        print(f"{path} ({path.stat().st_size // 1024} KB)")
