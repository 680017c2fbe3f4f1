"""Every configuration key in one table, with its default and its check.

Keys are read once, at ``init_app``, into a frozen :class:`Settings`; a wrong value fails
there with a message that names the key and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

PREFIX = "POSTMARK_AUTH_"

#: Sign-in methods this package offers.
METHODS = ("otp", "magic_link")
#: Events a flow can be triggered by.
TRIGGERS = ("signed_in", "signed_up")

#: No Server API Token until the app gives one.
NO_TOKEN = None

#: Key (without the prefix) -> default. ``STORE``, ``DEV_OUTBOX`` and ``DELIVERY`` are
#: resolved at ``init_app`` when left as ``None`` (see :func:`load`).
DEFAULTS: dict[str, Any] = {
    "SERVER_TOKEN": NO_TOKEN,
    "FROM_EMAIL": None,
    "MESSAGE_STREAM": "outbound",
    "CONNECTORS": {},
    "API_URL": "https://api.postmarkapp.com",
    "OTP_CONNECTOR": "default",
    "MAGIC_LINK_CONNECTOR": "default",
    "METHODS": ["otp", "magic_link"],
    "URL_PREFIX": "/auth",
    "STORE": None,
    "OTP_LENGTH": 6,
    "OTP_TTL": 600,
    "OTP_MAX_ATTEMPTS": 5,
    "MAGIC_LINK_TTL": 900,
    "MAGIC_LINK_CONFIRM": True,
    "RESEND_INTERVAL": 30,
    "EMAILS_PER_HOUR": 10,
    "IP_REQUESTS_PER_HOUR": 100,
    "ALLOW_SIGNUP": True,
    "LOGIN_REDIRECT": "/",
    "ALLOWED_REDIRECT_HOSTS": [],
    "OTP_SUBJECT": "Your sign-in code for {{ app_name }}",
    "MAGIC_LINK_SUBJECT": "Your sign-in link for {{ app_name }}",
    "OTP_TEMPLATE": None,
    "MAGIC_LINK_TEMPLATE": None,
    "DELIVERY": None,
    "FLOWS": {},
    "DEV_OUTBOX": None,
    "BASE_URL": None,
    "APP_NAME": None,
    "FLOW_EMAILS_PER_HOUR": 5,
    "FLOW_IP_REQUESTS_PER_HOUR": 20,
}

#: Default From address of the dev outbox when no real connector is configured.
DEV_OUTBOX_FROM = "Dev outbox <sign-in@example.com>"


@dataclass(frozen=True)
class Settings:
    """The extension's configuration for one app, checked and frozen at ``init_app``."""

    server_token: str | None
    from_email: str | None
    message_stream: str
    connectors: Mapping[str, Any]
    api_url: str
    otp_connector: str
    magic_link_connector: str
    methods: tuple[str, ...]
    url_prefix: str
    store: str
    otp_length: int
    otp_ttl: int
    otp_max_attempts: int
    magic_link_ttl: int
    magic_link_confirm: bool
    resend_interval: int
    emails_per_hour: int
    ip_requests_per_hour: int
    allow_signup: bool
    login_redirect: str
    allowed_redirect_hosts: tuple[str, ...]
    otp_subject: str
    magic_link_subject: str
    otp_template: str | int | None
    magic_link_template: str | int | None
    delivery: str | Callable[..., Any]
    flows: Mapping[str, Any]
    dev_outbox: bool
    #: The canonical URL (``scheme://host[/path]``, no trailing slash) links and ``next``
    #: come from; ``None`` only in debug or testing, where the request's host serves.
    base_url: str | None
    app_name: str | None
    flow_emails_per_hour: int
    flow_ip_requests_per_hour: int


def key(name: str) -> str:
    """The full config key for a short name: ``key("STORE") == "POSTMARK_AUTH_STORE"``."""
    return PREFIX + name


def refuse_unknown_keys(where: str, given: Iterable[object], allowed: Iterable[str]) -> None:
    """Raise :class:`ConfigurationError` naming ``where`` when ``given`` has keys outside
    ``allowed`` (a typo in a dict of settings should never pass silently)."""
    unknown = {str(name) for name in given} - set(allowed)
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}."
        )


