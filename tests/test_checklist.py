"""``flask postmark-auth check``: the deployment checklist, and its one log line at start-up."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.cli import postmark_auth_cli
from tests.helpers import deployed_app

SECURE = {
    "SESSION_COOKIE_SECURE": True,
    "REMEMBER_COOKIE_SECURE": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}


def deployed(**config: Any) -> Flask:
    """A production app with everything in order, less what ``config`` changes."""
    in_order = {
        "POSTMARK_AUTH_BASE_URL": "https://app.acme.example",
        "POSTMARK_AUTH_STORE": "redis://127.0.0.1:1/0",  # never reached by the checklist
        **SECURE,
    }
    return deployed_app(**{**in_order, **config})


def check(app: Flask) -> tuple[int, dict[str, str], str]:
    """Exit code, verdict per line name, and the whole output of the command."""
    result = app.test_cli_runner().invoke(postmark_auth_cli, ["check"])
    verdicts = {
        match[2].strip(): match[1]
        for match in re.finditer(r"^  (PASS|WARN|FAIL)  (.{15})", result.output, re.M)
    }
    return result.exit_code, verdicts, result.output


def test_a_well_deployed_app_passes_every_line() -> None:
    app = deployed()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    PostmarkAuth(app)
    code, verdicts, output = check(app)
    assert code == 0, output
    assert set(verdicts.values()) == {"PASS"}, output
    assert set(verdicts) == {
        "Canonical URL",
        "SECRET_KEY",
        "Cookies",
        "Delivery",
        "Store",
        "Dev outbox",
        "Proxies",
    }
    assert "ProxyFix trusts x_for=1" in output
    assert "0 failed, 0 warnings, 7 passed." in output


@pytest.mark.parametrize(
    ("config", "line", "says"),
    [
        ({"POSTMARK_AUTH_DELIVERY": "sync"}, "Delivery", "timing tells which addresses"),
        ({"POSTMARK_AUTH_STORE": "memory://"}, "Store", "each worker has its own"),
        ({"SESSION_COOKIE_SECURE": False}, "Cookies", "SESSION_COOKIE_SECURE = True"),
        ({"SESSION_COOKIE_SAMESITE": None}, "Cookies", "SESSION_COOKIE_SAMESITE = 'Lax'"),
        ({"POSTMARK_AUTH_BASE_URL": "http://app.acme.example"}, "Canonical URL", "unencrypted"),
    ],
)
def test_advice_is_a_warning_not_a_failure(config: dict[str, Any], line: str, says: str) -> None:
    app = deployed(**config)
    PostmarkAuth(app)
    code, verdicts, output = check(app)
    assert code == 0, output
    assert verdicts[line] == "WARN", output
    assert says in output
    assert verdicts["Proxies"] == "WARN"  # no ProxyFix: said, not refused


def test_a_development_app_fails_the_check() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="dev", DEBUG=True)  # what `flask run --debug` allows
    PostmarkAuth(app)
    code, verdicts, output = check(app)
    assert code == 1
    assert verdicts["Canonical URL"] == "FAIL"
    assert verdicts["SECRET_KEY"] == "FAIL"
    assert verdicts["Dev outbox"] == "WARN"
    assert "2 failed" in output


def test_start_up_logs_one_line_for_the_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_postmark_auth"):
        PostmarkAuth(deployed(POSTMARK_AUTH_DELIVERY="sync", SESSION_COOKIE_SECURE=False))
    [line] = [r.getMessage() for r in caplog.records if "deployment check" in r.getMessage()]
    assert line == (
        "deployment check: 2 warnings (Cookies, Delivery); run `flask postmark-auth check`"
    )


def test_start_up_is_quiet_when_all_is_well(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_postmark_auth"):
        PostmarkAuth(deployed())
    assert "deployment check" not in caplog.text
