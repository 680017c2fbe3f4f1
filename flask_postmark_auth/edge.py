"""The HTTP edge every sign-in request passes first: the body limit, CSRF whatever the app's
own CSRFProtect does, the answers' cache headers, and reading the request (JSON or form,
which answer it wants, where it comes from)."""

from __future__ import annotations

import io
from typing import Any

from flask import Response, current_app, request
from flask_wtf.csrf import validate_csrf
from werkzeug.wrappers import Response as BaseResponse
from wtforms.validators import ValidationError

from .errors import CSRFFailedError, RequestTooLargeError
from .site import Origin

#: Blueprints whose POSTs :func:`limit_body` bounds (the dev outbox's joins when it is on).
SIGN_IN_BLUEPRINTS = {"postmark_auth", "postmark_auth_outbox"}

#: Largest body a sign-in POST may have: an address, a code and a ``next`` fit many times.
MAX_BODY = 64 * 1024
#: Flask-WTF's defaults, for apps that do not set them.
_CSRF_HEADERS = ["X-CSRFToken", "X-CSRF-Token"]


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


def limit_body() -> None:
    """Refuse a sign-in POST body over :data:`MAX_BODY` before anything reads it (an app
    hook of its own, first in line: the app's CSRFProtect would read it before the
    blueprint's hooks run). A body of unknown length is read up to the limit, no further.
    (Without ``wsgi.input_terminated`` the server gives no body of unknown length.)"""
    if request.blueprint not in SIGN_IN_BLUEPRINTS or request.method != "POST":
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


def no_store(response: Response) -> BaseResponse:
    """Auth pages are never cached, and never leak their URL (which may hold a link
    token) through the Referer header."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
