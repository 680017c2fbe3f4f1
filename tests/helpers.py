"""What several test modules share besides fixtures (those live in conftest.py, which no
module imports): the app factory's type. The mail helpers are public, in
``flask_postmark_auth.testing`` (``code_in``, ``link_in``), for apps' own tests too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

#: The ``make_app`` fixture: keyword arguments are POSTMARK_AUTH_* settings (short names),
#: ``auth=`` a configured PostmarkAuth, ``config=`` raw config keys.
AppFactory = Callable[..., Flask]


#: A key a deployed app may start with (16 bytes or more, not a placeholder).
STRONG_KEY = "tests-0123456789abcdefghijklmnop"


def deployed_app(**config: object) -> Flask:
    """An app as deployed (neither debug nor testing), the extension not yet set up;
    ``config`` are raw config keys, over a strong key, a token, a sender and memory://."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=STRONG_KEY,
        POSTMARK_AUTH_SERVER_TOKEN="server-token-0123456789",
        POSTMARK_AUTH_FROM_EMAIL="Acme <login@acme.example>",
        POSTMARK_AUTH_STORE="memory://",
    )
    app.config.update(config)
    return app


def count_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one item per request redis-py writes to a socket (a pipeline writes
    all its commands at once): the round trips to Redis from now on."""
    import redis.connection

    sent: list[int] = []
    original: Any = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent
