"""The demo app: `flask --app example_app run` (what `make demo` runs).

With no Postmark token in the environment it runs in debug mode, records mail in the dev
outbox (http://127.0.0.1:5000/auth/dev/outbox) and answers the connector's Test action from an
in-process FakePostmark, so a newcomer needs no Postmark account. With
POSTMARK_AUTH_SERVER_TOKEN and POSTMARK_AUTH_FROM_EMAIL (optionally
POSTMARK_AUTH_MESSAGE_STREAM) in the environment it sends for real.

Every ``POSTMARK_AUTH_*`` environment variable becomes a config value; ``create_app(config)``
overrides the environment (tests use it).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, abort, make_response, render_template, request
from flask_login import current_user, login_required
from flask_wtf import CSRFProtect

from flask_postmark_auth import PostmarkAuth

log = logging.getLogger(__name__)

auth = PostmarkAuth()

#: The contact form's flow: a thank-you to whoever wrote. Only a signed-in sender (whose
#: address is their account's, so proven) gets their own words back; a signed-out one gets
#: fixed text, so the form cannot carry anyone's message to a stranger's inbox. The
#: extension also limits runs per client and mail per recipient (FLOW_*_PER_HOUR).
FLOWS = {
    "contact": {
        "description": "Thank people who use the contact form",
        "steps": [
            {
                "to": "{{ form.email }}",
                "subject": "Thanks for writing{% if verified %}, {{ form.name or 'friend' }}"
                "{% endif %}",
                "text": "We got your message{% if verified %}:\n\n{{ form.message }}"
                "{% else %}, and will answer from our own address.{% endif %}\n\nThe demo team",
                "html": "<p>We got your message{% if verified %}:</p>"
                "<blockquote>{{ form.message }}</blockquote>"
                "{% else %}, and will answer from our own address.</p>{% endif %}"
                "<p>The demo team</p>",
                "tag": "contact",
            }
        ],
    }
}

#: Config keys read from the environment as plain strings (never parsed as JSON).
_STRING_KEYS = frozenset(
    {
        "POSTMARK_AUTH_SERVER_TOKEN",
        "POSTMARK_AUTH_FROM_EMAIL",
        "POSTMARK_AUTH_MESSAGE_STREAM",
        "POSTMARK_AUTH_API_URL",
        "POSTMARK_AUTH_STORE",
        "POSTMARK_AUTH_URL_PREFIX",
        "POSTMARK_AUTH_LOGIN_REDIRECT",
        "POSTMARK_AUTH_OTP_SUBJECT",
        "POSTMARK_AUTH_MAGIC_LINK_SUBJECT",
        "POSTMARK_AUTH_OTP_CONNECTOR",
        "POSTMARK_AUTH_MAGIC_LINK_CONNECTOR",
        "POSTMARK_AUTH_DELIVERY",
        "POSTMARK_AUTH_BASE_TEMPLATE",
    }
)
#: Longest contact message the demo accepts (it is echoed into an email).
MAX_MESSAGE = 2000


def env_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``POSTMARK_AUTH_*`` variables of ``environ`` as config values: strings for the keys
    that are strings, ``true``/``false``/``none`` in any case, else JSON when it parses."""
    config: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("POSTMARK_AUTH_"):
            continue
        value: Any = raw
        if name not in _STRING_KEYS:
            words = {"true": True, "false": False, "none": None, "null": None}
            if raw.strip().lower() in words:
                value = words[raw.strip().lower()]
            else:
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = raw
        config[name] = value
    return config


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the demo app; ``config`` overrides the environment."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
    app.config.update(env_config(os.environ))
    app.config.setdefault("POSTMARK_AUTH_FLOWS", FLOWS)
    # The sign-in pages extend the demo's own layout, so its header and nav stay on them.
    app.config.setdefault("POSTMARK_AUTH_BASE_TEMPLATE", "layout.html")
    app.config.update(config or {})
    if not app.config.get("POSTMARK_AUTH_SERVER_TOKEN"):
        use_fake_postmark(app)
    CSRFProtect(app)
    auth.init_app(app)
    # Flask-Login flashes "Please log in" when @login_required sends someone to the sign-in
    # page; the sign-in page shows no flashed messages, so don't queue one. (Flask-Login sets
    # app.login_manager and ships no types.)
    app.login_manager.login_message = None  # type: ignore[attr-defined]
    register_views(app)
    return app


