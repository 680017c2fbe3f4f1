"""Languages (SPEC section 14): the seven shipped catalogs match the source, every page and
email of a sign-in is in the reader's language with no English left (checked against the
catalog), Arabic reads right to left, the locale comes from Flask-Babel when the app has it,
else from ``Accept-Language``, and a background or queued email keeps the requester's."""

from __future__ import annotations

import gettext as stdlib_gettext
import html
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from flask import Flask
from flask.testing import FlaskClient
from flask_login import login_required

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.errors import ConfigurationError
from flask_postmark_auth.i18n import Catalogs, text_direction
from flask_postmark_auth.testing import (
    FakeClock,
    RecordedMessage,
    code_in,
    link_in,
    record_messages,
)
from support import catalogs as source
from tests.helpers import AppFactory

ANN = "ann@example.com"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
#: Each shipped locale and the Accept-Language a browser of its speakers sends.
BROWSERS = {
    "de": "de-DE,de;q=0.9,en;q=0.5",
    "fr": "fr-FR,fr;q=0.9",
    "es": "es-ES,es;q=0.9,en;q=0.3",
    "pt_BR": "pt-BR,pt;q=0.9,en-US;q=0.8",
    "ja": "ja,en-US;q=0.7",
    "ar": "ar-EG,ar;q=0.9",
}
_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\{ *\w+ *\}\}")
_SHOWN_ATTRIBUTES = re.compile(r'\s(?:title|aria-label|placeholder|data-[\w-]+)="([^"]*)"')


# -- the catalogs --------------------------------------------------------------------------


@pytest.mark.parametrize("locale", source.LOCALES)
def test_the_catalog_has_every_message_of_the_source_and_no_other(locale: str) -> None:
    assert list(source.problems(locale)) == []