def _fail(name: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{key(name)} {problem}")


def _int(config: Mapping[str, Any], name: str, low: int, high: int | None = None) -> int:
    value = config[key(name)]
    if isinstance(value, bool) or not isinstance(value, int):
        return_type = type(value).__name__
        raise _fail(name, f"must be a whole number, not {return_type} {value!r}.")
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise _fail(name, f"must be {span}; it is {value}.")
    return value


def _bool(config: Mapping[str, Any], name: str) -> bool:
    value = config[key(name)]
    if not isinstance(value, bool):
        raise _fail(name, f"must be True or False, not {value!r}.")
    return value


def _str(config: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    value = config[key(name)]
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, f"must be a non-empty string, not {value!r}.")
    return value


def _template(config: Mapping[str, Any], name: str) -> str | int | None:
    value = config[key(name)]
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.strip():
        return value
    raise _fail(name, "must be a Postmark template alias (str), id (int) or None.")


def check_unknown_keys(config: Mapping[str, Any]) -> None:
    """Refuse ``POSTMARK_AUTH_*`` keys this package does not know: they are typos."""
    for name in config:
        if (
            isinstance(name, str)
            and name.startswith(PREFIX)
            and name[len(PREFIX) :] not in DEFAULTS
        ):
            close = difflib.get_close_matches(name[len(PREFIX) :], DEFAULTS, n=1)
            hint = f" Did you mean {key(close[0])}?" if close else ""
            raise ConfigurationError(f"Unknown configuration key {name}.{hint}")


def load(config: Mapping[str, Any], *, debug: bool, testing: bool) -> Settings:
    """Check every key and return the frozen settings."""
    check_unknown_keys(config)

    token = config[key("SERVER_TOKEN")]
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise _fail("SERVER_TOKEN", "must be your Server API Token (a string) or None.")

    dev_outbox = config[key("DEV_OUTBOX")]
    if dev_outbox is None:
        dev_outbox = (debug or testing) and not token and not config[key("CONNECTORS")]
    elif not isinstance(dev_outbox, bool):
        raise _fail("DEV_OUTBOX", f"must be True, False or None, not {dev_outbox!r}.")
    if dev_outbox and not (debug or testing):
        raise _fail(
            "DEV_OUTBOX",
            "is only allowed when the app runs in debug or testing mode: it shows every "
            "sign-in code to whoever opens the outbox page. Turn it off in production.",
        )

    methods = config[key("METHODS")]
    if (
        isinstance(methods, str)
        or not isinstance(methods, (list, tuple))
        or not methods
        or any(m not in METHODS for m in methods)
    ):
        raise _fail("METHODS", f"must be a non-empty list drawn from {list(METHODS)}.")

    prefix = _str(config, "URL_PREFIX")
    if not prefix.startswith("/") or (prefix != "/" and prefix.endswith("/")):
        raise _fail("URL_PREFIX", "must start with '/' and not end with one, like '/auth'.")

    store = config[key("STORE")]
    if store is None:
        store = "memory://" if testing else "sqlite:///postmark_auth.db"
    elif not isinstance(store, str) or "://" not in store:
        raise _fail("STORE", "must be a URI: memory://, sqlite:///file.db or redis://host:6379/0.")

    hosts = config[key("ALLOWED_REDIRECT_HOSTS")]
    if isinstance(hosts, str) or not all(isinstance(h, str) for h in hosts):
        raise _fail("ALLOWED_REDIRECT_HOSTS", "must be a list of host names.")

    connectors = config[key("CONNECTORS")]
    if not isinstance(connectors, Mapping):
        raise _fail("CONNECTORS", "must be a dict of connector name to settings.")

    flows = config[key("FLOWS")]
    if not isinstance(flows, Mapping):
        raise _fail("FLOWS", "must be a dict of flow name to flow.")

    delivery = config[key("DELIVERY")]
    if delivery is None:
        delivery = "sync" if testing else "background"
    if not callable(delivery) and delivery not in ("sync", "background"):
        raise _fail("DELIVERY", f"must be 'sync', 'background' or a callable, not {delivery!r}.")

    return Settings(
        server_token=token,
        from_email=_str(config, "FROM_EMAIL", optional=True),
        message_stream=_str(config, "MESSAGE_STREAM"),
        connectors=connectors,
        api_url=_str(config, "API_URL"),
        otp_connector=_str(config, "OTP_CONNECTOR"),
        magic_link_connector=_str(config, "MAGIC_LINK_CONNECTOR"),
        methods=tuple(methods),
        url_prefix=prefix,
        store=store,
        otp_length=_int(config, "OTP_LENGTH", 6, 10),
        otp_ttl=_int(config, "OTP_TTL", 30),
        otp_max_attempts=_int(config, "OTP_MAX_ATTEMPTS", 1, 100),
        magic_link_ttl=_int(config, "MAGIC_LINK_TTL", 30),
        magic_link_confirm=_bool(config, "MAGIC_LINK_CONFIRM"),
        resend_interval=_int(config, "RESEND_INTERVAL", 0),
        emails_per_hour=_int(config, "EMAILS_PER_HOUR", 1),
        ip_requests_per_hour=_int(config, "IP_REQUESTS_PER_HOUR", 1),
        allow_signup=_bool(config, "ALLOW_SIGNUP"),
        login_redirect=_str(config, "LOGIN_REDIRECT"),
        allowed_redirect_hosts=tuple(h.lower() for h in hosts),
        otp_subject=_str(config, "OTP_SUBJECT"),
        magic_link_subject=_str(config, "MAGIC_LINK_SUBJECT"),
        otp_template=_template(config, "OTP_TEMPLATE"),
        magic_link_template=_template(config, "MAGIC_LINK_TEMPLATE"),
        delivery=delivery,
        flows=flows,
        dev_outbox=bool(dev_outbox),
        base_url=canonical_url(config, debug=debug, testing=testing),
        app_name=_str(config, "APP_NAME", optional=True),
        flow_emails_per_hour=_int(config, "FLOW_EMAILS_PER_HOUR", 1),
        flow_ip_requests_per_hour=_int(config, "FLOW_IP_REQUESTS_PER_HOUR", 1),
    )


def canonical_url(config: Mapping[str, Any], *, debug: bool, testing: bool) -> str | None:
    """The app's public URL: ``BASE_URL``, else ``PREFERRED_URL_SCHEME://SERVER_NAME`` (with
    ``APPLICATION_ROOT``), else ``None`` in debug or testing (the request's host serves).
    Outside debug and testing a missing one is an error: the ``Host`` header is the
    client's to choose, and a link built from it goes wherever an attacker says."""
    value = config[key("BASE_URL")]
    if value is None:
        server_name = config.get("SERVER_NAME")
        if not server_name:
            if debug or testing:
                return None
            raise _fail(
                "BASE_URL",
                "is not set: set it to the app's public URL, such as "
                "'https://app.acme.example' (or set SERVER_NAME). Sign-in links are built "
                "from it; without it they would follow the Host header of each request, "
                "which anyone can forge.",
            )
        scheme = config.get("PREFERRED_URL_SCHEME") or "http"
        root = (config.get("APPLICATION_ROOT") or "/").rstrip("/")
        value = f"{scheme}://{server_name}{root}"
    elif not isinstance(value, str):
        raise _fail(
            "BASE_URL", f"must be a URL such as 'https://app.acme.example', not {value!r}."
        )
    parts = urlsplit(value.strip())
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = parts._replace(scheme="")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or has_unsafe_chars(value)
    ):
        raise _fail(
            "BASE_URL",
            f"must be an http(s) URL with a host and at most a path, such as "
            f"'https://app.acme.example' or 'https://acme.example/app'; it is {value!r}.",
        )
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def has_unsafe_chars(value: str) -> bool:
    """Whitespace, control characters or backslashes: never in a canonical URL."""
    return any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in value)
