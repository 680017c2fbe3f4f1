"""The app :mod:`bench.timing` serves under gunicorn: ``bench.timing_app:create_app()``.

An app with accounts of its own: ``@auth.find_user`` takes 2 ms (a database round trip)
and knows the addresses listed, one a line, in the file named by ``BENCH_TIMING_KNOWN``;
sign-up is off, so an unknown address gets no mail. ``SECRET_KEY`` comes from the
environment and every ``POSTMARK_AUTH_*`` variable becomes a config value (JSON-decoded
when it parses, else the string). CSRF is off: the benchmark posts bare JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask

from flask_postmark_auth import PostmarkAuth

#: The environment variable naming the file of known addresses.
KNOWN_ENV = "BENCH_TIMING_KNOWN"
#: How long a look-up takes, known address or not.
LOOKUP_SECONDS = 0.002


class User:
    """A minimal Flask-Login user: the extension needs ``email``; ``get_id`` and the
    ``is_*`` flags are what Flask-Login reads when one signs in."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, email: str) -> None:
        self.email = email

    def get_id(self) -> str:
        return self.email


def env_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """``POSTMARK_AUTH_*`` variables as config values: JSON when it parses, else the text."""
    config: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("POSTMARK_AUTH_"):
            continue
        try:
            config[name] = json.loads(raw)
        except ValueError:
            config[name] = raw
    return config


def load_known(path: str) -> frozenset[str]:
    with open(path, encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def create_app() -> Flask:
    """The benchmark's app, configured from the environment."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.config["WTF_CSRF_ENABLED"] = False
    app.config["POSTMARK_AUTH_ALLOW_SIGNUP"] = False
    app.config.update(env_config(os.environ))
    known = load_known(os.environ[KNOWN_ENV])

    auth = PostmarkAuth()

    @auth.find_user
    def find_user(email: str) -> User | None:
        time.sleep(LOOKUP_SECONDS)
        return User(email) if email in known else None

    auth.init_app(app)

    @app.get("/ping")
    def ping() -> str:
        return "ok"

    return app
