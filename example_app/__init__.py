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

from flask import Flask, render_template_string, request
from flask_login import current_user, login_required
from flask_wtf import CSRFProtect
from markupsafe import Markup

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.extension import state

auth = PostmarkAuth()

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · Flask-Postmark-Auth demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
      color:#1f2933}
 nav a{margin-right:1rem}
 .banner{background:#fff4d6;border:1px solid #f0c36d;padding:.5rem 1rem;border-radius:6px}
 pre{background:#0f172a;color:#e2e8f0;padding:1rem;border-radius:6px;overflow:auto}
 button{font:inherit;padding:.4rem 1rem;border-radius:6px;border:1px solid #2563eb;
        background:#2563eb;color:#fff;cursor:pointer}
 input{font:inherit;padding:.35rem .5rem}
</style></head><body>
<nav><a href="{{ url_for('home') }}">Home</a><a href="{{ url_for('account') }}">Account</a>
<a href="{{ url_for('connector') }}">Connector</a>
{% if outbox %}<a href="{{ url_for('postmark_auth.outbox') }}">Dev outbox</a>{% endif %}</nav>
{% if outbox %}<p class="banner">Dev outbox on: mail is recorded
<a href="{{ url_for('postmark_auth.outbox') }}">here</a>, not sent.</p>{% endif %}
<main>{{ body }}</main></body></html>"""

HOME = """<h1>Flask-Postmark-Auth demo</h1>
{% if current_user.is_authenticated %}
<p>Signed in as <strong>{{ current_user.email }}</strong>.</p>
<form method="post" action="{{ url_for('postmark_auth.logout') }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button type="submit">Sign out</button></form>
{% else %}<p>You are not signed in.
<a href="{{ url_for('postmark_auth.login') }}">Sign in by code or by link</a>.</p>{% endif %}"""

CONNECTOR = """<h1>Connector <code>{{ connector.name }}</code></h1>
<p>From {{ connector.from_email }}, stream <code>{{ connector.message_stream }}</code>,
token {{ connector.masked_token }}.</p>
<form method="post">
 <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
 <label for="send_to">Also send a test email to (optional)</label>
 <input id="send_to" name="send_to" type="email" placeholder="you@example.com">
 <button type="submit">Test</button>
</form>
{% if report %}<h2>Test Results</h2><pre>{{ report }}</pre>{% endif %}"""


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

    def render(title: str, source: str, **context: Any) -> str:
        body = Markup(render_template_string(source, **context))
        outbox = state().outbox is not None
        return render_template_string(LAYOUT, title=title, body=body, outbox=outbox)

    @app.get("/")
    def home() -> str:
        return render("Home", HOME, current_user=current_user)

    @app.get("/account")
    @login_required
    def account() -> str:
        return render("Account", "<h1>Account</h1><p>Only signed-in people see this page.</p>")

    @app.route("/connector", methods=["GET", "POST"])
    @login_required
    def connector() -> str:
        report = None
        if request.method == "POST":
            report = auth.connector().test(send_to=request.form.get("send_to") or None)
        return render("Connector", CONNECTOR, connector=auth.connector(), report=report)

    return app
