"""Fixtures for the browser tests (the session's one Chromium, ``browser``, lives in
tests/conftest.py, shared with the email tests): per test a FakePostmark, the example app
served on a loopback port, and a fresh browser page.

Without Chromium or Playwright the tests skip, saying why; with ``CI=true`` they fail instead.
A failed test leaves a screenshot and the page's HTML in ``tests/e2e/artifacts/``."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from example_app import create_app
from flask_postmark_auth.testing import FakePostmark
from support.redis_server import free_port

from .harness import VIEWPORT, LiveServer, app_config

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Expect, Page

ARTIFACTS = Path(__file__).parent / "artifacts"
_PAGE = pytest.StashKey["Page"]()


@pytest.fixture
def expect(browser: Browser) -> Expect:
    """Playwright's ``expect`` (imported here so that modules import without Playwright)."""
    from playwright.sync_api import expect

    return expect


@pytest.fixture
def fake() -> Iterator[FakePostmark]:
    """The app's Postmark, on loopback."""
    with FakePostmark(server_name="E2E FakePostmark") as server:
        yield server


def serve(config: dict[str, Any]) -> Iterator[LiveServer]:
    """The example app on a free loopback port, which is also its canonical URL."""
    port = free_port()
    config = {"POSTMARK_AUTH_BASE_URL": f"http://127.0.0.1:{port}", **config}
    with LiveServer(create_app(config), port) as live:
        yield live


@pytest.fixture
def live(fake: FakePostmark, tmp_path: Path) -> Iterator[LiveServer]:
    """The example app sending through ``fake`` (dev outbox off), SQLite store."""
    yield from serve(app_config(fake, f"sqlite:///{tmp_path}/auth.db"))


@pytest.fixture
def live_outbox(fake: FakePostmark) -> Iterator[LiveServer]:
    """The example app as `make demo` runs it: dev outbox on (TESTING), memory store;
    the connector's Test still talks to ``fake``."""
    yield from serve(app_config(fake, "memory://", dev_outbox=True))


def open_page(browser: Browser, request: pytest.FixtureRequest, url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=url, viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    server_errors: list[str] = []
    context.on(
        "response",
        lambda r: server_errors.append(f"{r.status} {r.url}") if r.status >= 500 else None,
    )
    page = context.new_page()
    request.node.stash[_PAGE] = page
    try:
        yield page
    finally:
        context.close()
    assert not server_errors, f"the app answered with server errors: {server_errors}"


@pytest.fixture
def page(browser: Browser, live: LiveServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) on ``live``."""
    yield from open_page(browser, request, live.url)


@pytest.fixture
def outbox_page(
    browser: Browser, live_outbox: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh browser context on ``live_outbox``."""
    yield from open_page(browser, request, live_outbox.url)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed test, save the page as it was: a PNG and its HTML, named after the test."""
    report: pytest.TestReport = yield
    page = item.stash.get(_PAGE, None)
    if report.when == "call" and report.failed and page is not None and not page.is_closed():
        ARTIFACTS.mkdir(exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", item.nodeid.removeprefix("tests/e2e/"))[:150]
        try:
            page.screenshot(path=ARTIFACTS / f"{stem}.png", full_page=True)
            (ARTIFACTS / f"{stem}.html").write_text(page.content(), encoding="utf-8")
            saved = f"{ARTIFACTS / stem}.png (and .html), page URL {page.url}"
        except Exception as exc:  # a dead browser must not hide the test's own failure
            saved = f"could not save the page: {exc!r}"
        report.sections.append(("browser", saved))
    return report