def test_the_completeness_check_finds_a_missing_a_stale_and_a_broken_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check itself fails on a catalog that has drifted from the source."""
    copy = tmp_path / "translations"
    shutil.copytree(source.TRANSLATIONS, copy)
    monkeypatch.setattr(source, "TRANSLATIONS", copy)
    catalog = source.read("de")
    del catalog["Keep me signed in"]
    catalog.add("Log in with your password", "Mit Passwort anmelden")
    catalog["Switch to %(email)s"].string = "Wechseln"  # the address is gone
    catalog["Sign out"].string = ""
    source.write(source.po_path("de"), catalog)
    found = "\n".join(source.problems("de"))
    assert "missing 'Keep me signed in'" in found
    assert "no longer in the source 'Log in with your password'" in found
    assert "'Switch to %(email)s' has placeholders" in found
    assert "untranslated 'Sign out'" in found


@pytest.mark.parametrize("locale", source.LOCALES)
def test_the_compiled_catalog_says_what_its_source_says(locale: str) -> None:
    """The .mo files gettext reads are compiled from the .po files as they are now."""
    translations = Catalogs().translations(locale)
    for message in source.read(locale):
        if not message.id:
            continue
        ids, strings = source.ids(message), source.strings(message)
        if len(ids) > 1:
            for n in (1, 2, 5, 11, 100):
                got = translations.ngettext(ids[0], ids[1], n)
                assert got == strings[catalog_form(locale, n)]
        else:
            assert translations.gettext(ids[0]) == strings[0]


def catalog_form(locale: str, n: int) -> int:
    return int(stdlib_gettext.c2py(source.read(locale).plural_expr)(n))


# -- the whole sign-in in each language ----------------------------------------------------


def shown_text(page: str) -> str:
    """What a person sees or hears of an HTML page or email: its text, and the attributes
    that reach the screen or a screen reader (titles, labels, the script's messages)."""
    attributes = " ".join(_SHOWN_ATTRIBUTES.findall(page))
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    body = re.sub(r"<!--.*?-->", " ", body, flags=re.S)
    body = re.sub(r"<[^>]+>", " ", body)
    return html.unescape(f"{body} {attributes}")


def english_left(text: str, locale: str) -> list[str]:
    """Pieces of English messages (two words or more, between placeholders) found in
    ``text``, of every message the catalog of ``locale`` says differently."""
    left = []
    for message in source.read(locale):
        if not message.id:
            continue
        strings = source.strings(message)
        for msgid in source.ids(message):
            for piece in _PLACEHOLDER.split(msgid):
                piece = piece.strip(" .,:;?()")
                if (
                    piece.count(" ") >= 1
                    and piece in text
                    and all(piece not in s for s in strings)
                ):
                    left.append(piece)
    return left


def say(locale: str, msgid: str) -> str:
    translated = Catalogs().translations(locale).gettext(msgid)
    assert translated != msgid or locale == "en"
    return translated


def subject(locale: str, method: str) -> str:
    """The default subject of ``method``'s email in ``locale``, for an app named Acme."""
    source = f"Your sign-in {'code' if method == 'otp' else 'link'} for {{{{ app_name }}}}"
    return say(locale, source).replace("{{ app_name }}", "Acme")


def ask_code(client: FlaskClient, language: str) -> str:
    """The page a browser speaking ``language`` gets after asking for a code."""
    page = client.post(
        "/auth/otp",
        data={"email": ANN},
        headers={"Accept-Language": language},
        follow_redirects=True,
    )
    return page.get_data(as_text=True)


def check_page(page: str, locale: str, *expected: str) -> None:
    lang = locale.replace("_", "-")
    assert f'<html lang="{lang}" dir="{text_direction(locale)}">' in page
    text = shown_text(page)
    assert english_left(text, locale) == []
    for msgid in expected:
        assert say(locale, msgid) in html.unescape(page)


def check_email(message: RecordedMessage, locale: str, *expected: str) -> None:
    assert message.html_body is not None
    assert message.text_body is not None
    lang = locale.replace("_", "-")
    direction = text_direction(locale)
    assert f'<html lang="{lang}" dir="{direction}">' in message.html_body
    assert f'<body class="pa-page" dir="{direction}"' in message.html_body
    if direction == "rtl":
        assert "text-align:right" in message.html_body
        assert "text-align:left" not in message.html_body
    for part in (message.subject or "", message.text_body, shown_text(message.html_body)):
        assert english_left(part, locale) == []
    unescaped = html.unescape(message.html_body)
    for msgid in expected:
        assert say(locale, msgid) in message.text_body + unescaped


@pytest.fixture
def browser_app(make_app: AppFactory) -> Flask:
    return make_app(RESEND_INTERVAL=0, APP_NAME="Acme")


@pytest.mark.parametrize("locale", sorted(BROWSERS))
def test_the_whole_sign_in_speaks_the_browser_s_language(browser_app: Flask, locale: str) -> None:
    app = browser_app
    headers = {"Accept-Language": BROWSERS[locale], "User-Agent": FIREFOX}
    laptop = app.test_client()
    laptop.environ_base.update(HTTP_ACCEPT_LANGUAGE=headers["Accept-Language"])
    laptop.environ_base.update(HTTP_USER_AGENT=FIREFOX)

    login = laptop.get("/auth/login").get_data(as_text=True)
    check_page(login, locale, "Sign in", "Email address", "Email me a code")

    with record_messages(app) as outbox:
        code_page = laptop.post("/auth/otp", data={"email": ANN}, follow_redirects=True).get_data(
            as_text=True
        )
        check_page(code_page, locale, "Enter your code", "Sign-in code", "Keep me signed in")
        wrong = laptop.post("/auth/otp/verify", data={"email": ANN, "code": "000000"})
        assert wrong.status_code == 400
        check_page(wrong.get_data(as_text=True), locale, "Send a new code")
        assert say(locale, "That code is not valid. Check it, or ask for a new one.") in (
            html.unescape(wrong.get_data(as_text=True))
        )
        [code_email] = outbox
        check_email(code_email, locale, "If you did not ask for this, you can ignore this email.")
        assert code_email.subject == subject(locale, "otp")
        assert code_in(code_email)
        outbox.clear()

        waiting = laptop.post("/auth/magic-link", data={"email": ANN}, follow_redirects=True)
        check_page(waiting.get_data(as_text=True), locale, "Check your email")
        [link_email] = outbox
    check_email(
        link_email,
        locale,
        "Don\u2019t forward this email: anyone with the link can sign in as you.",
    )
    assert link_email.subject == subject(locale, "magic_link")
    link = link_in(link_email)

    phone = app.test_client()
    phone.environ_base.update(HTTP_ACCEPT_LANGUAGE=headers["Accept-Language"])
    choice = phone.get(link).get_data(as_text=True)
    check_page(
        choice, locale, "Sign in where?", "Approve the other device", "Sign in on this device"
    )
    here = laptop.get(link).get_data(as_text=True)
    check_page(here, locale, "Press the button to finish signing in.")

    signed_in = laptop.post(link)
    assert signed_in.status_code == 303
    gone = phone.get(link)
    check_page(gone.get_data(as_text=True), locale, "Sign-in link not valid")


def test_the_english_check_finds_english(browser_app: Flask) -> None:
    """The check the tests above pass finds what an untranslated page shows."""
    english = browser_app.test_client().get("/auth/login").get_data(as_text=True)
    left = english_left(shown_text(english), "de")
    assert "Email me a code" in left
    assert (
        "Enter your email address and we\u2019ll email you a way to sign in. No password needed"
        in left
    )


def test_english_is_what_a_browser_gets_that_asks_for_none_the_package_has(
    browser_app: Flask,
) -> None:
    client = browser_app.test_client()
    page = client.get("/auth/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert '<html lang="en" dir="ltr">' in page.get_data(as_text=True)
    assert ">Email me a code<" in page.get_data(as_text=True)


def test_arabic_pages_and_emails_read_right_to_left(browser_app: Flask) -> None:
    client = browser_app.test_client()
    client.environ_base.update(HTTP_ACCEPT_LANGUAGE="ar")
    with record_messages(browser_app) as outbox:
        page = client.post(
            "/auth/magic-link", data={"email": ANN}, follow_redirects=True
        ).get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in page
    # The number stays left to right inside the right-to-left page; so does the link.
    assert re.search(r'id="link-number" class="number" dir="ltr"', page)
    assert 'dir="ltr" style="color:#1d4ed8;word-break:break-all;"' in (outbox[0].html_body or "")
    styles = client.get("/auth/login").get_data(as_text=True)
    assert "border-inline-start" in styles
    assert "border-left" not in styles


# -- where the locale comes from ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("de-AT,de;q=0.9", "de"),
        ("fr-CA, en;q=0.5", "fr"),  # French of Canada before English
        ("pt", "pt_BR"),
        ("pt-PT,pt;q=0.9", "pt_BR"),
        ("ja-JP;q=0.2, de;q=0.1", "ja"),  # by quality, not by which matches exactly
        ("PT-br", "pt_BR"),
        ("en-GB,de;q=0.8", "en"),
        ("zh-CN", "en"),
        ("*", "en"),
        ("", "en"),
        ("de;q=0, fr", "fr"),  # q=0: not acceptable
        ("xx-" + "a" * 5000, "en"),
    ],
)
def test_accept_language_picks_the_nearest_shipped_locale(
    browser_app: Flask, header: str, chosen: str
) -> None:
    page = browser_app.test_client().get("/auth/login", headers={"Accept-Language": header})
    assert f'lang="{chosen.replace("_", "-")}"' in page.get_data(as_text=True)


