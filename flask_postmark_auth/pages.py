"""What the sign-in blueprints answer with: their pages (in the base the app chose, titled
with its name) and their errors, as JSON or as a page by the request; also Flask-Login's
answer to a signed-out visitor of a ``login_required`` page (401 JSON for JSON clients)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from .edge import form, no_store, text, wants_json
from .errors import CSRFFailedError, RequestTooLargeError, SignInError, StoreDownError
from .i18n import N_, current_locale, gettext, locale_context, ngettext, template_functions
from .mail import OTP
from .state import state
from .store import StoreUnavailableError

log = logging.getLogger("flask_postmark_auth")

#: The package's own base page (``POSTMARK_AUTH_BASE_TEMPLATE``'s default).
DEFAULT_BASE = "postmark_auth/base.html"


class PageNotFoundError(SignInError):
    code = 404
    error = "not_found"
    description = N_("There is no such sign-in page.")


class MethodNotAllowedError(SignInError):
    code = 405
    error = "method_not_allowed"
    description = N_("This page does not answer that kind of request.")


def app_name() -> str:
    """How pages name the app: as its emails do (``APP_NAME``, the From name, the host)."""
    return state().service.mail.app_name(OTP, request.host)


def page(template: str, status: int = 200, **context: Any) -> BaseResponse:
    """A sign-in page, extending ``POSTMARK_AUTH_BASE_TEMPLATE``, in the request's language
    (``_pa``/``_pa_n`` translate; ``page_lang`` and ``page_dir`` are for ``<html>``)."""
    st = state()
    outbox = url_for("postmark_auth_outbox.outbox") if st.outbox is not None else None
    locale = current_locale()
    language = locale_context(locale)
    html = render_template(
        f"postmark_auth/{template}",
        dev_outbox_url=outbox,
        postmark_auth_base=st.settings.base_template,
        app_name=app_name(),
        csrf_token=generate_csrf,  # also on pages of no blueprint (routing errors)
        page_locale=locale,
        page_lang=language["lang"],
        page_dir=language["dir"],
        **template_functions(locale, html=True),
        **context,
    )
    return make_response(html, status)


def wait_text(seconds: int) -> str:
    """``30 seconds``, ``5 minutes``, ``24 hours``: how long a throttled person waits."""
    if seconds <= 90:
        return ngettext("%(num)d second", "%(num)d seconds", seconds)
    if seconds <= 90 * 60:
        return ngettext("%(num)d minute", "%(num)d minutes", -(-seconds // 60))
    return ngettext("%(num)d hour", "%(num)d hours", -(-seconds // 3600))


def message_for(exc: SignInError, as_json: bool) -> str:
    """The sentence for the person (or the API client): how long to wait, what to send."""
    wait = exc.extra.get("retry_after")
    if exc.error == "rate_limited" and isinstance(wait, int):
        return gettext("Too many requests. Wait %(wait)s, then try again.", wait=wait_text(wait))
    if exc.error == "csrf" and as_json:
        return gettext(
            "The CSRF token is missing, invalid or expired: get a fresh csrf_token from "
            "GET %(url)s and send it in the X-CSRFToken header.",
            url=url_for("postmark_auth.login"),
        )
    return exc.message


def answer_error(exc: SignInError) -> BaseResponse:
    """The error as JSON, or its page (the view's form again, with the message)."""
    status = exc.code or 400
    extra = exc.extra
    response: BaseResponse
    if wants_json():
        body: dict[str, object] = {"error": exc.error, "message": message_for(exc, True)}
        body.update({k: v for k, v in extra.items() if k != "retry_after"})
        response = jsonify(body)
        response.status_code = status
    else:
        response = render_error_page(exc.error, message_for(exc, False), status, extra)
    if "retry_after" in extra:
        response.headers["Retry-After"] = str(extra["retry_after"])
    if "allow" in extra:
        response.headers["Allow"] = str(extra["allow"])
    return response


#: A view's error page: what to show, in place of the view's own page, for an error it
#: raised (given the error's name, message, status and extra fields, and the posted form).
ErrorPage = Callable[[str, str, int, dict[str, object], dict[str, Any]], BaseResponse]
_error_pages: dict[str, ErrorPage] = {}

ViewT = TypeVar("ViewT", bound=Callable[..., BaseResponse])


def error_page(render: ErrorPage) -> Callable[[ViewT], ViewT]:
    """Declare the page a view shows for its errors (by default, the sign-in form)."""

    def declare(view: ViewT) -> ViewT:
        _error_pages[view.__name__] = render
        return view

    return declare


def render_error_page(
    code: str, message: str, status: int, extra: dict[str, object]
) -> BaseResponse:
    if status in (404, 405):
        return page("error.html", status, error=message, heading=status_heading(status), code=code)
    data = form() if request.method == "POST" and code != "request_too_large" else {}
    blueprint = request.blueprint == "postmark_auth"
    view = (request.endpoint or "").rpartition(".")[2] if blueprint else ""
    render = _error_pages.get(view, login_error_page)
    return render(code, message, status, extra, data)


def status_heading(status: int) -> str:
    return gettext("Page not found") if status == 404 else gettext("Not available this way")


def login_error_page(
    code: str, message: str, status: int, extra: dict[str, object], data: dict[str, Any]
) -> BaseResponse:
    """The sign-in form again, with what was typed and the message."""
    return page(
        "login.html",
        status,
        methods=state().settings.methods,
        email=text(data, "email"),
        next=text(data, "next") or request.args.get("next", ""),
        error=message,
    )


# -- the error handlers both blueprints register ---------------------------------------------


def app_csrf_failed(exc: CSRFError) -> BaseResponse:
    return answer_error(CSRFFailedError())


def sign_in_error(exc: SignInError) -> BaseResponse:
    return answer_error(exc)


def too_large(exc: RequestEntityTooLarge) -> BaseResponse:
    return answer_error(RequestTooLargeError())


def not_found(exc: NotFound) -> BaseResponse:
    """A switched-off method, the outbox when it is off: 404 as JSON or as a page."""
    return answer_error(PageNotFoundError())


def store_down(exc: StoreUnavailableError) -> BaseResponse:
    log.error("sign-in store unavailable: %s", exc)
    return answer_error(StoreDownError())


def routing_error() -> BaseResponse | None:
    """An app-wide hook: a path under ``URL_PREFIX`` that matches no route (404), or no
    route for its method (``GET /auth/logout``: 405), answers as the blueprint's errors do.
    (Flask gives blueprints' handlers no routing errors; other paths keep the app's.)"""
    exc = request.routing_exception
    if not isinstance(exc, NotFound | MethodNotAllowed) or request.blueprint is not None:
        return None
    prefix = state().settings.url_prefix.rstrip("/")
    if not prefix or not (request.path == prefix or request.path.startswith(prefix + "/")):
        return None
    if isinstance(exc, MethodNotAllowed):
        allow = ", ".join(sorted(exc.valid_methods or ()))
        response = answer_error(MethodNotAllowedError(allow=allow))
    else:
        response = answer_error(PageNotFoundError())
    return no_store(response)  # type: ignore[arg-type]  # a Flask response, as any view's


# -- Flask-Login's answer to a signed-out visitor ----------------------------------------------


def unauthorized_handler(manager: Any) -> Callable[[], BaseResponse]:
    """A ``LoginManager.unauthorized_callback``: 401 JSON for a JSON request, else what
    Flask-Login does by default (flash its message, send the visitor to the login view)."""

    def unauthorized() -> BaseResponse:
        if wants_json():
            response = jsonify(error="unauthorized", message=gettext("Sign in to use this."))
            response.status_code = 401
            return response
        return default_unauthorized(manager)

    return unauthorized


def default_unauthorized(manager: Any) -> BaseResponse:
    """Flask-Login 0.6's ``LoginManager.unauthorized`` past its callback (its signal is
    already sent)."""
    from flask_login.utils import _create_identifier, expand_login_view, make_next_param
    from flask_login.utils import login_url as make_login_url

    login_view = manager.blueprint_login_views.get(request.blueprint) or manager.login_view
    if not login_view:
        abort(401)
    if manager.login_message:
        message = manager.login_message
        if manager.localize_callback is not None:
            message = manager.localize_callback(message)
        flash(message, category=manager.login_message_category)
    if current_app.config.get("USE_SESSION_FOR_NEXT", False):
        session["_id"] = _create_identifier()
        session["next"] = make_next_param(expand_login_view(login_view), request.url)
        return redirect(make_login_url(login_view))
    return redirect(make_login_url(login_view, next_url=request.url))
