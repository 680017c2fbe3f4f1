"""Sign-in mail: the context an email renders from, the app's name in it, and the message
itself (local Jinja templates, or a Postmark template with the context as its model).

The context is computed here, in Python, to the last word the templates show (the expiry in
words, the requesting device), so an app that overrides ``layout.html`` loses nothing.
Subjects are test-rendered at ``init_app`` with that context and strict undefined variables:
a subject that names a missing variable fails there, not on every sign-in.
"""

from __future__ import annotations

import logging
import re
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, has_request_context, request
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .connector import PostmarkConnector
from .errors import ConfigurationError
from .i18n import DEFAULT_LOCALE, Catalogs, current_locale, locale_context
from .i18n import EXTENSION_KEY as I18N_KEY
from .settings import DEFAULTS, Settings, key

log = logging.getLogger("flask_postmark_auth")

#: The two methods and how each names itself in keys, tags and signals.
OTP = "otp"
MAGIC_LINK = "magic_link"
TAGS = {OTP: "otp", MAGIC_LINK: "magic-link"}
#: How each method's email is named in messages about its settings.
_KINDS = {OTP: "code", MAGIC_LINK: "link"}

#: Browsers and systems named in the requester line, tried in order (Edge and Opera also
#: say "Chrome", Chrome also says "Safari", Android also says "Linux"). Only these fixed
#: names reach an email, never text of the header itself.
_BROWSERS = tuple(
    (re.compile(pattern), name)
    for pattern, name in (
        (r"\bEdg(e|A|iOS)?/", "Edge"),
        (r"\bOPR/|\bOpera\b", "Opera"),
        (r"\bSamsungBrowser/", "Samsung Internet"),
        (r"\bFirefox/|\bFxiOS/", "Firefox"),
        (r"\bChrome/|\bCriOS/", "Chrome"),
        (r"\bVersion/[\d.]+.*\bSafari/", "Safari"),
    )
)
_SYSTEMS = tuple(
    (re.compile(pattern), name)
    for pattern, name in (
        (r"\bWindows\b", "Windows"),
        (r"\biPad\b", "iPadOS"),
        (r"\biPhone\b|\biPod\b", "iOS"),
        (r"\bAndroid\b", "Android"),
        (r"\bCrOS\b", "ChromeOS"),
        (r"\bMacintosh\b|\bMac OS X\b", "macOS"),
        (r"\bLinux\b", "Linux"),
    )
)
#: The browser of the sample context subjects are test-rendered with.
_SAMPLE_USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Firefox/128.0"
#: Longest part of a User-Agent header read; real ones are a few hundred characters.
_MAX_USER_AGENT = 512


def browser_and_system(user_agent: str | None) -> tuple[str | None, str | None]:
    """The names of the browser and of the operating system a ``User-Agent`` header
    gives (``None`` each when not recognized)."""
    agent = (user_agent or "")[:_MAX_USER_AGENT]
    browser = next((name for pattern, name in _BROWSERS if pattern.search(agent)), None)
    system = next((name for pattern, name in _SYSTEMS if pattern.search(agent)), None)
    return browser, system


def requester_words(
    browser: str | None,
    system: str | None,
    ip: str | None,
    locale: str,
    catalogs: Catalogs,
) -> str | None:
    """Who asked, for the requester line: ``"Firefox on Windows, IP address 203.0.113.7"``,
    or the parts of it that are known, or ``None``; in ``locale``, from ``catalogs``."""
    if browser and system:
        device = catalogs.gettext(
            "%(browser)s on %(system)s", locale, browser=browser, system=system
        )
    else:
        device = browser or system or ""
    address = catalogs.gettext("IP address %(ip)s", locale, ip=ip) if ip else ""
    if device and address:
        return catalogs.gettext("%(device)s, %(address)s", locale, device=device, address=address)
    return device or address or None