def test_the_app_s_flask_babel_locale_selector_wins(make_app: AppFactory) -> None:
    from flask_babel import Babel

    app = make_app(RESEND_INTERVAL=0, APP_NAME="Acme")
    Babel(app, locale_selector=lambda: "ja")
    client = app.test_client()
    with record_messages(app) as outbox:
        page = ask_code(client, "de")
    assert '<html lang="ja" dir="ltr">' in page
    assert outbox[0].subject == subject("ja", "otp")


def test_flask_babel_s_default_locale_and_a_regional_choice(make_app: AppFactory) -> None:
    from flask_babel import Babel

    app = make_app(config={"BABEL_DEFAULT_LOCALE": "fr_CA"})
    Babel(app)  # no selector: Flask-Babel's default locale, taken to the nearest catalog
    page = app.test_client().get("/auth/login", headers={"Accept-Language": "de"})
    assert '<html lang="fr" dir="ltr">' in page.get_data(as_text=True)


def test_the_app_s_own_underscore_is_left_to_the_app(make_app: AppFactory) -> None:
    """Pages render in the app's base template with ``_pa``: the base's own ``_`` stays
    Flask-Babel's (the app's domain), not the package's."""
    from flask_babel import Babel

    app = make_app(BASE_TEMPLATE="base.html")
    Babel(app, locale_selector=lambda: "de")
    app.jinja_loader = _DictLoader(
        {
            "base.html": "<html><nav>{{ _('Sign in') }}|{{ gettext('Sign out') }}</nav>"
            "{% block content %}{% endblock %}</html>"
        },
        app.jinja_loader,
    )
    page = app.test_client().get("/auth/login").get_data(as_text=True)
    assert "<nav>Sign in|Sign out</nav>" in page  # the app's catalogs (none): its English
    assert say("de", "Email me a code") in page  # the package's German


