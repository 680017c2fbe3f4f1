"""Languages: the gettext catalogs shipped in the package (and an app's own, which win), the
locale of a request (the app's Flask-Babel locale selector when it has Flask-Babel, else the
``Accept-Language`` header) and the translation functions pages, emails and errors use.

Messages are marked for ``pybabel extract``: ``N_`` in Python where the text is translated
later (class attributes, defaults), ``gettext``/``ngettext`` where it is translated at once,
and ``_pa``/``_pa_n`` in templates. The templates' functions have names of their own, so an
app's base template keeps its own ``_`` (Flask-Babel's, in the app's domain) untouched.

Flask is imported only where a request or an app is asked about, so the connector and the
stores (whose errors are translatable) still load no Flask.
"""

from __future__ import annotations

import gettext as stdlib_gettext
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import escape

#: The gettext domain of the package's catalogs (``<dir>/<locale>/LC_MESSAGES/<domain>.mo``).
DOMAIN = "flask_postmark_auth"
#: Where the package's catalogs are.
PACKAGE_TRANSLATIONS = Path(__file__).resolve().parent / "translations"
#: The language of the messages in the source, and of every request no catalog suits.
DEFAULT_LOCALE = "en"
#: Languages written right to left (primary subtags).
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "ks", "ps", "sd", "ug", "ur", "yi"}
)
#: Where an app's catalogs are found once ``init_app`` ran.
EXTENSION_KEY = "postmark_auth_i18n"
_REQUEST_LOCALE = "_postmark_auth_locale"

log = logging.getLogger("flask_postmark_auth")


def N_(message: str) -> str:  # noqa: N802  (gettext's own name for "mark, translate later")
    """Mark ``message`` for the catalogs; it is translated where it is shown."""
    return message


def language(locale: str) -> str:
    """The primary subtag: ``"pt"`` for ``"pt_BR"``."""
    return locale.replace("-", "_").split("_", 1)[0].lower()


def text_direction(locale: str) -> str:
    """``"rtl"`` or ``"ltr"``, for ``dir=`` in pages and emails."""
    return "rtl" if language(locale) in RTL_LANGUAGES else "ltr"


def language_tag(locale: str) -> str:
    """The BCP 47 tag of a gettext locale name, for ``lang=``: ``"pt-BR"`` for ``"pt_BR"``."""
    return locale.replace("_", "-")


