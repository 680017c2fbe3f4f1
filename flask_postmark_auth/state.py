"""Per-app state: what ``init_app`` keeps in ``app.extensions["postmark_auth"]``.

A leaf: the views, the CLI and the testing helpers import it, and it imports nothing of the
package at run time, so no import runs upwards or in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from .connector import PostmarkConnector
    from .outbox import DevOutbox
    from .service import SignInService
    from .settings import Settings
    from .store import Store
    from .users import UserDirectory

#: The key of the extension's state in ``app.extensions``.
EXTENSION_KEY = "postmark_auth"


@dataclass
class AuthState:
    """Everything the extension keeps for one app, in ``app.extensions["postmark_auth"]``."""

    settings: Settings
    connectors: dict[str, PostmarkConnector]
    store: Store
    users: UserDirectory
    service: SignInService
    outbox: DevOutbox | None


def state(app: Flask | None = None) -> AuthState:
    """The extension's state for ``app`` (default: the current app)."""
    app = app if app is not None else current_app
    try:
        found: AuthState = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "PostmarkAuth is not set up on this app: call auth.init_app(app) in create_app()."
        ) from None
    return found
