"""The blueprint: thin views that parse input, call the service, and answer in HTML or JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from .edge import form, no_store, origin, protect, text, truthy, wants_json
from .errors import ConfigurationError, InvalidLinkError, SignInError
from .i18n import gettext
from .link_pages import (
    EMAIL_SESSION_KEY,
    WAIT_SESSION_KEY,
    link_error_page,
    link_page,
    signed_in_elsewhere,
    status_error_page,
    waiter,
    waiting_page,
)
from .links import new_waiter
from .pages import (
    app_csrf_failed,
    error_page,
    login_error_page,
    not_found,
    page,
    routing_error,
    sign_in_error,
    store_down,
    too_large,
)
from .service import SignedIn
from .state import state
from .store import StoreUnavailableError
from .users import EmailUser, public_id

bp = Blueprint("postmark_auth", __name__, template_folder="templates")
bp.before_request(protect)
bp.after_request(no_store)
bp.before_app_request(routing_error)
bp.register_error_handler(CSRFError, app_csrf_failed)
bp.register_error_handler(SignInError, sign_in_error)
bp.register_error_handler(RequestEntityTooLarge, too_large)
bp.register_error_handler(NotFound, not_found)
bp.register_error_handler(StoreUnavailableError, store_down)
#: When this browser last asked for a code (store clock), for the resend countdown.
_SENT_SESSION_KEY = "_postmark_auth_code_sent"


def see_other(location: str) -> BaseResponse:
    return redirect(location, code=303)


@bp.context_processor
def template_globals() -> dict[str, Any]:
    """``csrf_token()`` for the forms, whether or not the app set up CSRFProtect."""
    return {"csrf_token": generate_csrf}


def code_error_page(
    code: str, message: str, status: int, extra: dict[str, object], data: dict[str, Any]
) -> BaseResponse:
    """The code form again, with the attempts left; with none left, only the button that
    sends a new code."""
    left = extra.get("attempts_left")
    return code_page(text(data, "email"), text(data, "next"), message, left, status)


def resend_error_page(
    code: str, message: str, status: int, extra: dict[str, object], data: dict[str, Any]
) -> BaseResponse:
    """Asking for a code: the sign-in form again; from the code page's "Send a new code",
    the code page again, its button counting down the wait."""
    if not data.get("resend"):
        return login_error_page(code, message, status, extra, data)
    wait = extra.get("retry_after")
    left = 0 if data.get("resend") == "expired" else None
    return code_page(
        text(data, "email"),
        text(data, "next"),
        message,
        left,
        status,
        wait=wait if isinstance(wait, int) else 0,
    )


def code_page(
    email: str,
    next_url: str,
    error: str | None,
    attempts_left: object,
    status: int = 200,
    wait: int | None = None,
) -> BaseResponse:
    """The code page. ``wait``: seconds until a new code may be sent (by default, what is
    left of ``RESEND_INTERVAL`` since this browser last asked)."""
    st = state()
    if wait is None:
        sent = session.get(_SENT_SESSION_KEY)
        left = st.settings.resend_interval - (st.store.clock() - sent) if sent else 0
        wait = max(0, -int(-left // 1)) if isinstance(left, int | float) else 0
    return page(
        "verify.html",
        status,
        email=email,
        next=next_url,
        error=error,
        attempts_left=attempts_left,
        otp_length=st.settings.otp_length,
        resend_wait=wait,
    )


def start_session(remember: bool) -> Callable[[Any], bool]:
    """The ``login`` the service calls once the address is proven.

    Whatever the session held before (a CSRF token, another account, an attacker's planted
    values) is dropped: a fresh session for the person who just proved who they are, as
    Django's login() cycles its session key.
    """

    def login(user: Any) -> bool:
        check_user_loader(user)
        session.clear()
        regenerate = getattr(current_app.session_interface, "regenerate", None)
        if callable(regenerate):  # server-side sessions (Flask-Session): a new session id
            regenerate(session)
        cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
        if not remember and cookie in request.cookies:  # nor an earlier account's cookie
            session["_remember"] = "clear"
        g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
        return bool(login_user(user, remember=remember))

    return login


def check_user_loader(user: Any) -> None:
    """Refuse, before the session is touched, to sign in a user Flask-Login could not load
    on the next request (which would answer ``signed_in`` and leave the visitor anonymous)."""
    if isinstance(user, EmailUser):
        return  # the built-in loader (users.load) loads these
    manager: Any = getattr(current_app, "login_manager", None)
    loader = getattr(manager, "_user_callback", None)
    if loader is None:
        if getattr(manager, "_request_callback", None) is not None:
            return  # the app loads users from requests (API keys...): its own business
        raise ConfigurationError(
            "the app's LoginManager has no user_loader, so a signed-in user would be "
            "anonymous on the next request: register @login_manager.user_loader that "
            "returns the user for user.get_id()"
        )
    if loader(user.get_id()) is None:
        raise ConfigurationError(
            "the app's @login_manager.user_loader returned None for the get_id() of the user "
            "@auth.find_user or @auth.create_user returned, so they would be anonymous on the "
            "next request: make the loader accept what get_id() returns"
        )


def signed_in(result: SignedIn) -> BaseResponse:
    if wants_json():
        user = result.user
        return jsonify(
            status="signed_in",
            user={"id": public_id(user), "email": getattr(user, "email", result.email)},
            next=result.next,
            csrf_token=generate_csrf(),
        )
    return see_other(result.next)


def require(method: str) -> None:
    if method not in state().settings.methods:
        abort(404)


# -- routes ---------------------------------------------------------------------------------


@bp.get("/login")
def login() -> BaseResponse:
    settings = state().settings
    if wants_json():
        return jsonify(methods=list(settings.methods), csrf_token=generate_csrf())
    return page(
        "login.html",
        methods=settings.methods,
        email=session.get(EMAIL_SESSION_KEY, ""),
        next=request.args.get("next", ""),
        error=None,
    )


@bp.post("/otp")
@error_page(resend_error_page)
def request_code() -> BaseResponse:
    require("otp")
    data = form()
    sent = state().service.request_code(data.get("email"), data.get("next"), origin())
    if wants_json():
        response = jsonify(status="sent", expires_in=sent.expires_in)
        response.status_code = 202
        return response
    session[EMAIL_SESSION_KEY] = text(data, "email").strip()
    session[_SENT_SESSION_KEY] = state().store.clock()
    target = state().service.site.safe_next(data.get("next"), origin())
    return see_other(url_for(".verify_code", next=target))


@bp.route("/otp/verify", methods=["GET", "POST"])
@error_page(code_error_page)
def verify_code() -> BaseResponse:
    require("otp")
    if request.method == "GET":
        email = session.get(EMAIL_SESSION_KEY, "")
        return code_page(email, request.args.get("next", ""), None, None)
    data = form()
    result = state().service.verify_code(
        data.get("email"),
        data.get("code"),
        data.get("next"),
        origin(),
        start_session(truthy(data.get("remember"))),
    )
    return signed_in(result)


@bp.post("/magic-link")
def request_link() -> BaseResponse:
    require("magic_link")
    data = form()
    secret = new_waiter()
    sent = state().service.request_link(
        data.get("email"), data.get("next"), origin(), waiter=secret
    )
    # This browser waits for the link: recognised by the secret when it opens the link,
    # and signed in by its status once another device approves it.
    until = state().store.clock() + sent.expires_in
    session[WAIT_SESSION_KEY] = {"waiter": secret, "number": sent.number, "until": until}
    if wants_json():
        response = jsonify(status="sent", expires_in=sent.expires_in, number=sent.number)
        response.status_code = 202
        return response
    session[EMAIL_SESSION_KEY] = text(data, "email").strip()
    return see_other(url_for(".check_email"))


@bp.get("/magic-link")
def check_email() -> BaseResponse:
    require("magic_link")
    return waiting_page()


@bp.get("/magic-link/status")
@error_page(status_error_page)
def link_status() -> BaseResponse:
    """The asking browser's wait: 202 pending, then signed in once (approved elsewhere)."""
    require("magic_link")
    secret = waiter()
    try:
        result = state().service.link_status(
            secret, start_session(truthy(request.args.get("remember")))
        )
    except InvalidLinkError:
        session.pop(WAIT_SESSION_KEY, None)
        raise
    if result is not None:
        return signed_in(result)
    if wants_json():
        response = jsonify(status="pending")
        response.status_code = 202
        return response
    return waiting_page(202, note=gettext("Not approved yet. Open the link on your other device."))


