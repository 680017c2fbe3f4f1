"""The JSON API's contract, docs/openapi.yaml: a valid OpenAPI 3.1 document that names every
route of the blueprints and no other, and that schemathesis (its examples, and data
generated from its schemas) runs against the example app over real HTTP, CSRF tokens and
session cookies handled as a client must, with no 5xx, no answer outside the document
(status, content type, schema, headers) and no traceback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from flask import Flask
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis import checks
from schemathesis.checks import CheckContext

from example_app import create_app
from flask_postmark_auth.testing import FakePostmark
from tests.e2e.harness import LiveServer, app_config

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
PREFIX = "/auth"
#: Blueprints the document covers (the dev outbox's routes exist only when it is on).
BLUEPRINTS = ("postmark_auth", "postmark_auth_outbox")
#: What schemathesis checks of every answer.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]

schema = schemathesis.openapi.from_path(DOCUMENT)


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return loaded


def demo_app(fake: FakePostmark) -> Flask:
    """The example app as the demo runs it, limits raised so fuzzing meets the routes'
    other answers, not only 429."""
    config = app_config(fake, "memory://", dev_outbox=True)
    config.update(
        POSTMARK_AUTH_IP_REQUESTS_PER_HOUR=10**6,
        POSTMARK_AUTH_EMAILS_PER_HOUR=10**6,
        POSTMARK_AUTH_RESEND_INTERVAL=0,
        PROPAGATE_EXCEPTIONS=False,
    )
    return create_app(config)


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = document()
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_route_is_in_the_document_and_every_path_is_a_route() -> None:
    with FakePostmark() as fake:
        app = demo_app(fake)
    routes: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in BLUEPRINTS:
            continue
        assert rule.rule.startswith(PREFIX)
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len(PREFIX) :])
        routes.update((path, method.lower()) for method in rule.methods or ())
    routes = {(path, method) for path, method in routes if method not in ("head", "options")}
    documented = {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert routes == documented


def test_every_post_names_the_csrf_header() -> None:
    for path, item in document()["paths"].items():
        if "post" in item:
            assert {"csrfHeader": [], "session": []} in item["post"]["security"], path


def no_traceback(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """No answer shows a traceback or Werkzeug's debugger."""
    body = response.text if isinstance(response.text, str) else ""
    assert "Traceback (most recent call last)" not in body, body[:2000]
    assert "werkzeug.debug" not in body
    return None


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    with FakePostmark() as fake, LiveServer(demo_app(fake)) as server:
        yield server.url + PREFIX


@pytest.fixture(scope="module")
def client(live: str) -> requests.Session:
    return requests.Session()


def fresh_token(client: requests.Session, live: str) -> str:
    answer = client.get(f"{live}/login", headers={"Accept": "application/json"}, timeout=10)
    token: str = answer.json()["csrf_token"]
    return token


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_app_keeps_to_the_document(
    case: schemathesis.Case[Any], live: str, client: requests.Session
) -> None:
    """Every operation, with data from its schemas: the session of one client (so the
    cross-device routes see a waiting browser), and a valid CSRF token on every POST the
    way an SPA sends it (schemathesis would otherwise invent both: the document declares
    them as security schemes)."""
    # A GET is asked for twice: as a browser asks (HTML) and as an SPA does (JSON). OpenAPI
    # cannot put Accept among an operation's parameters, so the test sets it.
    for accept in ("text/html", "application/json") if case.method == "GET" else (None,):
        headers = {"X-CSRFToken": fresh_token(client, live)}
        if accept is not None:
            headers["Accept"] = accept
        case.cookies = {}
        response = case.call(
            base_url=live, session=client, headers=headers, allow_redirects=False, timeout=30
        )
        case.validate_response(response, checks=[*CHECKS, no_traceback])


def test_a_post_without_a_token_is_refused_as_documented(live: str) -> None:
    """The CSRF half the fuzzing above does not try: no token, 400 csrf, as documented."""
    answer = requests.post(f"{live}/otp", json={"email": "ann@example.com"}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"] == "csrf"
