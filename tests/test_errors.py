"""Sign-in errors are Werkzeug HTTP exceptions: outside the blueprint they answer with their
own status, and apps catch them with ``@app.errorhandler``."""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException

from flask_postmark_auth.errors import (
    InvalidCodeError,
    RequestTooLargeError,
    SignInError,
    ThrottledError,
)
from flask_postmark_auth.site import Origin
from flask_postmark_auth.state import state
from tests.helpers import AppFactory


def test_sign_in_errors_are_http_exceptions_with_their_status() -> None:
    assert issubclass(SignInError, HTTPException)
    assert (InvalidCodeError().code, InvalidCodeError().error) == (400, "invalid_code")
    assert (ThrottledError().code, RequestTooLargeError().code) == (429, 413)
    assert ThrottledError(retry_after=3).extra == {"retry_after": 3}


def my_app(make_app: AppFactory) -> Flask:
    """An app whose own view asks the service for a code (30 s between two)."""
    app: Flask = make_app(RESEND_INTERVAL=30)

    @app.post("/my-sign-in")
    def my_sign_in() -> dict[str, str]:
        state().service.request_code("ann@example.com", None, Origin("1.2.3.4", "http", "x"))
        return {"status": "sent"}

    return app


def test_an_apps_own_view_answers_with_the_errors_status(make_app: AppFactory) -> None:
    client = my_app(make_app).test_client()
    assert client.post("/my-sign-in").status_code == 200
    assert client.post("/my-sign-in").status_code == 429  # Werkzeug answers it: not a 500


def test_an_app_catches_sign_in_errors_with_errorhandler(make_app: AppFactory) -> None:
    app = my_app(make_app)

    @app.errorhandler(SignInError)
    def mine(exc: SignInError) -> tuple[dict[str, object], int]:
        return {"mine": exc.error, **exc.extra}, exc.code or 500

    client = app.test_client()
    client.post("/my-sign-in")
    answer = client.post("/my-sign-in")
    assert answer.status_code == 429
    assert answer.json is not None
    assert answer.json["mine"] == "rate_limited"
    assert 1 <= int(answer.json["retry_after"]) <= 30