class Catalogs:
    """The catalogs of one app: its own directories first (a message there wins), the
    package's last; each locale's chain of translations is read once."""

    def __init__(self, directories: Iterable[str | Path] = ()) -> None:
        self.directories = [Path(d) for d in directories] + [PACKAGE_TRANSLATIONS]
        found = {DEFAULT_LOCALE}
        for directory in self.directories:
            found.update(mo.parents[1].name for mo in directory.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
        #: Every locale some catalog covers, ``DEFAULT_LOCALE`` included.
        self.locales: tuple[str, ...] = tuple(sorted(found))
        self._chains: dict[str, stdlib_gettext.NullTranslations] = {}

    def translations(self, locale: str) -> stdlib_gettext.NullTranslations:
        """The translations of ``locale`` (``de_AT`` falls back to ``de``, then to the
        source text)."""
        chain = self._chains.get(locale)
        if chain is None:
            chain = stdlib_gettext.NullTranslations()
            names = [locale] if "_" not in locale else [locale, language(locale)]
            for directory in reversed(self.directories):  # the package's first: the fallback
                for name in reversed(names):
                    mo = directory / name / "LC_MESSAGES" / f"{DOMAIN}.mo"
                    if mo.is_file():
                        with mo.open("rb") as fp:
                            found = stdlib_gettext.GNUTranslations(fp)
                        found.add_fallback(chain)
                        chain = found
            self._chains[locale] = chain
        return chain

    def gettext(self, message: str, locale: str, /, **params: Any) -> str:
        """``message`` in ``locale``, ``%(name)s`` filled from ``params`` when there are
        any."""
        return fill(self.translations(locale).gettext(message), message, params)

    def ngettext(self, singular: str, plural: str, num: int, locale: str, /, **params: Any) -> str:
        """The form of ``num`` in ``locale``, with ``%(num)d`` and ``params`` filled."""
        text = self.translations(locale).ngettext(singular, plural, num)
        return fill(text, singular if num == 1 else plural, {"num": num, **params})

    def template_functions(self, locale: str, html: bool) -> dict[str, Callable[..., str]]:
        """``_pa`` and ``_pa_n`` for a template rendered in ``locale``. For HTML, what they
        return is markup: the translation escaped, and each parameter escaped unless it is
        markup already (``Markup("<strong>%s</strong>") % email``), so a catalog can never
        inject HTML and a message can still emphasize a word."""
        translations = self.translations(locale)

        def _pa(message: str, /, **params: Any) -> str:
            return fill(translations.gettext(message), message, params, html)

        def _pa_n(singular: str, plural: str, num: int, /, **params: Any) -> str:
            text = translations.ngettext(singular, plural, num)
            source = singular if num == 1 else plural
            return fill(text, source, {"num": num, **params}, html)

        return {"_pa": _pa, "_pa_n": _pa_n}

    def best(self, wanted: str | None) -> str:
        """The locale a catalog has for ``wanted`` (``de_AT`` -> ``de``, ``pt`` ->
        ``pt_BR``), else ``DEFAULT_LOCALE``."""
        return self.negotiate([wanted] if wanted else [])

    def negotiate(self, wanted: Sequence[str]) -> str:
        """The first of ``wanted`` (most preferred first, ``-`` or ``_`` separated) that a
        catalog has exactly or by its language; else ``DEFAULT_LOCALE``."""
        exact = {name.lower(): name for name in self.locales}
        by_language: dict[str, str] = {}
        for name in self.locales:  # "pt" -> "pt_BR": the first of that language
            by_language.setdefault(language(name), name)
            if "_" not in name:
                by_language[name.lower()] = name
        for item in wanted:
            tag = item.replace("-", "_").lower()
            if tag in exact:
                return exact[tag]
            if language(tag) in by_language:
                return by_language[language(tag)]
        return DEFAULT_LOCALE


def fill(text: str, source: str, params: Mapping[str, Any], html: bool = False) -> str:
    """``text`` (a translation of ``source``) with its ``%(name)s`` filled from ``params``;
    as markup for ``html``, everything escaped but markup parameters. A translation whose
    placeholders do not fit (a broken catalog of the app's) gives way to the source text,
    with a warning, rather than failing the page or the email."""
    if html:
        text, source = escape(text), escape(source)
    if not params:
        return text
    try:
        return text % dict(params)
    except (KeyError, ValueError, TypeError):
        log.warning("a translation of %r does not fit its placeholders: using the source", source)
        return source % dict(params)


_PACKAGE_ONLY = Catalogs()


def catalogs() -> Catalogs:
    """The current app's catalogs (the package's alone outside an app set up with the
    extension)."""
    from flask import current_app, has_app_context

    if has_app_context():
        found = current_app.extensions.get(EXTENSION_KEY)
        if isinstance(found, Catalogs):
            return found
    return _PACKAGE_ONLY


def current_locale() -> str:
    """The locale of the current request: what the app's Flask-Babel locale selector picks
    when the app has Flask-Babel, else the best match for ``Accept-Language``; each taken to
    the nearest locale a catalog has. ``DEFAULT_LOCALE`` outside a request."""
    from flask import current_app, g, has_request_context, request

    if not has_request_context():
        return DEFAULT_LOCALE
    cached = g.get(_REQUEST_LOCALE)
    if isinstance(cached, str):
        return cached
    known = catalogs()
    if "babel" in current_app.extensions:
        from flask_babel import get_locale

        chosen = get_locale()
        locale = known.best(str(chosen) if chosen is not None else None)
    else:
        accepted = sorted(request.accept_languages, key=lambda item: -item[1])
        locale = known.negotiate([value for value, quality in accepted if quality > 0])
    setattr(g, _REQUEST_LOCALE, locale)
    return locale


def use_locale(locale: str) -> None:
    """Answer the rest of the current request in ``locale``, whatever it asked for."""
    from flask import g

    setattr(g, _REQUEST_LOCALE, locale)


def gettext(message: str, /, **params: Any) -> str:
    """``message`` in the request's language, ``%(name)s`` filled from ``params`` when
    there are any."""
    return catalogs().gettext(message, current_locale(), **params)


def ngettext(singular: str, plural: str, num: int, /, **params: Any) -> str:
    """The form of ``num`` in the request's language, ``%(num)d`` and ``params`` filled."""
    return catalogs().ngettext(singular, plural, num, current_locale(), **params)


def template_functions(locale: str, html: bool) -> dict[str, Callable[..., str]]:
    """``_pa`` and ``_pa_n`` in ``locale``, from the current app's catalogs."""
    return catalogs().template_functions(locale, html)


def locale_context(locale: str) -> dict[str, str]:
    """What a page or an email needs to say which language it is in."""
    return {"locale": locale, "lang": language_tag(locale), "dir": text_direction(locale)}
