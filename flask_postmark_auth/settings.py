"""Every configuration key in one table: each field of :class:`Settings` is one
``POSTMARK_AUTH_*`` key, with its default, its check and its doc line, so a new key is
written once.

Keys are read once, at ``init_app``, into a frozen :class:`Settings`; a wrong value fails
there with a message that names the key and the fix. ``STORE``, ``DEV_OUTBOX`` and
``DELIVERY`` default to ``None`` and are resolved there (and written back to
``app.config``, so it shows what is in use).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from . import config_checks as c
from .config_checks import METHODS, PREFIX, Env, key, refuse_unknown_keys
from .errors import ConfigurationError
from .i18n import N_

__all__ = [
    "DEFAULTS",
    "DEV_OUTBOX_FROM",
    "METHODS",
    "PREFIX",
    "RESOLVED",
    "TRIGGERS",
    "Settings",
    "key",
    "load",
    "refuse_unknown_keys",
]

#: Events a flow can be triggered by.
TRIGGERS = ("signed_in", "signed_up")
#: No Server API Token until the app gives one.
NO_TOKEN = None
#: Default From address of the dev outbox when no real connector is configured.
DEV_OUTBOX_FROM = "Dev outbox <sign-in@example.com>"

Method = Literal["otp", "magic_link"]
DeliveryMode = Literal["sync", "background"] | Callable[..., Any]


def setting(default: Any, check: c.Check, doc: str) -> Any:
    """One row of the table: a field of :class:`Settings`."""
    return field(metadata={"default": default, "check": check, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """The extension's configuration for one app, checked and frozen at ``init_app``."""

    server_token: str | None = setting(
        NO_TOKEN, c.server_token, "Server API Token of the connector `default`"
    )
    from_email: str | None = setting(
        None, c.optional_text, 'its From address (`"Name <addr>"` allowed)'
    )
    message_stream: str = setting("outbound", c.text, "its Message Stream ID")
    connectors: Mapping[str, Any] = setting(
        {}, c.mapping("connector name to settings"), "more connectors: name -> dict or connector"
    )
    api_url: str = setting(
        "https://api.postmarkapp.com", c.text, "base URL for every connector built from config"
    )
    otp_connector: str = setting("default", c.text, "the connector codes are sent with")
    magic_link_connector: str = setting("default", c.text, "the connector links are sent with")
    methods: tuple[Method, ...] = setting(["otp", "magic_link"], c.methods, "enabled methods")
    url_prefix: str = setting("/auth", c.url_prefix, "where the blueprint is mounted")
    store: str = setting(
        None, c.store, "store URI; None: SQLite in the instance folder (memory:// in testing)"
    )
    otp_length: int = setting(6, c.whole(6, 10), "digits of a code")
    otp_ttl: int = setting(600, c.whole(30), "seconds a code lives")
    otp_max_attempts: int = setting(5, c.whole(1, 100), "wrong guesses before a code is void")
    magic_link_ttl: int = setting(900, c.whole(30), "seconds a link lives")
    magic_link_confirm: bool = setting(
        True, c.flag, "GET shows a confirm button and changes nothing; POST signs in"
    )
    resend_interval: int = setting(
        30, c.whole(0), "seconds between two emails of one method to one mailbox"
    )
    emails_per_hour: int = setting(10, c.whole(1), "sign-in emails to one mailbox per hour")
    ip_requests_per_hour: int = setting(
        100, c.whole(1), "sign-in POSTs from one client IP (IPv6: /64) per hour"
    )
    allow_signup: bool = setting(True, c.flag, "unknown addresses get an account")
    login_redirect: str = setting("/", c.text, "where to go after sign-in without a safe next")
    allowed_redirect_hosts: tuple[str, ...] = setting([], c.hosts, "other hosts next may name")
    otp_subject: str = setting(
        N_("Your sign-in code for {{ app_name }}"), c.text, "subject of code emails (Jinja)"
    )
    magic_link_subject: str = setting(
        N_("Your sign-in link for {{ app_name }}"), c.text, "subject of link emails (Jinja)"
    )
    otp_template: str | int | None = setting(
        None, c.template_ref, "a Postmark template alias or id for code emails"
    )
    magic_link_template: str | int | None = setting(
        None, c.template_ref, "a Postmark template alias or id for link emails"
    )
    support_url: str | None = setting(
        None, c.optional_text, "a help page (or mailto:) for emails' support_url; None: BASE_URL"
    )
    delivery: DeliveryMode = setting(
        None, c.delivery, "sync, background or a callable; None: background (sync in testing)"
    )
    flows: Mapping[str, Any] = setting({}, c.mapping("flow name to flow"), "flows")
    dev_outbox: bool = setting(
        None, c.dev_outbox, "record mail instead of sending; None: on in debug/testing, no token"
    )
    #: The canonical URL (``scheme://host[/path]``, no trailing slash) links and ``next``
    #: come from; ``None`` only in debug or testing, where the request's host serves.
    base_url: str | None = setting(
        None, c.base_url, "the app's public URL; None: from SERVER_NAME"
    )
    app_name: str | None = setting(None, c.optional_text, "how emails name the app")
    base_template: str = setting(
        "postmark_auth/base.html",
        c.text,
        "the template every sign-in page extends (blocks title, head and content)",
    )
    translation_directories: tuple[str, ...] = setting(
        [],
        c.directories,
        "the app's catalogs of the flask_postmark_auth domain (relative to app.root_path); "
        "their messages and locales win over the package's",
    )
    flow_emails_per_hour: int = setting(
        5, c.whole(1), "messages of one flow to one recipient per hour, run from a request"
    )
    flow_ip_requests_per_hour: int = setting(
        20, c.whole(1), "runs of one flow from one client IP per hour"
    )


#: Key (without the prefix) -> default, from the table.
DEFAULTS: dict[str, Any] = {f.name.upper(): f.metadata["default"] for f in fields(Settings)}
#: Keys ``init_app`` resolves and writes back to ``app.config``.
RESOLVED = ("STORE", "DEV_OUTBOX", "DELIVERY")


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
    """Check every key, in the table's order, and return the frozen settings."""
    check_unknown_keys(config)
    env = Env(config, debug=debug, testing=testing)
    values = {}
    for row in fields(Settings):
        name = row.name.upper()
        values[row.name] = row.metadata["check"](name, config[key(name)], env)
    return Settings(**values)
