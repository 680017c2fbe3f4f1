"""The blueprint: thin views that parse input, call the service, and answer in HTML or JSON."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from markupsafe import Markup, escape
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse
from wtforms.validators import ValidationError

from .addresses import normalize_email
from .errors import (
    CSRFFailedError,
    InvalidCodeError,
    InvalidEmailError,
    InvalidLinkError,
    RequestTooLargeError,
    SignInError,
)
from .outbox import DevOutbox
from .service import Origin, SignedIn
from .state import state
from .store import StoreUnavailableError
from .users import public_id

log = logging.getLogger("flask_postmark_auth")

bp = Blueprint("postmark_auth", __name__, template_folder="templates")

_EMAIL_SESSION_KEY = "_postmark_auth_email"
_URL = re.compile(r"https?://[^\s<>\"']+")
#: Largest body a sign-in POST may have: an address, a code and a ``next`` fit many times.
MAX_BODY = 64 * 1024
#: Hosts the dev outbox answers besides the canonical URL's, as Werkzeug's debugger does:
#: a DNS-rebinding page on another name cannot read codes off a developer's machine.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Flask-WTF's defaults, for apps that do not set them.
_CSRF_HEADERS = ["X-CSRFToken", "X-CSRF-Token"]


# -- request helpers ------------------------------------------------------------------------


def wants_json() -> bool:
    """JSON when the request is JSON or prefers JSON over HTML."""
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def form() -> dict[str, Any]:
    """The POST body as a dict (form or JSON object); a JSON non-object is empty."""
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # absurdly nested JSON: treat it as no body at all
            data = None
        return data if isinstance(data, dict) else {}
    return request.form.to_dict()


def text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def origin() -> Origin:
    return Origin(
        ip=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
        root=request.script_root,
    )


def truthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.lower() in ("1", "true", "on", "yes")


def page(template: str, status: int = 200, **context: Any) -> BaseResponse:
    st = state()
    outbox = url_for(".outbox") if st.settings.dev_outbox else None
    html = render_template(f"postmark_auth/{template}", dev_outbox_url=outbox, **context)
    return make_response(html, status)


def see_other(location: str) -> BaseResponse:
    return redirect(location, code=303)


@bp.context_processor
def template_globals() -> dict[str, Any]:
    """``csrf_token()`` for the forms, whether or not the app set up CSRFProtect."""
    return {"csrf_token": generate_csrf}


# -- protections ----------------------------------------------------------------------------


def limit_body() -> None:
    """Refuse a sign-in POST body over :data:`MAX_BODY` before anything reads it (an app
    hook of its own, first in line: the app's CSRFProtect would read it before the
    blueprint's hooks run). A body of unknown length is read up to the limit, no further.
    (Without ``wsgi.input_terminated`` the server gives no body of unknown length.)"""
    if request.blueprint != bp.name or request.method != "POST":
        return
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise RequestTooLargeError()
    environ = request.environ
    if length is None and environ.get("wsgi.input_terminated") and "wsgi.input" in environ:
        # Chunked: read at most one byte past the limit, and serve the rest from memory.
        stream, body = environ["wsgi.input"], b""
        while len(body) <= MAX_BODY:
            chunk = stream.read(MAX_BODY + 1 - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) > MAX_BODY:
            raise RequestTooLargeError()
        environ["wsgi.input"] = io.BytesIO(body)


@bp.before_request
def protect() -> BaseResponse | None:
    """CSRF on every POST whenever ``WTF_CSRF_ENABLED`` is on, whatever the app's own
    CSRFProtect does (exempted views, ``WTF_CSRF_CHECK_DEFAULT = False``). The per-IP
    throttle is the service's: it counts each sign-in POST with its other counters."""
    if request.method != "POST":
        return None
    config = current_app.config
    if config.get("WTF_CSRF_ENABLED", True):
        field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        token = next(
            (
                request.headers[name]
                for name in config.get("WTF_CSRF_HEADERS", _CSRF_HEADERS)
                if request.headers.get(name)
            ),
            None,
        )
        try:
            validate_csrf(token or text(form(), field))
        except ValidationError as exc:
            raise CSRFFailedError() from exc
    return None


@bp.after_request
def no_store(response: Response) -> BaseResponse:
    """Auth pages are never cached, and never leak their URL (which may hold a link
    token) through the Referer header."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.errorhandler(CSRFError)
def app_csrf_failed(exc: CSRFError) -> BaseResponse:
    return answer_error(CSRFFailedError())


@bp.errorhandler(SignInError)
def sign_in_error(exc: SignInError) -> BaseResponse:
    return answer_error(exc)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> BaseResponse:
    return answer_error(RequestTooLargeError())


@bp.errorhandler(NotFound)
def not_found(exc: NotFound) -> BaseResponse:
    """JSON clients get JSON for a switched-off method or the outbox when it is off."""
    if wants_json():
        response = jsonify(error="not_found", message="Not found.")
        response.status_code = 404
        return response
    return exc.get_response()


@bp.errorhandler(StoreUnavailableError)
def store_down(exc: StoreUnavailableError) -> BaseResponse:
    log.error("sign-in store unavailable: %s", exc)
    return answer_error(None)


def answer_error(exc: SignInError | None) -> BaseResponse:
    """The error as JSON, or its form re-rendered with the message, with its status."""
    if exc is None:
        code, status, message, extra = (
            "store_unavailable",
            503,
            "Sign-in is unavailable for a moment. Please try again shortly.",
            {},
        )
    else:
        code, status, message, extra = exc.code, exc.status, exc.message, exc.extra
    headers: dict[str, str] = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    response: BaseResponse
    if wants_json():
        body: dict[str, object] = {"error": code, "message": message}
        body.update({k: v for k, v in extra.items() if k != "retry_after"})
        response = jsonify(body)
        response.status_code = status
    else:
        response = render_error_page(code, message, status, extra)
    response.headers.update(headers)
    return response


def render_error_page(
    code: str, message: str, status: int, extra: dict[str, object]
) -> BaseResponse:
    endpoint = request.endpoint or ""
    data = form() if request.method == "POST" and code != "request_too_large" else {}
    if endpoint == "postmark_auth.verify_code":
        return page(
            "verify.html",
            status,
            email=text(data, "email"),
            next=text(data, "next"),
            error=message,
            attempts_left=extra.get("attempts_left"),
            otp_length=state().settings.otp_length,
        )
    if endpoint == "postmark_auth.magic_link":
        token = (request.view_args or {}).get("token", "")
        # A stale form (CSRF) does not make the link itself invalid: offer the button again.
        email = state().service.link_email(token) if code == "csrf" else None
        # A stale form for a link used up meanwhile: say what matters, the link is gone.
        stale = code == "csrf" and email is None
        return link_page(token, email, status, error=None if stale else message)
    return page(
        "login.html",
        status,
        methods=state().settings.methods,
        email=text(data, "email"),
        next=text(data, "next") or request.args.get("next", ""),
        error=message,
    )


def signed_in(result: SignedIn, remember: bool) -> BaseResponse:
    st = state()
    # Whatever the session held before (a CSRF token, another account, an attacker's
    # planted values) is dropped: a fresh session for the person who just proved who they
    # are, as Django's login() cycles its session key.
    session.clear()
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    if not login_user(result.user, remember=remember):
        raise (
            InvalidLinkError()
            if result.method == "magic_link"
            else InvalidCodeError(attempts_left=0)
        )
    st.service.signed_in(result)
    if wants_json():
        user = result.user
        return jsonify(
            status="signed_in",
            user={"id": public_id(user), "email": getattr(user, "email", result.email)},
            next=result.next,
            csrf_token=generate_csrf(),
        )
    return see_other(result.next)


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
    token: str, email: str | None, status: int | None = None, error: str | None = None
) -> BaseResponse:
    """The confirm page of a link: the account it signs in to, and who is signed in now
    when that is someone else (so an attacker's link cannot switch accounts unseen)."""
    return page(
        "magic_link.html",
        status if status is not None else (200 if email else 400),
        valid=email is not None,
        email=email,
        current_email=signed_in_elsewhere(email) if email else None,
        token=token,
        error=error,
    )


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
        email=session.get(_EMAIL_SESSION_KEY, ""),
        next=request.args.get("next", ""),
        error=None,
    )


@bp.post("/otp")
def request_code() -> BaseResponse:
    require("otp")
    data = form()
    sent = state().service.request_code(data.get("email"), data.get("next"), origin())
    if wants_json():
        response = jsonify(status="sent", expires_in=sent.expires_in)
        response.status_code = 202
        return response
    session[_EMAIL_SESSION_KEY] = text(data, "email").strip()
    target = state().service.safe_next(data.get("next"), origin())
    return see_other(url_for(".verify_code", next=target))


@bp.route("/otp/verify", methods=["GET", "POST"])
def verify_code() -> BaseResponse:
    require("otp")
    if request.method == "GET":
        return page(
            "verify.html",
            email=session.get(_EMAIL_SESSION_KEY, ""),
            next=request.args.get("next", ""),
            error=None,
            attempts_left=None,
            otp_length=state().settings.otp_length,
        )
    data = form()
    result = state().service.verify_code(
        data.get("email"), data.get("code"), data.get("next"), origin()
    )
    return signed_in(result, truthy(data.get("remember")))


@bp.post("/magic-link")
def request_link() -> BaseResponse:
    require("magic_link")
    data = form()
    sent = state().service.request_link(data.get("email"), data.get("next"), origin())
    if wants_json():
        response = jsonify(status="sent", expires_in=sent.expires_in)
        response.status_code = 202
        return response
    session[_EMAIL_SESSION_KEY] = text(data, "email").strip()
    return see_other(url_for(".check_email"))


@bp.get("/magic-link")
def check_email() -> BaseResponse:
    require("magic_link")
    return page(
        "check_email.html",
        email=session.get(_EMAIL_SESSION_KEY, ""),
        expires_in_minutes=max(1, state().settings.magic_link_ttl // 60),
    )


@bp.route("/magic-link/<token>", methods=["GET", "POST"])
def magic_link(token: str) -> BaseResponse:
    require("magic_link")
    service = state().service
    if request.method == "GET":
        email = service.link_email(token)
        # Scanners follow links: GET shows a button and changes nothing. It signs in at
        # once only when MAGIC_LINK_CONFIRM is off and no one else is signed in here.
        if (
            state().settings.magic_link_confirm
            or email is None
            or signed_in_elsewhere(email) is not None
        ):
            if wants_json():
                return jsonify(valid=True, email=email) if email else jsonify(valid=False)
            return link_page(token, email)
        data: dict[str, Any] = {}
    else:
        data = form()
    result = service.consume_link(token, request.args.get("next") or data.get("next"), origin())
    return signed_in(result, truthy(data.get("remember")))


@bp.post("/logout")
def logout() -> BaseResponse:
    user = current_user._get_current_object() if current_user.is_authenticated else None
    logout_user()
    if user is not None:
        state().service.signed_out(user)
    if wants_json():
        return jsonify(status="signed_out")
    data = form()
    return see_other(
        state().service.safe_next(data.get("next"), origin()) or state().settings.login_redirect
    )


# -- dev outbox -----------------------------------------------------------------------------


def linkify(value: str | None) -> Markup:
    """Escape ``value`` and make its http(s) URLs clickable (for the outbox's text parts)."""
    if not value:
        return Markup("")
    out = []
    last = 0
    for match in _URL.finditer(value):
        out.append(escape(value[last : match.start()]))
        out.append(Markup('<a href="{0}">{0}</a>').format(match.group(0)))
        last = match.end()
    out.append(escape(value[last:]))
    return Markup("").join(out)


def outbox_host_allowed() -> bool:
    """Whether the request names this machine (or the canonical URL's host)."""
    try:
        host = urlsplit(f"//{request.host}").hostname
    except ValueError:
        return False
    base = state().settings.base_url
    canonical = urlsplit(base).hostname if base else None
    return host is not None and (host in LOCAL_HOSTS or host == canonical)


def dev_outbox() -> DevOutbox:
    """The outbox, or 404 when it is off or the request does not name this machine."""
    found = state().outbox
    if found is None or not outbox_host_allowed():
        abort(404)
    return found


@bp.get("/dev/outbox")
def outbox() -> BaseResponse:
    messages = [json.loads(item) for item in dev_outbox().messages()]
    if wants_json():
        return jsonify(messages=messages)
    for message in messages:  # "2026-11-24T05:56:21.613609+00:00" -> "2026-11-24 05:56:21 UTC"
        created = str(message.get("created") or "")
        message["created"] = (
            f"{created[:10]} {created[11:19]} UTC" if len(created) >= 19 else created
        )
    return page("outbox.html", messages=messages, linkify=linkify)


@bp.post("/dev/outbox/clear")
def outbox_clear() -> BaseResponse:
    dev_outbox().clear()
    if wants_json():
        return jsonify(status="cleared")
    return see_other(url_for(".outbox"))
