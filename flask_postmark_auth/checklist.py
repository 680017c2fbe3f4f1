"""The deployment checklist behind ``flask postmark-auth check``: what a real deployment
needs beyond a working sign-in, each line PASS, WARN or FAIL.

Only a missing canonical URL and a weak ``SECRET_KEY`` FAIL (``init_app`` refuses both
outside debug and testing); everything else is advice, printed by the command and
summed up in one log line at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .settings import Settings, key
from .tokens import weak_key_reason

Verdict = Literal["PASS", "WARN", "FAIL"]


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    verdict: Verdict
    detail: str

    def __str__(self) -> str:
        return f"  {self.verdict}  {self.name:<15} {self.detail}"


def run_checks(app: Flask, settings: Settings, *, startup: bool = False) -> list[Check]:
    """Every line of the checklist for ``app``; at start-up, only those ``init_app`` can
    judge (an app wraps itself in ProxyFix after it)."""
    return [check(app, settings) for check in (STARTUP_CHECKS if startup else CHECKS)]


def secret_key_problems(config: Any) -> Iterator[str]:
    """What is wrong with ``SECRET_KEY`` and each of ``SECRET_KEY_FALLBACKS``."""
    reason = weak_key_reason(config.get("SECRET_KEY"))
    if reason:
        yield f"SECRET_KEY {reason}"
    for index, fallback in enumerate(config.get("SECRET_KEY_FALLBACKS") or []):
        reason = weak_key_reason(fallback)
        if reason:
            yield f"SECRET_KEY_FALLBACKS[{index}] {reason}"


def _canonical(app: Flask, settings: Settings) -> Check:
    if settings.base_url is None:
        return Check(
            "Canonical URL",
            "FAIL",
            f"{key('BASE_URL')} (or SERVER_NAME) is not set: links follow each request's "
            "Host header, which anyone can forge (allowed in debug and testing only)",
        )
    if urlsplit(settings.base_url).scheme != "https":
        return Check(
            "Canonical URL", "WARN", f"{settings.base_url}: links and cookies travel unencrypted"
        )
    return Check("Canonical URL", "PASS", settings.base_url)


def _secret_key(app: Flask, settings: Settings) -> Check:
    problems = list(secret_key_problems(app.config))
    if problems:
        return Check("SECRET_KEY", "FAIL", "; ".join(problems) + ": anyone can forge sessions")
    return Check("SECRET_KEY", "PASS", "long and not a known placeholder")


def _cookies(app: Flask, settings: Settings) -> Check:
    config = app.config
    https = settings.base_url is not None and settings.base_url.startswith("https://")
    missing = []
    if https and not config.get("SESSION_COOKIE_SECURE"):
        missing.append("SESSION_COOKIE_SECURE = True")
    if https and not config.get("REMEMBER_COOKIE_SECURE"):
        missing.append("REMEMBER_COOKIE_SECURE = True")
    if config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        missing.append("SESSION_COOKIE_SAMESITE = 'Lax'")
    if not config.get("SESSION_COOKIE_HTTPONLY", True):
        missing.append("SESSION_COOKIE_HTTPONLY = True")
    if missing:
        return Check("Cookies", "WARN", "set " + ", ".join(missing))
    return Check("Cookies", "PASS", "Secure, SameSite and HttpOnly as they should be")


def _delivery(app: Flask, settings: Settings) -> Check:
    mode = settings.delivery
    if mode == "sync":
        return Check(
            "Delivery",
            "WARN",
            "sync: the answer waits for Postmark, so its timing tells which addresses get "
            "mail; use 'background' or a task queue",
        )
    label = mode if isinstance(mode, str) else f"task queue ({getattr(mode, '__name__', mode)})"
    return Check("Delivery", "PASS", f"{label}: every address answers alike")


def _store(app: Flask, settings: Settings) -> Check:
    scheme = settings.store.partition("://")[0].lower()
    if scheme == "memory":
        return Check(
            "Store",
            "WARN",
            "memory://: each worker has its own codes and throttles, lost on restart",
        )
    if scheme == "sqlite":
        return Check("Store", "PASS", "SQLite: shared by the workers of one machine")
    return Check("Store", "PASS", f"{scheme}: shared by every machine")


def _dev_outbox(app: Flask, settings: Settings) -> Check:
    if settings.dev_outbox:
        return Check("Dev outbox", "WARN", "on: mail is recorded, not sent (debug or testing)")
    if app.debug:
        return Check("Dev outbox", "WARN", "off, but the app runs in debug mode")
    return Check("Dev outbox", "PASS", "off")


def _proxies(app: Flask, settings: Settings) -> Check:
    wsgi: Any = app.wsgi_app
    while wsgi is not None:
        if isinstance(wsgi, ProxyFix):
            return Check(
                "Proxies",
                "PASS",
                f"ProxyFix trusts x_for={wsgi.x_for}, x_proto={wsgi.x_proto}: exactly that "
                "many proxies must stand in front of the app",
            )
        wsgi = getattr(wsgi, "app", None)
    return Check(
        "Proxies",
        "WARN",
        "no ProxyFix: behind a proxy, every client counts as the proxy's address in the "
        "per-IP throttle; wrap app.wsgi_app in ProxyFix(x_for=N) with N your proxies",
    )


STARTUP_CHECKS: tuple[Callable[[Flask, Settings], Check], ...] = (
    _canonical,
    _secret_key,
    _cookies,
    _delivery,
    _store,
    _dev_outbox,
)
CHECKS = (*STARTUP_CHECKS, _proxies)
