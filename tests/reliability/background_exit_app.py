"""Run by ``test_background_delivery.py`` as ``python background_exit_app.py API_URL TOKEN
CODES LINKS``: an app with ``DELIVERY="background"`` queues sign-in mail for a FakePostmark
(codes through a working connector, links through one whose token is refused), prints
whether sends were still queued, and exits normally without flushing. What was queued must
still go out, and each failure must reach the ``delivery_failed`` signal and the log."""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask

from flask_postmark_auth import PostmarkAuth, PostmarkConnector, signals

FROM = "Acme <login@acme.example>"


def on_failure(sender: Flask, *, email: str, error: Exception, purpose: str, **_: Any) -> None:
    print(f"SIGNAL delivery_failed {purpose} {type(error).__name__}", flush=True)


def main(api_url: str, token: str, codes: int, links: int) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="LOG %(levelname)s %(name)s: %(message)s"
    )
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="background-exit",
        TESTING=True,
        WTF_CSRF_ENABLED=False,
        POSTMARK_AUTH_CONNECTORS={
            "default": PostmarkConnector(
                "default", server_token=token, from_email=FROM, api_url=api_url, backoff=0
            ),
            "refused": PostmarkConnector(
                "refused", server_token="not-the-token", from_email=FROM, api_url=api_url
            ),
        },
        POSTMARK_AUTH_MAGIC_LINK_CONNECTOR="refused",
        POSTMARK_AUTH_DELIVERY="background",
        POSTMARK_AUTH_DEV_OUTBOX=False,
        POSTMARK_AUTH_IP_REQUESTS_PER_HOUR=10_000,
    )
    auth = PostmarkAuth(app)
    signals.delivery_failed.connect(on_failure, app)
    client = app.test_client()
    for n in range(codes):
        assert client.post("/auth/otp", json={"email": f"code-{n}@example.com"}).status_code == 202
    for n in range(links):
        response = client.post("/auth/magic-link", json={"email": f"link-{n}@example.com"})
        assert response.status_code == 202
    print(f"QUEUED pending={not auth.flush(timeout=0)}", flush=True)
    # No flush and no shutdown call: the interpreter's normal exit must send the rest.


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
