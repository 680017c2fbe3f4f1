"""The pages of magic links: the waiting ("check your email") page of the browser that
asked, and the page a link opens, which may approve that browser from another device."""

from __future__ import annotations

from typing import Any

from flask import request, session
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from .addresses import normalize_email
from .errors import InvalidEmailError
from .links import LinkView
from .pages import page
from .state import state
from .store import StoreUnavailableError

#: The address this browser last typed, to fill in the forms again.
EMAIL_SESSION_KEY = "_postmark_auth_email"
#: The link this browser waits for: its waiter secret, its number, when it expires.
WAIT_SESSION_KEY = "_postmark_auth_wait"


def link_error_page(
    code: str, message: str, status: int, extra: dict[str, object], data: dict[str, Any]
) -> BaseResponse:
    """The link page again while the link still works (a stale form, a mistyped number,
    a rate limit), with the message; for a link used up meanwhile, say what matters: it is
    gone."""
    token = (request.view_args or {}).get("token", "")
    try:
        view = state().service.link_view(token, waiter()) if token else None
    except StoreUnavailableError:  # the error being shown, most likely
        view = None
    stale = code == "csrf" and view is None
    return link_page(token, view, status, error=None if stale else message)


def waiter() -> str | None:
    """The waiter secret of the link this browser asked for last, if any."""
    waiting = session.get(WAIT_SESSION_KEY)
    secret = waiting.get("waiter") if isinstance(waiting, dict) else None
    return secret if isinstance(secret, str) else None


def waiting_page(status: int = 200, note: str | None = None) -> BaseResponse:
    """The "check your email" page: with the number to type on another device, and a
    script that polls the status route until that device approves."""
    st = state()
    waiting = session.get(WAIT_SESSION_KEY)
    waiting = waiting if isinstance(waiting, dict) else {}
    until = waiting.get("until")
    left = int(until - st.store.clock()) if isinstance(until, int | float) else 0
    return page(
        "check_email.html",
        status,
        email=session.get(EMAIL_SESSION_KEY, ""),
        expires_in_minutes=max(1, st.settings.magic_link_ttl // 60),
        number=waiting.get("number") if left > 0 else None,
        expires_in=max(0, left),
        note=note,
    )


def signed_in_elsewhere(email: str | None) -> str | None:
    """The address of whoever is signed in in this browser, when it is not ``email``
    (``""`` for a user without a usable address)."""
    if not current_user.is_authenticated:
        return None
    try:
        mine = normalize_email(getattr(current_user, "email", None))
    except InvalidEmailError:
        return ""
    return None if mine == email else mine


def link_page(
    token: str, view: LinkView | None, status: int | None = None, error: str | None = None
) -> BaseResponse:
    """The page of a link: the account it signs in to, who is signed in now when that is
    someone else (so an attacker's link cannot switch accounts unseen), and, opened in a
    browser other than the one that asked, the choice to approve that one instead."""
    email = view.email if view is not None else None
    return page(
        "magic_link.html",
        status if status is not None else (200 if view else 400),
        valid=view is not None,
        email=email,
        current_email=signed_in_elsewhere(email) if email else None,
        can_approve=view is not None and view.can_approve,
        token=token,
        error=error,
    )


def status_error_page(
    code: str, message: str, status: int, extra: dict[str, object], data: dict[str, Any]
) -> BaseResponse:
    return link_page("", None, status, error=message)
