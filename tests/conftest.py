"""Shared fixtures: a fake clock, apps on each store backend, and mail capture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_postmark_auth import PostmarkAuth, PostmarkConnector
from flask_postmark_auth.testing import FakeClock, FakePostmark, RecordedMessage, record_messages
from tests.helpers import AppFactory

if TYPE_CHECKING:
    from playwright.sync_api import Browser

START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def _uri(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/auth.db"
    redis_url: str = request.getfixturevalue("redis_url")
    return redis_url


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URI per backend; Redis is the real server (found or started)."""
    return _uri(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "redis"])
def shared_store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The backends several processes or machines can share."""
    return _uri(request.param, request, tmp_path)


@pytest.fixture
def redis_base_url(request: pytest.FixtureRequest) -> str:
    """The session's Redis (found or started; skipped without one, failed under CI=true)."""
    from support.redis_server import server_url

    return server_url(request.config)


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    from support.redis_server import redis_store_url

    yield from redis_store_url(request)


@pytest.fixture
def make_app(clock: FakeClock) -> AppFactory:
    """Build an app with built-in users; keyword arguments are POSTMARK_AUTH_* settings
    (without the prefix), ``auth=`` passes a configured PostmarkAuth, ``config=`` raw keys."""

    def factory(
        *, auth: PostmarkAuth | None = None, config: dict[str, Any] | None = None, **settings: Any
    ) -> Flask:
        app = Flask(__name__)
        app.config.update(SECRET_KEY="test-secret", TESTING=True, WTF_CSRF_ENABLED=False)
        app.config.update(config or {})
        app.config.update({f"POSTMARK_AUTH_{k}": v for k, v in settings.items()})

        @app.get("/")
        def home() -> str:
            return "home"

        (auth or PostmarkAuth(clock=clock)).init_app(app)
        return app

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def outbox(app: Flask) -> Iterator[list[RecordedMessage]]:
    with record_messages(app) as messages:
        yield messages


@pytest.fixture
def connector(fake_postmark: FakePostmark) -> Iterator[PostmarkConnector]:
    """The connector ``default`` against the ``fake_postmark`` fixture, without backoff."""
    made = PostmarkConnector(
        "default",
        server_token=fake_postmark.server_token,
        from_email="Acme <login@acme.example>",
        api_url=fake_postmark.url,
        backoff=0,
    )
    yield made
    made.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, launched once per session for every browser test (one
    Playwright per process: a second one would find the first one's event loop)."""
    from tests.e2e.harness import browser_unavailable, launch_options

    reason = browser_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**launch_options())
        yield launched
        launched.close()