def use_fake_postmark(app: Flask) -> None:
    """No token: record mail in the dev outbox (debug mode) and let the connector's Test
    action talk to an in-process FakePostmark, so the whole demo works offline."""
    from flask_postmark_auth.testing import FakePostmark

    fake = FakePostmark(server_name="Demo (FakePostmark)").start()
    app.extensions["example_fake_postmark"] = fake
    app.config.update(
        POSTMARK_AUTH_SERVER_TOKEN=fake.server_token,
        POSTMARK_AUTH_API_URL=fake.url,
        POSTMARK_AUTH_DEV_OUTBOX=True,
    )
    if not app.config.get("POSTMARK_AUTH_FROM_EMAIL"):
        app.config["POSTMARK_AUTH_FROM_EMAIL"] = "Demo <login@example.com>"
    if not app.testing:
        app.debug = True  # the dev outbox exists only in debug or testing mode
        log.warning(
            "POSTMARK_AUTH_SERVER_TOKEN is not set: mail is recorded in the dev outbox at "
            "/auth/dev/outbox, not sent (app.debug is on for it)."
        )


def register_views(app: Flask) -> None:
    @app.context_processor
    def demo_globals() -> dict[str, Any]:
        return {
            "dev_outbox": auth.dev_outbox_enabled(),
            "fake_postmark": "example_fake_postmark" in app.extensions,
            "methods": app.config["POSTMARK_AUTH_METHODS"],
        }

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

    @app.get("/account")
    @login_required  # type: ignore[untyped-decorator]  # Flask-Login ships no types
    def account() -> str:
        return render_template("account.html")

    @app.route("/connector", methods=["GET", "POST"])
    @login_required  # type: ignore[untyped-decorator]  # Flask-Login ships no types
    def connector() -> str:
        connectors = auth.connectors()
        name = request.values.get("connector", "default")
        if name not in connectors:
            abort(404)
        report = None
        send_to = ""
        if request.method == "POST":
            send_to = request.form.get("send_to", "").strip()
            report = auth.connector(name).test(send_to=send_to or None)
        return render_template(
            "connector.html",
            connectors=connectors,
            connector=connectors[name],
            report=report,
            send_to=send_to,
        )

    @app.route("/contact", methods=["GET", "POST"])
    def contact() -> Response:
        result = None
        error = None
        status = 200
        signed_in = current_user.is_authenticated
        form = {"email": current_user.email} if signed_in else {}
        if request.method == "POST":
            form = {
                name: request.form.get(name, "").strip() for name in ("name", "email", "message")
            }
            if signed_in:
                form["email"] = current_user.email  # a signed-in sender writes as themselves
            if not form["email"] or not form["message"]:
                error = "Please give your email address and a message."
            elif len(form["message"]) > MAX_MESSAGE:
                error = f"Please keep the message under {MAX_MESSAGE} characters."
            else:
                result = auth.run_flow("contact", form=form, verified=signed_in)
                if result.retry_after is not None:
                    minutes = -(-result.retry_after // 60)
                    error = f"Too many messages just now. Please try again in {minutes} min."
                    status = 429
                elif not result.ok:
                    error = "We could not send that: check the address and try again."
        if error and status == 200:
            status = 400
        html = render_template(
            "contact.html", result=result, form=form, error=error, signed_in=signed_in
        )
        response = make_response(html, status)
        if result is not None and result.retry_after is not None:
            response.headers["Retry-After"] = str(result.retry_after)
        return response
