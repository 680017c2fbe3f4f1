"""The Flask extension: reads the configuration, builds connectors, keeps per-app state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from .connector import PostmarkConnector, accepted_answer
from .errors import ConfigurationError, MessageValidationError
from .settings import DEFAULTS, DEV_OUTBOX_FROM, Settings, key, load

EXTENSION_KEY = "postmark_auth"
_CONNECTOR_FIELDS = frozenset({"server_token", "from_email", "message_stream", "description"})


@dataclass
class DevOutbox:
    """Mail recorded instead of sent while the dev outbox is on."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def intercept(self, path: str, payload: Any) -> Any:
        items = (
            payload["Messages"] if isinstance(payload, dict) and "Messages" in payload else None
        )
        with self.lock:
            for item in items if items is not None else [payload]:
                self.messages.append((path, item))
        return accepted_answer(path, payload)


@dataclass
class AuthState:
    """Everything the extension keeps for one app, in ``app.extensions["postmark_auth"]``."""

    settings: Settings
    connectors: dict[str, PostmarkConnector]
    outbox: DevOutbox | None


class PostmarkAuth:
    """Passwordless sign-in through Postmark for one or more Flask apps."""

    def __init__(self, app: Flask | None = None) -> None:
        self._find_user: Callable[[str], Any] | None = None
        self._create_user: Callable[[str], Any] | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Check the configuration and set the extension up on ``app``."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "PostmarkAuth is already registered on this app; call init_app once per app."
            )
        for name, default in DEFAULTS.items():
            app.config.setdefault(key(name), default)
        settings = load(
            app.config, debug=app.debug, testing=app.testing, instance_path=app.instance_path
        )
        outbox = DevOutbox() if settings.dev_outbox else None
        connectors = build_connectors(settings)
        if outbox is not None:
            for connector in connectors.values():
                connector.interceptor = outbox.intercept
        app.extensions[EXTENSION_KEY] = AuthState(
            settings=settings, connectors=connectors, outbox=outbox
        )
        from .cli import postmark_auth_cli

        app.cli.add_command(postmark_auth_cli)

    # -- user callbacks ---------------------------------------------------------------------

    def find_user(self, func: Callable[[str], Any]) -> Callable[[str], Any]:
        """Register ``(email) -> user | None``; used as a decorator."""
        self._find_user = func
        return func

    def create_user(self, func: Callable[[str], Any]) -> Callable[[str], Any]:
        """Register ``(email) -> user``, called on a first sign-in; used as a decorator."""
        self._create_user = func
        return func

    # -- connectors -------------------------------------------------------------------------

    def connector(self, name: str = "default") -> PostmarkConnector:
        """The configured connector ``name`` of the current app."""
        connectors = state().connectors
        try:
            return connectors[name]
        except KeyError:
            raise LookupError(
                f"No connector named {name!r}; configured: {sorted(connectors)}."
            ) from None


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


def build_connectors(settings: Settings) -> dict[str, PostmarkConnector]:
    """Connectors from ``SERVER_TOKEN``/``FROM_EMAIL``/``MESSAGE_STREAM`` and ``CONNECTORS``."""
    connectors: dict[str, PostmarkConnector] = {}
    token, from_email = settings.server_token, settings.from_email
    if token or from_email:
        if not token:
            raise ConfigurationError(
                f"{key('FROM_EMAIL')} is set but {key('SERVER_TOKEN')} is not: set it to the "
                "Server API Token from your Postmark server's API Tokens tab."
            )
        if not from_email:
            raise ConfigurationError(
                f"{key('FROM_EMAIL')} is missing: set it to a confirmed Sender Signature, "
                "such as 'Acme <login@acme.example>'."
            )
        connectors["default"] = _make(
            "default",
            key("SERVER_TOKEN"),
            {
                "server_token": token,
                "from_email": from_email,
                "message_stream": settings.message_stream,
            },
            settings,
            from_key=key("FROM_EMAIL"),
        )
    for name, spec in settings.connectors.items():
        where = f"{key('CONNECTORS')}[{name!r}]"
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{key('CONNECTORS')} names must be non-empty strings.")
        if name in connectors:
            raise ConfigurationError(
                f"{where} clashes with the connector built from {key('SERVER_TOKEN')}; "
                "configure 'default' in one place only."
            )
        if isinstance(spec, PostmarkConnector):
            connectors[name] = spec
        elif isinstance(spec, Mapping):
            connectors[name] = _make(
                name, where, spec, settings, from_key=f"{where}['from_email']"
            )
        else:
            raise ConfigurationError(f"{where} must be a dict of settings or a PostmarkConnector.")
    if "default" not in connectors:
        if not settings.dev_outbox:
            raise ConfigurationError(
                f"{key('SERVER_TOKEN')} is not set: set it to your Postmark Server API Token "
                f"(and {key('FROM_EMAIL')} to a confirmed sender), or add a 'default' entry "
                f"to {key('CONNECTORS')}. In debug or testing mode the dev outbox records "
                "mail instead."
            )
        connectors["default"] = PostmarkConnector(
            "default",
            server_token="dev-outbox",  # noqa: S106 - never sent: the outbox intercepts
            from_email=from_email or DEV_OUTBOX_FROM,
            message_stream=settings.message_stream,
            description="Dev outbox: mail is recorded, not sent",
            api_url=settings.api_url,
        )
    for method_key, name in (
        ("OTP_CONNECTOR", settings.otp_connector),
        ("MAGIC_LINK_CONNECTOR", settings.magic_link_connector),
    ):
        if name not in connectors:
            raise ConfigurationError(
                f"{key(method_key)} names connector {name!r}, which is not configured; "
                f"configured: {sorted(connectors)}."
            )
    return connectors


def _make(
    name: str, where: str, spec: Mapping[str, Any], settings: Settings, *, from_key: str
) -> PostmarkConnector:
    unknown = set(spec) - _CONNECTOR_FIELDS
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_CONNECTOR_FIELDS)}."
        )
    if not spec.get("server_token"):
        raise ConfigurationError(f"{where} needs 'server_token', your Postmark Server API Token.")
    if not spec.get("from_email"):
        raise ConfigurationError(f"{where} needs 'from_email', a confirmed sender address.")
    try:
        return PostmarkConnector(
            name,
            server_token=spec["server_token"],
            from_email=spec["from_email"],
            message_stream=spec.get("message_stream") or "outbound",
            description=spec.get("description", ""),
            api_url=settings.api_url,
        )
    except MessageValidationError as exc:
        raise ConfigurationError(
            f"{from_key} is not a valid From address: use 'login@acme.example' or "
            f"'Acme <login@acme.example>'."
        ) from exc
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc
