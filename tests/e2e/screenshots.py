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
    code_in,
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

        # 1. The extension's sign-in page.
        page.goto("/auth/login")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_label("Email address").blur()
        shot("sign-in.png")

        # 2. The code email, as the dev outbox shows it.
        page.get_by_role("button", name="Email me a code").click()
        expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        page.get_by_role("link", name="Open the dev outbox").click()
        message = page.locator("article.message").first
        code = code_in(message.locator("pre").first.inner_text())
        iframe = message.locator("iframe")
        iframe.scroll_into_view_if_needed()
        expect(iframe.content_frame.get_by_text(code, exact=True)).to_be_visible()
        message.evaluate("el => el.scrollIntoView({block: 'start'})")
        shot("dev-outbox-code-email.png")

        # 3. The connector's Test Results panel, signed in.
        page.go_back()
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

        context.close()
        browser.close()
    return saved


if __name__ == "__main__":
    for path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT):
        print(f"{path} ({path.stat().st_size // 1024} KB)")