class SignInMail:
    """Composes the sign-in emails of one app; subjects are compiled and test-rendered
    once, here."""

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
        found = app.extensions.get(I18N_KEY)
        self.catalogs = found if isinstance(found, Catalogs) else Catalogs()
        self._sandbox = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
        #: Each method's subject source (its catalogs translate it, so the default subject
        #: speaks every shipped language and an app's catalog can translate its own).
        self._subject_sources: dict[str, tuple[str, str]] = {}
        self._subjects: dict[tuple[str, str], Template] = {}
        for method, name, source in (
            (OTP, "OTP_SUBJECT", settings.otp_subject),
            (MAGIC_LINK, "MAGIC_LINK_SUBJECT", settings.magic_link_subject),
        ):
            if self.template(method) is not None:
                if source != DEFAULTS[name]:
                    log.warning(
                        "%s is ignored: %s is set, and a Postmark template owns its "
                        "subject (set the subject in the template)",
                        key(name),
                        key(f"{method.upper()}_TEMPLATE"),
                    )
                continue
            self._subject_sources[method] = (name, source)
            for locale in self.catalogs.locales:
                self._check_subject(method, locale)

    def subject(self, method: str, locale: str) -> Template:
        """The compiled subject of ``method`` in ``locale``."""
        compiled = self._subjects.get((method, locale))
        if compiled is None:
            name, source = self._subject_sources[method]
            translated = self.catalogs.translations(locale).gettext(source)
            where = key(name) if translated == source else f"{key(name)} ({locale} catalog)"
            try:
                compiled = self._sandbox.from_string(translated)
            except TemplateSyntaxError as exc:
                raise ConfigurationError(f"{where}: {exc.message}; fix the Jinja.") from exc
            self._subjects[(method, locale)] = compiled
        return compiled

    def _check_subject(self, method: str, locale: str) -> None:
        """Render the subject of ``method`` in ``locale`` with a sample of the context every
        email of it gets: a missing variable or a line break fails ``init_app``, naming the
        key (and the catalog, for a translation)."""
        settings = self.settings
        name = self._subject_sources[method][0]
        template = self.subject(method, locale)
        ttl = settings.otp_ttl if method == OTP else settings.magic_link_ttl
        sample = self.context(
            method, "ann@example.com", "203.0.113.7", "localhost", ttl, _SAMPLE_USER_AGENT
        )
        sample["locale"] = locale
        if method == OTP:
            sample["code"] = "0" * settings.otp_length
        else:
            base = settings.base_url or "http://localhost"
            sample["link"] = f"{base}{settings.url_prefix.rstrip('/')}/magic-link/sample"
        model = self.model(sample)
        where = key(name) if locale == DEFAULT_LOCALE else f"{key(name)} ({locale})"
        try:
            subject = template.render(
                model, **self.catalogs.template_functions(locale, html=False)
            ).strip()
        except TemplateError as exc:
            raise ConfigurationError(
                f"{where} cannot be rendered: {exc.message or exc}. A {_KINDS[method]} "
                f"email's subject may use {', '.join(sorted(model))}."
            ) from exc
        except Exception as exc:
            raise ConfigurationError(
                f"{where} cannot be rendered: {type(exc).__name__}: {exc}."
            ) from exc
        if "\n" in subject or "\r" in subject:
            raise ConfigurationError(f"{where} renders a line break; keep it on one line.")

    def connector(self, method: str) -> str:
        """The name of the connector ``method`` sends with."""
        settings = self.settings
        return settings.otp_connector if method == OTP else settings.magic_link_connector

    def template(self, method: str) -> str | int | None:
        """The Postmark template ``method`` sends with, if any."""
        settings = self.settings
        return settings.otp_template if method == OTP else settings.magic_link_template

    def context(
        self,
        method: str,
        address: str,
        ip: str | None,
        host: str,
        ttl: int,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        """What the email of ``method`` to ``address`` renders from (its secret aside), taken
        at the request: ``ip`` as Flask sees it (behind a proxy, only with ProxyFix is it the
        client's) and the browser and system named by ``user_agent`` (by default the current
        request's header)."""
        if user_agent is None and has_request_context():
            user_agent = request.headers.get("User-Agent")
        browser, system = browser_and_system(user_agent)
        return {
            "locale": current_locale(),
            "email": address,
            "expires_in_minutes": max(1, ttl // 60),
            "request_ip": ip,
            "app_name": self.app_name(method, host),
            "browser_name": browser,
            "operating_system": system,
        }

    def model(self, context: dict[str, Any]) -> dict[str, Any]:
        """The context plus everything that follows from it: the words the templates show
        and the names Postmark's own templates use (``product_name``, ``action_url``,
        ``support_url``, ...). A context queued by an earlier version gets them too."""
        minutes = int(context.get("expires_in_minutes") or 1)
        locale = self.locale_of(context)
        language = locale_context(locale)
        derived: dict[str, Any] = {
            **language,
            "text_align": "right" if language["dir"] == "rtl" else "left",
            "expires_in_text": self.catalogs.ngettext(
                "%(num)d minute", "%(num)d minutes", minutes, locale
            ),
            "requested_from": requester_words(
                context.get("browser_name"),
                context.get("operating_system"),
                context.get("request_ip"),
                locale,
                self.catalogs,
            ),
            "browser_name": None,
            "operating_system": None,
            "product_name": context.get("app_name"),
            "product_url": self.settings.base_url,
            "support_url": self.settings.support_url or self.settings.base_url,
        }
        if "link" in context:
            derived["action_url"] = context["link"]
        return {**derived, **context, "locale": locale}

    def locale_of(self, context: dict[str, Any]) -> str:
        """The locale an email is written in: its context's (the request's that asked for
        it, carried to a background thread or a task queue), if a catalog has it."""
        wanted = context.get("locale")
        return self.catalogs.best(wanted) if isinstance(wanted, str) else DEFAULT_LOCALE

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
        model = self.model(context)
        template = self.template(method)
        options: dict[str, Any] = {
            "to": model["email"],
            "tag": TAGS[method],
            "track_opens": False,
            "track_links": "None",
        }
        if template is not None:
            options.update(template=template, model=model)
        else:
            locale = model["locale"]
            text = self.catalogs.template_functions(locale, html=False)
            options.update(
                subject=self.subject(method, locale).render(model, **text).strip(),
                text_body=self._render(f"{method}.txt", {**model, **text}),
                html_body=self._render(
                    f"{method}.html",
                    {**model, **self.catalogs.template_functions(locale, html=True)},
                ),
            )
        return options

    def _render(self, name: str, context: dict[str, Any]) -> str:
        """Render an email template (the app's own file of that name wins) with exactly the
        documented context and ``_pa``/``_pa_n``: no request context processors, so it costs
        little."""
        return self.app.jinja_env.get_template(f"postmark_auth/email/{name}").render(context)
