"""Sign-in mail: the context an email renders from, the app's name in it, and the message
itself (local Jinja templates, or a Postmark template with the context as its model)."""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from jinja2 import Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .connector import PostmarkConnector
from .errors import ConfigurationError
from .settings import Settings, key

#: The two methods and how each names itself in keys, tags and signals.
OTP = "otp"
MAGIC_LINK = "magic_link"
TAGS = {OTP: "otp", MAGIC_LINK: "magic-link"}


class SignInMail:
    """Composes the sign-in emails of one app; subjects are compiled once, here."""

    def __init__(
        self, app: Flask, settings: Settings, connectors: dict[str, PostmarkConnector]
    ) -> None:
        self.app = app
        self.settings = settings
        self._canonical = urlsplit(settings.base_url) if settings.base_url else None
        self._display_names = {
            method: parseaddr(connectors[self.connector(method)].from_email)[0].strip()
            for method in TAGS
        }
        subjects = ImmutableSandboxedEnvironment(autoescape=False)
        self._subjects: dict[str, Template] = {}
        for method, name, source in (
            (OTP, "OTP_SUBJECT", settings.otp_subject),
            (MAGIC_LINK, "MAGIC_LINK_SUBJECT", settings.magic_link_subject),
        ):
            try:
                self._subjects[method] = subjects.from_string(source)
            except TemplateSyntaxError as exc:
                raise ConfigurationError(f"{key(name)}: {exc.message}; fix the Jinja.") from exc

    def connector(self, method: str) -> str:
        """The name of the connector ``method`` sends with."""
        settings = self.settings
        return settings.otp_connector if method == OTP else settings.magic_link_connector

    def context(
        self, method: str, address: str, ip: str | None, host: str, ttl: int
    ) -> dict[str, Any]:
        """What the email of ``method`` to ``address`` renders from (its secret aside)."""
        return {
            "email": address,
            "expires_in_minutes": max(1, ttl // 60),
            "request_ip": ip,
            "app_name": self.app_name(method, host),
        }

    def app_name(self, method: str, host: str) -> str:
        """How emails name the app: ``APP_NAME``, else the display name of the From address
        of the method's connector, else the canonical host (never the request's ``host``,
        outside debug and testing)."""
        if self.settings.app_name:
            return self.settings.app_name
        if self._display_names[method]:
            return self._display_names[method]
        if self._canonical is not None:
            return self._canonical.hostname or self._canonical.netloc
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    def compose(self, method: str, context: dict[str, Any]) -> dict[str, Any]:
        """The message (keyword arguments of ``send`` or ``send_template``) from its
        context."""
        settings = self.settings
        template = settings.otp_template if method == OTP else settings.magic_link_template
        options: dict[str, Any] = {
            "to": context["email"],
            "tag": TAGS[method],
            "track_opens": False,
            "track_links": "None",
        }
        if template is not None:
            options.update(template=template, model=context)
        else:
            options.update(
                subject=self._subjects[method].render(context).strip(),
                text_body=self._render(f"{method}.txt", context),
                html_body=self._render(f"{method}.html", context),
            )
        return options

    def _render(self, name: str, context: dict[str, Any]) -> str:
        """Render an email template (the app's own file of that name wins) with exactly the
        documented context: no request context processors, so it costs little."""
        return self.app.jinja_env.get_template(f"postmark_auth/email/{name}").render(context)
