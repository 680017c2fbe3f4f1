"""The dev outbox's pages: a blueprint of its own, registered only when the outbox is on
(debug or testing), answering only requests that name this machine."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from flask import Blueprint, abort, jsonify, request, url_for
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as BaseResponse

from .edge import no_store, protect, wants_json
from .errors import SignInError
from .i18n import DEFAULT_LOCALE, use_locale
from .outbox import DevOutbox, found_secrets
from .pages import app_csrf_failed, not_found, page, sign_in_error, store_down
from .state import state
from .store import StoreUnavailableError
from .views import see_other, template_globals

# The sign-in blueprint's protections, for these pages too: they show codes and links.
outbox_bp = Blueprint("postmark_auth_outbox", __name__)
outbox_bp.before_request(protect)
outbox_bp.before_request(lambda: use_locale(DEFAULT_LOCALE))  # a developer tool, in English
outbox_bp.after_request(no_store)
outbox_bp.context_processor(template_globals)
outbox_bp.register_error_handler(CSRFError, app_csrf_failed)
outbox_bp.register_error_handler(SignInError, sign_in_error)
outbox_bp.register_error_handler(NotFound, not_found)
outbox_bp.register_error_handler(StoreUnavailableError, store_down)

_URL = re.compile(r"https?://[^\s<>\"']+")
#: Hosts the dev outbox answers besides the canonical URL's, as Werkzeug's debugger does:
#: a DNS-rebinding page on another name cannot read codes off a developer's machine.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


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
    """The outbox, or 404 when the request does not name this machine."""
    found = state().outbox
    if found is None or not outbox_host_allowed():
        abort(404)
    return found


@outbox_bp.get("/dev/outbox")
def outbox() -> BaseResponse:
    """Newest first; ``?to=`` keeps the messages whose recipients contain it."""
    wanted = request.args.get("to", "").strip()
    messages = []
    for item in dev_outbox().messages():
        message = json.loads(item)
        if wanted.lower() in str(message.get("to") or "").lower():
            messages.append({**message, **found_secrets(message)})
    if wants_json():
        return jsonify(messages=messages)
    for message in messages:  # "2026-11-24T05:56:21.613609+00:00" -> "2026-11-24 05:56:21 UTC"
        created = str(message.get("created") or "")
        message["time"] = f"{created[:10]} {created[11:19]} UTC" if len(created) >= 19 else created
    return page("outbox.html", messages=messages, linkify=linkify, to=wanted)


@outbox_bp.post("/dev/outbox/clear")
def outbox_clear() -> BaseResponse:
    dev_outbox().clear()
    if wants_json():
        return jsonify(status="cleared")
    return see_other(url_for(".outbox"))
