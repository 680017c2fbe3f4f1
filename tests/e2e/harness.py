"""What the browser tests and `make screenshots` share: finding Chromium, serving the example
app on a loopback port with FakePostmark as its Postmark, and reading codes and links out of
emails. Playwright is imported lazily, so this module imports without it."""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from flask_postmark_auth.testing import FakePostmark, RecordedMessage

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

#: Debian's Chromium; Playwright's own browser download is not used.
DEBIAN_CHROMIUM = "/usr/bin/chromium"
#: Headless Chromium that makes no connection of its own (only loopback is reachable here).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Small pages, small screenshots.
VIEWPORT: ViewportSize = {"width": 900, "height": 700}
FROM_EMAIL = "Demo <login@example.com>"


def chromium_path() -> str | None:
    """Debian's Chromium, else ``chromium`` on PATH, else None."""
    if Path(DEBIAN_CHROMIUM).is_file():
        return DEBIAN_CHROMIUM
    return shutil.which("chromium")


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run on this machine, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return (
            f"playwright is not importable ({exc}); install the test extra: "
            "pip install -e '.[test]'"
        )
    if chromium_path() is None:
        return (
            f"Chromium not found ({DEBIAN_CHROMIUM}, or `chromium` on PATH); install it with "
            "`apt-get install -y chromium` (or `make chromium` as root)"
        )
    return None


def launch_options() -> dict[str, Any]:
    return {"executable_path": chromium_path(), "headless": True, "args": CHROMIUM_ARGS}


def app_config(fake: FakePostmark, store: str, *, dev_outbox: bool = False) -> dict[str, Any]:
    """The example app's config with ``fake`` as its Postmark.

    ``dev_outbox=True`` is the demo's mode: TESTING, mail recorded in the dev outbox, the
    connector's Test action still talking to ``fake``."""
    config: dict[str, Any] = {
        "SECRET_KEY": "e2e-tests-0123456789abcdefghij",
        "POSTMARK_AUTH_SERVER_TOKEN": fake.server_token,
        "POSTMARK_AUTH_API_URL": fake.url,
        "POSTMARK_AUTH_FROM_EMAIL": FROM_EMAIL,
        "POSTMARK_AUTH_DEV_OUTBOX": dev_outbox,
        "POSTMARK_AUTH_STORE": store,
    }
    if dev_outbox:
        config["TESTING"] = True
    return config


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request; errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LiveServer:
    """``app`` served by werkzeug's threaded WSGI server on a free loopback port."""

    def __init__(self, app: Flask, port: int = 0) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"example-app:{self._server.server_port}",
            daemon=True,
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# -- reading mail ---------------------------------------------------------------------------

_CODE = re.compile(r"\b(\d{6,10})\b")
_LINK = re.compile(r"https?://\S+/magic-link/[\w.\-]+")


def code_in(text: str | None) -> str:
    """The sign-in code in an email's text."""
    match = _CODE.search(text or "")
    assert match, f"no code in {text!r}"
    return match.group(1)


def link_in(text: str | None) -> str:
    """The magic link (absolute URL) in an email's text."""
    match = _LINK.search(text or "")
    assert match, f"no magic link in {text!r}"
    return match.group(0)


def mails_to(
    fake: FakePostmark, address: str, tag: str | None = None, count: int = 1
) -> list[RecordedMessage]:
    """The messages FakePostmark accepted for ``address`` (with ``tag``, if given), oldest
    first, once there are ``count``, waiting up to 10 s for them: the app delivers in the
    background, after answering."""
    deadline = time.monotonic() + 10
    while True:
        found = [m for m in fake.messages if m.to == address and (tag is None or m.tag == tag)]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(found) >= count, (
        f"{len(found)} mails to {address} (tag {tag}), not {count}: {fake.messages}"
    )
    return found


def mail_to(fake: FakePostmark, address: str, tag: str | None = None) -> RecordedMessage:
    """The newest message FakePostmark accepted for ``address`` (with ``tag``, if given),
    waiting up to 10 s for it (see :func:`mails_to`)."""
    return mails_to(fake, address, tag)[-1]


# -- browser steps --------------------------------------------------------------------------


def request_code(page: Page, email: str) -> None:
    """On the extension's sign-in page (already open): ask for a code."""
    from playwright.sync_api import expect

    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a code").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()


def enter_code(page: Page, code: str) -> None:
    """On the code page: type ``code`` and sign in."""
    page.get_by_label("Sign-in code").fill(code)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_in_by_code(page: Page, fake: FakePostmark, email: str) -> None:
    """Sign in from the extension's sign-in page with the code FakePostmark received."""
    from playwright.sync_api import expect

    if "/auth/login" not in page.url:
        page.goto("/auth/login")
    request_code(page, email)
    enter_code(page, code_in(mail_to(fake, email, "otp").text_body))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
