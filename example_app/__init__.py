"""The demo app: `flask --app example_app run` (what `make demo` runs).

With no Postmark token in the environment it runs against an in-process FakePostmark and
records mail in the dev outbox, so a newcomer needs no Postmark account. With
POSTMARK_AUTH_SERVER_TOKEN and POSTMARK_AUTH_FROM_EMAIL set, it talks to Postmark for real.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from flask import Flask, render_template_string, request

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.extension import state

auth = PostmarkAuth()

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flask-Postmark-Auth demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
      color:#1f2933}
 .banner{background:#fff4d6;border:1px solid #f0c36d;padding:.5rem 1rem;border-radius:6px}
 pre{background:#0f172a;color:#e2e8f0;padding:1rem;border-radius:6px;overflow:auto}
 button{font:inherit;padding:.4rem 1rem;border-radius:6px;border:1px solid #2563eb;
        background:#2563eb;color:#fff;cursor:pointer}
 input{font:inherit;padding:.35rem .5rem}
 li{margin:.4rem 0}
</style></head><body>
<h1>Flask-Postmark-Auth demo</h1>
{% if outbox is not none %}<p class="banner">Dev outbox on: mail is recorded here, not sent.
{% if fake %}Postmark is a local FakePostmark.{% endif %}</p>{% endif %}
<h2>Connector <code>{{ connector.name }}</code></h2>
<p>From {{ connector.from_email }}, stream <code>{{ connector.message_stream }}</code>,
token {{ connector.masked_token }}.</p>
<form method="post">
 <label for="send_to">Also send a test email to (optional)</label>
 <input id="send_to" name="send_to" type="email" placeholder="you@example.com">
 <button type="submit">Test</button>
</form>
{% if report %}<h3>Test Results</h3><pre>{{ report }}</pre>{% endif %}
{% if outbox is not none %}<h2>Dev outbox</h2>
<ul>{% for path, m in outbox|reverse %}<li><strong>{{ m.Subject }}</strong> to {{ m.To }}
<pre>{{ m.TextBody }}</pre></li>{% else %}<li>No mail yet.</li>{% endfor %}</ul>{% endif %}
</body></html>"""


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
    fake = None
    if config:
        app.config.update(config)
    if not app.config.get("POSTMARK_AUTH_SERVER_TOKEN") and not (config or {}).get(
        "POSTMARK_AUTH_DEV_OUTBOX"
    ):
        from flask_postmark_auth.testing import FakePostmark

        fake = FakePostmark(server_name="Demo (FakePostmark)").start()
        app.config.update(
            POSTMARK_AUTH_SERVER_TOKEN=fake.server_token,
            POSTMARK_AUTH_FROM_EMAIL="Demo <login@example.com>",
            POSTMARK_AUTH_API_URL=fake.url,
            POSTMARK_AUTH_DEV_OUTBOX=True,
        )
        app.debug = True
    auth.init_app(app)

    @app.route("/", methods=["GET", "POST"])
    def home() -> str:
        connector = auth.connector()
        report = None
        if request.method == "POST":
            report = connector.test(send_to=request.form.get("send_to") or None)
        outbox = state().outbox
        return render_template_string(
            PAGE,
            connector=connector,
            report=report,
            outbox=None if outbox is None else list(outbox.messages),
            fake=fake is not None,
        )

    return app