class _DictLoader:
    """A loader with some templates of its own, the app's loader for the rest."""

    def __new__(cls, mapping: dict[str, str], fallback: Any) -> Any:
        from jinja2 import ChoiceLoader, DictLoader

        return ChoiceLoader([DictLoader(mapping), fallback])


# -- what the app can change ----------------------------------------------------------------


def write_catalog(directory: Path, locale: str, messages: dict[str, Any]) -> None:
    """A compiled catalog of the package's domain in an app's translations directory."""
    catalog = Catalog(locale=locale, domain=source.DOMAIN)
    for msgid, string in messages.items():
        catalog.add(msgid, string)
    target = directory / locale / "LC_MESSAGES"
    target.mkdir(parents=True)
    with (target / f"{source.DOMAIN}.mo").open("wb") as out:
        write_mo(out, catalog)


def test_an_app_overrides_a_string_and_adds_a_locale(make_app: AppFactory, tmp_path: Path) -> None:
    write_catalog(tmp_path, "de", {"Email me a code": "Code per E-Mail anfordern"})
    write_catalog(
        tmp_path,
        "it",
        {
            "Sign in": "Accedi",
            "Your sign-in code for {{ app_name }}": "Il tuo codice di accesso a {{ app_name }}",
        },
    )
    app = make_app(TRANSLATION_DIRECTORIES=[str(tmp_path)], APP_NAME="Acme")
    client = app.test_client()
    german = client.get("/auth/login", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Code per E-Mail anfordern" in german  # the app's string wins
    assert say("de", "Email address") in german  # the package's German for the rest
    with record_messages(app) as outbox:
        client.get("/auth/login", headers={"Accept-Language": "it"})
        italian = ask_code(client, "it")
    assert 'lang="it"' in italian
    assert outbox[0].subject == "Il tuo codice di accesso a Acme"


def test_a_catalog_cannot_put_html_on_a_page(make_app: AppFactory, tmp_path: Path) -> None:
    write_catalog(tmp_path, "de", {"Email address": '<img src=x onerror="alert(1)">'})
    app = make_app(TRANSLATION_DIRECTORIES=[str(tmp_path)])
    page = app.test_client().get("/auth/login", headers={"Accept-Language": "de"})
    assert "<img" not in page.get_data(as_text=True)
    assert "&lt;img src=x" in page.get_data(as_text=True)


def test_a_translated_subject_that_breaks_fails_init_app(
    make_app: AppFactory, tmp_path: Path
) -> None:
    write_catalog(
        tmp_path, "de", {"Your sign-in code for {{ app_name }}": "Code für {{ user.name }}"}
    )
    with pytest.raises(ConfigurationError, match=r"POSTMARK_AUTH_OTP_SUBJECT \(de\)"):
        make_app(TRANSLATION_DIRECTORIES=[str(tmp_path)])


def test_a_translation_directory_that_is_not_one_fails_init_app(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="POSTMARK_AUTH_TRANSLATION_DIRECTORIES"):
        make_app(TRANSLATION_DIRECTORIES=["no-such-dir"])
    with pytest.raises(ConfigurationError, match="list of directories"):
        make_app(TRANSLATION_DIRECTORIES="translations")


def test_a_custom_subject_can_translate_itself(make_app: AppFactory) -> None:
    app = make_app(
        OTP_SUBJECT="{{ _pa('Sign in to %(app_name)s', app_name=app_name) }}", APP_NAME="Acme"
    )
    with record_messages(app) as outbox:
        app.test_client().post("/auth/otp", data={"email": ANN}, headers={"Accept-Language": "fr"})
    assert outbox[0].subject == say("fr", "Sign in to %(app_name)s") % {"app_name": "Acme"}


# -- messages outside pages ----------------------------------------------------------------


def test_json_errors_keep_their_code_and_speak_the_language(browser_app: Flask) -> None:
    client = browser_app.test_client()
    answer = client.post("/auth/otp", json={"email": "nope"}, headers={"Accept-Language": "es"})
    assert answer.status_code == 400
    assert answer.json == {
        "error": "invalid_email",
        "message": say("es", "Enter a valid email address."),
    }
    client.post("/auth/otp", json={"email": ANN})
    answer = client.post(
        "/auth/otp/verify", json={"email": ANN, "code": "abc"}, headers={"Accept-Language": "de"}
    )
    body = answer.json or {}
    assert body["error"] == "invalid_code"
    assert body["message"] == say("de", "Enter the %(digits)d-digit code from the email.") % {
        "digits": 6
    }


def test_rate_limit_waits_are_counted_in_the_language(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=30)
    client = app.test_client()
    ar = {"Accept-Language": "ar"}
    client.post("/auth/otp", json={"email": ANN}, headers=ar)
    answer = client.post("/auth/otp", json={"email": ANN}, headers=ar)
    assert answer.status_code == 429
    wait = Catalogs().translations("ar").ngettext("%(num)d second", "%(num)d seconds", 30)
    assert (answer.json or {})["message"] == say(
        "ar", "Too many requests. Wait %(wait)s, then try again."
    ) % {"wait": wait % {"num": 30}}


def test_the_sign_in_flash_of_a_protected_page_is_translated(make_app: AppFactory) -> None:
    app = make_app()

    def private() -> str:
        return "private"

    app.add_url_rule("/private", view_func=login_required(private))

    client = app.test_client()
    client.environ_base.update(HTTP_ACCEPT_LANGUAGE="fr")
    page = client.get("/private", follow_redirects=True).get_data(as_text=True)
    assert html.escape(say("fr", "Sign in to see that page."), quote=False) in page
    answer = client.get("/private", headers={"Accept": "application/json"})
    assert (answer.json or {})["message"] == say("fr", "Sign in to use this.")


def test_a_404_under_the_prefix_is_translated(browser_app: Flask) -> None:
    page = browser_app.test_client().get("/auth/nope", headers={"Accept-Language": "ja"})
    assert page.status_code == 404
    check_page(page.get_data(as_text=True), "ja", "Page not found", "Go to the sign-in page")


def test_the_error_as_werkzeug_shows_it_is_translated(browser_app: Flask) -> None:
    from flask_postmark_auth.errors import InvalidLinkError

    with browser_app.test_request_context(headers={"Accept-Language": "pt-BR"}):
        shown = InvalidLinkError().get_description()
        assert html.unescape(shown) == (
            f"<p>{say('pt_BR', 'This sign-in link is invalid, expired or already used.')}</p>"
        )


# -- emails sent later ----------------------------------------------------------------------


def test_a_background_email_is_in_the_requester_s_language(
    make_app: AppFactory, clock: FakeClock
) -> None:
    auth = PostmarkAuth(clock=clock)
    app = make_app(auth=auth, DELIVERY="background")
    with record_messages(app) as outbox:
        answer = app.test_client().post(
            "/auth/otp", json={"email": ANN}, headers={"Accept-Language": "ja"}
        )
        assert answer.status_code == 202
        assert auth.flush(timeout=10)
    [message] = outbox
    check_email(message, "ja", "If you did not ask for this, you can ignore this email.")


def test_a_queued_email_is_in_the_requester_s_language(make_app: AppFactory) -> None:
    from flask_postmark_auth.tasks import QueueDelivery, run_sealed

    queued: list[str] = []

    class Keep(QueueDelivery):
        def enqueue(self, sealed: str, ttl: float) -> None:
            queued.append(sealed)

    app = make_app(DELIVERY=Keep())
    app.test_client().post(
        "/auth/magic-link", json={"email": ANN}, headers={"Accept-Language": "ar"}
    )
    with record_messages(app) as outbox:
        assert run_sealed(queued[0], app).status == "sent"  # a worker: no request at all
    [message] = outbox
    check_email(
        message, "ar", "Don\u2019t forward this email: anyone with the link can sign in as you."
    )


def test_a_postmark_template_gets_the_locale_in_its_model(
    make_app: AppFactory, clock: FakeClock
) -> None:
    app = make_app(OTP_TEMPLATE="sign-in-code")
    with record_messages(app) as outbox:
        app.test_client().post(
            "/auth/otp", json={"email": ANN}, headers={"Accept-Language": "pt-BR"}
        )
    model = outbox[0].template_model or {}
    assert model["locale"] == "pt_BR"
    assert model["lang"] == "pt-BR"
    assert model["dir"] == "ltr"
    assert model["expires_in_text"] == Catalogs().translations("pt_BR").ngettext(
        "%(num)d minute", "%(num)d minutes", 10
    ) % {"num": 10}


def test_the_dev_outbox_is_a_developer_tool_in_english(browser_app: Flask) -> None:
    page = browser_app.test_client().get("/auth/dev/outbox", headers={"Accept-Language": "ar"})
    assert page.status_code == 200
    assert '<html lang="en" dir="ltr">' in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # The package's emails: the code on its own line, whatever digits the address has.
        ("Here is your code to sign in as ann-52779189@example.com:\n\n    137561\n", "137561"),
        ("\u0625\u0644\u064a\u0643 a1234567@example.com:\n\n    654321\n", "654321"),
        # An app's own template that puts it in a sentence.
        ("Hello 20250101@example.com, your code is 246810.", "246810"),
    ],
)
def test_code_in_finds_the_code_not_the_digits_of_an_address(text: str, code: str) -> None:
    message = RecordedMessage(
        message_id="x", endpoint="/email", to=ANN, from_="a@b.c", text_body=text
    )
    assert code_in(message) == code


def test_a_translation_whose_placeholders_do_not_fit_gives_way_to_the_source(
    make_app: AppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken catalog of the app's does not break the page or the JSON answer."""
    write_catalog(
        tmp_path,
        "de",
        {
            "If %(email)s can sign in, we\u2019ve emailed it a sign-in code.": "Code an %(mail)s.",
            "Enter the %(digits)d-digit code from the email.": "%(stellen)d Ziffern.",
        },
    )
    app = make_app(TRANSLATION_DIRECTORIES=[str(tmp_path)])
    client = app.test_client()
    page = ask_code(client, "de")
    assert "emailed it a sign-in code" in html.unescape(page)
    answer = client.post(
        "/auth/otp/verify", json={"email": ANN, "code": "x"}, headers={"Accept-Language": "de"}
    )
    assert (answer.json or {})["message"] == "Enter the 6-digit code from the email."
    assert "does not fit its placeholders" in caplog.text
