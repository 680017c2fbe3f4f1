"""Shared fixtures: a fake clock, apps on each store backend, and mail capture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.testing import FakeClock, RecordedMessage, record_messages
from tests.helpers import AppFactory

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
