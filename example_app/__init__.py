"""The demo app: `flask --app example_app run` (what `make demo` runs).

With no Postmark token in the environment it records mail in the dev outbox and answers the
connector's Test action from an in-process FakePostmark, so a newcomer needs no Postmark
account. With POSTMARK_AUTH_SERVER_TOKEN and POSTMARK_AUTH_FROM_EMAIL set, it sends for real.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from flask import Flask, render_template, request
from flask_login import login_required
from flask_wtf import CSRFProtect

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.extension import state

auth = PostmarkAuth()

#: The contact form's flow: a thank-you to whoever wrote, rendered from the form.
FLOWS = {
    "contact": {
        "description": "Thank people who use the contact form",
        "steps": [
            {
                "to": "{{ form.email }}",
                "subject": "Thanks for writing, {{ form.name or 'friend' }}",
                "text": "We got your message:\n\n{{ form.message }}\n\nThe demo team",
                "html": "<p>We got your message:</p><blockquote>{{ form.message }}</blockquote>"
                "<p>The demo team</p>",
                "tag": "contact",
            }
        ],
    }
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the demo app; ``config`` overrides everything (tests use it)."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
    for name, value in os.environ.items():
        if name.startswith("POSTMARK_AUTH_"):
            try:
                app.config[name] = json.loads(value)
            except ValueError:
                app.config[name] = value
    app.config.setdefault("POSTMARK_AUTH_FLOWS", FLOWS)
    app.config.update(config or {})
    if not app.config.get("POSTMARK_AUTH_SERVER_TOKEN"):
        from flask_postmark_auth.testing import FakePostmark

        fake = FakePostmark(server_name="Demo (FakePostmark)").start()
        app.config.update(
            POSTMARK_AUTH_SERVER_TOKEN=fake.server_token,
            POSTMARK_AUTH_FROM_EMAIL="Demo <login@example.com>",
            POSTMARK_AUTH_API_URL=fake.url,
            POSTMARK_AUTH_DEV_OUTBOX=True,
        )
        app.debug = True
    CSRFProtect(app)
    auth.init_app(app)

    @app.context_processor
    def dev_outbox() -> dict[str, Any]:
        return {"dev_outbox": state().outbox is not None}

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

    @app.get("/account")
    @login_required
    def account() -> str:
        return render_template("account.html")

    @app.route("/connector", methods=["GET", "POST"])
    @login_required
    def connector() -> str:
        report = None
        if request.method == "POST":
            report = auth.connector().test(send_to=request.form.get("send_to") or None)
        return render_template("connector.html", connector=auth.connector(), report=report)

    @app.route("/contact", methods=["GET", "POST"])
    def contact() -> str:
        result = None
        form = request.form.to_dict() if request.method == "POST" else {}
        if request.method == "POST":
            form.pop("csrf_token", None)
            result = auth.run_flow("contact", form=form)
        return render_template("contact.html", result=result, form=form)

    return app