@bp.route("/magic-link/<token>", methods=["GET", "POST"])
@error_page(link_error_page)
def magic_link(token: str) -> BaseResponse:
    require("magic_link")
    service = state().service
    if request.method == "GET":
        view = service.link_view(token, waiter())
        # Scanners follow links: GET shows a button and changes nothing. It signs in at
        # once only when MAGIC_LINK_CONFIRM is off, in the browser that asked for the link,
        # and when no one else is signed in here.
        if (
            state().settings.magic_link_confirm
            or view is None
            or not view.same_device
            or signed_in_elsewhere(view.email) is not None
        ):
            if wants_json():
                if view is None:
                    return jsonify(valid=False)
                return jsonify(
                    valid=True,
                    email=view.email,
                    same_device=view.same_device,
                    can_approve=view.can_approve,
                )
            return link_page(token, view)
        data: dict[str, Any] = {}
    else:
        data = form()
    if data.get("approve") == "other_device":
        service.approve_link(token, data.get("number"), origin())
        if wants_json():
            return jsonify(status="approved")
        return page("approved.html")
    result = service.consume_link(
        token,
        request.args.get("next") or data.get("next"),
        origin(),
        start_session(truthy(data.get("remember"))),
    )
    return signed_in(result)


@bp.post("/logout")
def logout() -> BaseResponse:
    user = current_user._get_current_object() if current_user.is_authenticated else None
    logout_user()
    if user is not None:
        state().service.users.signed_out(user)
    if wants_json():
        return jsonify(status="signed_out")
    data = form()
    return see_other(
        state().service.site.safe_next(data.get("next"), origin())
        or state().settings.login_redirect
    )
