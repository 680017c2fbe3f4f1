"""The sign-in emails as mail clients and people see them (SPEC section 15): no external
resources, a complete text part, a button Outlook keeps padded, a preheader with filler, the
account named, the expiry under an overridden layout, subjects checked at ``init_app``,
Postmark's own names in a template's model, dark-mode styles, the requester's browser, and
a SpamAssassin score under 0.5."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_postmark_auth import ConfigurationError, PostmarkAuth, PostmarkConnector
from flask_postmark_auth.mail import browser_and_system
from flask_postmark_auth.testing import (
    FakeClock,
    RecordedMessage,
    code_in,
    link_in,
    record_messages,
)
from support.processes import missing

EMAIL = "ann@example.com"
FROM = "Acme <login@acme.example>"
BASE_URL = "https://app.acme.example"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
#: The preheader's filler, after character references are decoded.
FILLER = "\u034f\u200c\u00a0"
METHODS = ("otp", "magic_link")


def connector() -> PostmarkConnector:
    """A connector that never reaches the network (record_messages intercepts it)."""
    return PostmarkConnector(
        "default",
        server_token="server-token",
        from_email=FROM,
        api_url="http://127.0.0.1:9",
        max_retries=0,
    )


def build_app(clock: FakeClock, *, templates: Path | None = None, **settings: Any) -> Flask:
    """A testing app sending as Acme from ``BASE_URL`` (``templates``: its own folder)."""
    app = Flask(__name__, template_folder=str(templates) if templates else "templates")
    app.config.update(SECRET_KEY="test-secret", TESTING=True, WTF_CSRF_ENABLED=False)
    settings.setdefault("CONNECTORS", {"default": connector()})
    settings.setdefault("BASE_URL", BASE_URL)
    app.config.update({f"POSTMARK_AUTH_{k}": v for k, v in settings.items()})
    PostmarkAuth(clock=clock).init_app(app)
    return app


def send(app: Flask, method: str, user_agent: str = FIREFOX) -> RecordedMessage:
    """The email ``method`` sends to :data:`EMAIL`, asked for from 203.0.113.7."""
    path = "/auth/otp" if method == "otp" else "/auth/magic-link"
    with record_messages(app) as outbox:
        answer = app.test_client().post(
            path,
            json={"email": EMAIL},
            headers={"User-Agent": user_agent},
            environ_base={"REMOTE_ADDR": "203.0.113.7"},
        )
    assert answer.status_code == 202, answer.get_data(as_text=True)
    [message] = outbox
    return message


@pytest.fixture
def emails(clock: FakeClock) -> dict[str, RecordedMessage]:
    """Both emails of the package's own templates."""
    app = build_app(clock)
    return {method: send(app, method) for method in METHODS}


def full_link(message: RecordedMessage) -> str:
    """The sign-in link as the email gives it (``link_in`` gives its path)."""
    found = re.search(r"https?://\S+/magic-link/\S+", message.text_body or "")
    assert found, message.text_body
    assert found[0].endswith(link_in(message))
    return found[0]


def secret(message: RecordedMessage) -> str:
    return code_in(message) if message.tag == "otp" else full_link(message)


# -- reading HTML ---------------------------------------------------------------------------


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.text = ""

    def style(self) -> dict[str, str]:
        """The inline style as property -> value (lower case, no spaces)."""
        pairs = (part.split(":", 1) for part in self.attrs.get("style", "").split(";"))
        return {
            name.strip().lower(): value.strip().lower().replace(" !important", "")
            for name, value in (p for p in pairs if len(p) == 2)
        }


class Tree(HTMLParser):
    """Every element with its parent, its text, and the document's <style> sheets."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.sheets: list[str] = []
        self._open: list[Element] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(
            tag, {k: v or "" for k, v in attrs}, self._open[-1] if self._open else None
        )
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data
        if self._open and self._open[-1].tag == "style":
            self.sheets.append(data)

    def find(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]


URL_ATTRS = ("href", "src", "srcset", "background", "poster", "data", "action", "xlink:href")


def external_urls(html: str) -> list[str]:
    """Every URL of the document a client could fetch or follow (attributes and CSS)."""
    tree = Tree(html)
    found = [e.attrs[a] for e in tree.elements for a in URL_ATTRS if a in e.attrs]
    css = tree.sheets + [e.attrs["style"] for e in tree.elements if "style" in e.attrs]
    for sheet in css:
        found += re.findall(r"url\(\s*['\"]?([^'\")]+)", sheet)
        found += re.findall(r"@import\s+['\"]?([^'\";\s]+)", sheet)
    return [url for url in found if re.match(r"\s*(https?:)?//", url, re.I)]


def luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb`` (or ``#rgb``)."""
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(2 * d for d in hex_digits)
    channels = [int(hex_digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def preheader(tree: Tree) -> Element:
    """The hidden element first in the body: what inboxes show after the subject."""
    [body] = tree.find("body")
    hidden = [e for e in tree.elements if e.parent is body and e.style().get("display") == "none"]
    assert hidden, "no hidden preheader right inside <body>"
    return hidden[0]


def button(tree: Tree, link: str) -> Element:
    [anchor] = [a for a in tree.find("a") if a.attrs.get("href") == link and "Sign in" in a.text]
    return anchor


def padding(value: str | None) -> list[int]:
    return [int(v) for v in re.findall(r"(\d+)px", value or "")]


# -- no external resources, complete text ----------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_the_html_part_fetches_nothing_and_links_only_to_the_action(
    emails: dict[str, RecordedMessage], method: str
) -> None:
    message = emails[method]
    html = message.html_body or ""
    urls = external_urls(html)
    if method == "otp":
        assert urls == []
    else:
        assert urls
        assert set(urls) == {full_link(message)}
    tree = Tree(html)
    for tag in ("img", "link", "script", "iframe", "object"):
        assert not tree.find(tag), tag


def test_the_resource_check_can_fail() -> None:
    for html in (
        '<img src="https://tracker.example/p.gif">',
        '<link rel="stylesheet" href="//cdn.example/x.css">',
        "<style>@import 'https://fonts.example/x.css';</style>",
        '<td style="background:url(https://img.example/bg.png)">',
        '<table background="http://img.example/bg.png">',
    ):
        assert external_urls(html), html


@pytest.mark.parametrize("method", METHODS)
def test_the_text_part_has_everything_the_html_has(
    emails: dict[str, RecordedMessage], method: str
) -> None:
    message = emails[method]
    text = message.text_body or ""
    minutes = "10 minutes" if method == "otp" else "15 minutes"
    for part in (secret(message), minutes, EMAIL, "Acme", "Firefox on Windows", "203.0.113.7"):
        assert part in text, part
        assert part in (message.html_body or ""), part
    assert "<" not in text  # plain text: no markup left, nothing escaped
    assert "&" not in text


@pytest.mark.parametrize("method", METHODS)
def test_the_body_names_the_account(emails: dict[str, RecordedMessage], method: str) -> None:
    tree = Tree(emails[method].html_body or "")
    [body] = tree.find("body")
    visible = body.text.replace(preheader(tree).text, "")
    assert f"as {EMAIL}" in " ".join(visible.split())


# -- the button and the preheader --------------------------------------------------------------


def test_the_button_keeps_its_padding_in_outlook(emails: dict[str, RecordedMessage]) -> None:
    message = emails["magic_link"]
    anchor = button(Tree(message.html_body or ""), full_link(message))
    cell = anchor.parent
    assert cell is not None
    assert cell.tag == "td"
    # Outlook for Windows ignores padding on <a>: the cell pads the button there ...
    assert min(padding(cell.style().get("mso-padding-alt"))) >= 10
    assert cell.attrs.get("bgcolor") == cell.style()["background-color"]
    # ... and every other client pads the link itself, so the whole button is clickable.
    assert anchor.style()["display"] in ("inline-block", "block")
    assert padding(anchor.style().get("padding")) == padding(cell.style()["mso-padding-alt"])
    assert anchor.style()["color"] == "#ffffff"
    assert anchor.style()["text-decoration"] == "none"


@pytest.mark.parametrize("method", METHODS)
def test_the_preheader_has_filler_and_a_colour_unlike_the_background(
    emails: dict[str, RecordedMessage], method: str
) -> None:
    tree = Tree(emails[method].html_body or "")
    hidden = preheader(tree)
    words, _, filler = hidden.text.partition(FILLER)
    for part in ("Acme", EMAIL, "minutes"):
        assert part in words, part
    assert secret(emails[method]) not in hidden.text  # the code stays out of inbox previews
    assert hidden.text.endswith(FILLER)
    assert hidden.text.count(FILLER) >= 50
    assert filler.replace(FILLER, "") == ""
    colour = hidden.style()["color"]
    backgrounds = []
    ancestor = hidden.parent
    while ancestor is not None:
        backgrounds += [ancestor.style().get("background-color")]
        ancestor = ancestor.parent
    assert backgrounds[0]  # the body's
    for background in filter(None, backgrounds):  # SpamAssassin's HTML_FONT_LOW_CONTRAST
        assert contrast(colour, background) >= 3, (colour, background)


@pytest.mark.parametrize("method", METHODS)
def test_dark_mode_styles_apply_to_the_email(
    emails: dict[str, RecordedMessage], method: str
) -> None:
    tree = Tree(emails[method].html_body or "")
    metas = {e.attrs.get("name"): e.attrs.get("content") for e in tree.find("meta")}
    assert metas["color-scheme"] == "light dark"
    assert metas["supported-color-schemes"] == "light dark"
    sheet = "".join(tree.sheets)
    dark = sheet.split("@media (prefers-color-scheme: dark)", 1)[1]
    classes = {c for e in tree.elements for c in e.attrs.get("class", "").split()}
    selectors = set(re.findall(r"\.([\w-]+)\s*\{", dark))
    assert {"pa-page", "pa-card", "pa-text"} <= selectors
    assert selectors <= classes | {"pa-code", "pa-link"}  # each styles something it can find
    assert {"pa-page", "pa-card", "pa-text"} <= classes


# -- the context: layout overrides, the requester, Postmark templates -------------------------


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates" / "postmark_auth" / "email"
    folder.mkdir(parents=True)
    (folder / "layout.html").write_text(
        "<html><body><h1>Our own layout</h1>{% block content %}{% endblock %}</body></html>",
        encoding="utf-8",
    )
    return tmp_path / "templates"


@pytest.mark.parametrize("method", METHODS)
def test_an_overridden_layout_still_shows_the_expiry(
    clock: FakeClock, templates: Path, method: str
) -> None:
    app = build_app(clock, templates=templates, OTP_TTL=120, MAGIC_LINK_TTL=60)
    message = send(app, method)
    html = message.html_body or ""
    assert "<h1>Our own layout</h1>" in html
    expiry = "expires in 2 minutes" if method == "otp" else "expires in 1 minute."
    assert expiry in " ".join(Tree(html).elements[0].text.split())
    assert secret(message) in html
    assert EMAIL in html


def test_the_requester_is_the_client_flask_sees(clock: FakeClock) -> None:
    app = build_app(clock)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    with record_messages(app) as outbox:
        app.test_client().post(
            "/auth/otp",
            json={"email": EMAIL},
            headers={"User-Agent": IPHONE_SAFARI, "X-Forwarded-For": "198.51.100.4"},
            environ_base={"REMOTE_ADDR": "10.0.0.2"},
        )
    text = outbox[0].text_body or ""
    assert "Requested from Safari on iOS, IP address 198.51.100.4." in text
    assert "10.0.0.2" not in text


@pytest.mark.parametrize(
    ("agent", "names"),
    [
        (FIREFOX, ("Firefox", "Windows")),
        (IPHONE_SAFARI, ("Safari", "iOS")),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
            "Gecko) Chrome/126.0.0.0 Safari/537.36",
            ("Chrome", "macOS"),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            ("Edge", "Windows"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.6478.71 Mobile Safari/537.36",
            ("Chrome", "Android"),
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
            ("Firefox", "Linux"),
        ),
        ("curl/8.5.0", (None, None)),
        ("", (None, None)),
    ],
)
def test_the_browser_and_system_are_named(agent: str, names: tuple[str | None, ...]) -> None:
    assert browser_and_system(agent) == names


def test_nothing_of_the_user_agent_itself_reaches_the_email(clock: FakeClock) -> None:
    hostile = '<b onmouseover="x()">Firefox/1 & Windows</b>' + "A" * 100_000
    message = send(build_app(clock), "otp", user_agent=hostile)
    for body in (message.html_body or "", message.text_body or ""):
        for part in ("onmouseover", "<b ", "AAAA"):
            assert part not in body
    assert "Requested from Firefox on Windows, IP address 203.0.113.7." in (
        message.text_body or ""
    )


def test_without_a_user_agent_the_requester_line_gives_the_ip(clock: FakeClock) -> None:
    message = send(build_app(clock), "magic_link", user_agent="")
    assert "Requested from IP address 203.0.113.7." in (message.text_body or "")


def test_a_postmark_template_gets_postmarks_own_names(clock: FakeClock) -> None:
    app = build_app(
        clock,
        OTP_TEMPLATE="sign-in-code",
        MAGIC_LINK_TEMPLATE=4242,
        SUPPORT_URL="https://acme.example/help",
        APP_NAME="Acme Cloud",
    )
    code, link = (send(app, method) for method in METHODS)
    for message in (code, link):
        model = message.template_model or {}
        assert json.loads(json.dumps(model)) == model
        assert model["product_name"] == model["app_name"] == "Acme Cloud"
        assert model["product_url"] == BASE_URL
        assert model["support_url"] == "https://acme.example/help"
        assert (model["browser_name"], model["operating_system"]) == ("Firefox", "Windows")
        assert (model["email"], model["request_ip"]) == (EMAIL, "203.0.113.7")
        assert (message.subject, message.html_body) == (None, None)
    code_model = code.template_model or {}
    assert code.template == "sign-in-code"
    assert re.fullmatch(r"\d{6}", code_model["code"])
    assert code_model["expires_in_text"] == "10 minutes"
    assert "action_url" not in code_model
    link_model = link.template_model or {}
    assert link.template == 4242
    assert link_model["action_url"] == link_model["link"]
    assert link_model["action_url"].startswith(f"{BASE_URL}/auth/magic-link/")
    answer = app.test_client().post(link_model["action_url"].removeprefix(BASE_URL), json={})
    assert answer.status_code == 200


def test_support_url_falls_back_to_the_base_url(clock: FakeClock) -> None:
    app = build_app(clock, OTP_TEMPLATE="sign-in-code")
    assert (send(app, "otp").template_model or {})["support_url"] == BASE_URL


# -- subjects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"OTP_SUBJECT": "Hi {{ user.name }}"}, ("POSTMARK_AUTH_OTP_SUBJECT", "'user'")),
        ({"MAGIC_LINK_SUBJECT": "Your code {{ code }}"}, ("MAGIC_LINK_SUBJECT", "'code'")),
        ({"OTP_SUBJECT": "{{ link }}"}, ("OTP_SUBJECT", "'link'")),
        ({"OTP_SUBJECT": "{{ app_name.nope }}"}, ("OTP_SUBJECT", "nope")),
        ({"OTP_SUBJECT": "{{ 1 // 0 }}"}, ("OTP_SUBJECT", "ZeroDivisionError")),
        ({"OTP_SUBJECT": "{{ app_name }}\nBcc: x@example.com"}, ("OTP_SUBJECT", "line break")),
        ({"OTP_SUBJECT": "{{ app_name }"}, ("OTP_SUBJECT", "fix the Jinja")),
    ],
)
def test_a_subject_that_cannot_render_fails_init_app(
    clock: FakeClock, settings: dict[str, Any], named: tuple[str, str]
) -> None:
    with pytest.raises(ConfigurationError) as failure:
        build_app(clock, **settings)
    for part in named:
        assert part in str(failure.value)


def test_the_subject_error_lists_what_a_subject_may_use(clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="'user' is undefined") as failure:
        build_app(clock, OTP_SUBJECT="{{ user.name }}")
    for name in ("app_name", "code", "email", "expires_in_minutes", "request_ip"):
        assert name in str(failure.value)


def test_a_subject_using_every_documented_variable_is_accepted(clock: FakeClock) -> None:
    app = build_app(
        clock,
        OTP_SUBJECT="{{ code }} for {{ email }} at {{ app_name }} ({{ expires_in_text }}, "
        "{{ request_ip }}, {{ browser_name }})",
        MAGIC_LINK_SUBJECT="{{ product_name }}: {{ email }} {{ expires_in_minutes }}",
    )
    code = send(app, "otp")
    assert (
        code.subject == f"{code_in(code)} for {EMAIL} at Acme (10 minutes, 203.0.113.7, Firefox)"
    )
    assert send(app, "magic_link").subject == f"Acme: {EMAIL} 15"


def test_a_subject_beside_a_postmark_template_is_reported(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_postmark_auth"):
        app = build_app(clock, OTP_TEMPLATE="sign-in-code", OTP_SUBJECT="{{ user.name }}")
        build_app(clock, MAGIC_LINK_TEMPLATE="sign-in-link")  # default subject: nothing said
    [record] = [r for r in caplog.records if "SUBJECT" in r.getMessage()]
    text = record.getMessage()
    assert "POSTMARK_AUTH_OTP_SUBJECT is ignored" in text
    assert "POSTMARK_AUTH_OTP_TEMPLATE" in text
    assert send(app, "otp").template == "sign-in-code"  # the template's own subject serves


# -- as a person sees them: SpamAssassin and Chromium ------------------------------------------


def rfc5322(message: RecordedMessage) -> bytes:
    """``message`` as Postmark would hand it on: From, To, Subject, Date, Message-ID and a
    multipart/alternative body (text, then HTML)."""
    mail = EmailMessage()
    mail["From"] = message.from_
    mail["To"] = message.to
    mail["Subject"] = message.subject or ""
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain="mtasv.net")
    mail.set_content(message.text_body or "")
    mail.add_alternative(message.html_body or "", subtype="html")
    assert mail.get_content_type() == "multipart/alternative"
    return mail.as_bytes()


@pytest.fixture(scope="module")
def spamassassin() -> str:
    program = shutil.which("spamassassin")
    if program is None:
        missing("spamassassin", "apt-get install -y spamassassin (.ci/run does)")
    return program


def spam_score(program: str, raw: bytes, home: Path) -> tuple[float, str]:
    """SpamAssassin's score of ``raw`` with local tests only, and its report."""
    result = subprocess.run(
        [program, "-L", "-t"],
        input=raw,
        capture_output=True,
        timeout=120,
        check=True,
        env={**os.environ, "HOME": str(home)},  # its user_prefs land in the test's folder
    )
    output = result.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?\d+(?:\.\d+)?)", output, re.M)
    assert status, output[-2000:]
    return float(status[1]), output[output.find("Content analysis details") :]


@pytest.mark.parametrize("method", METHODS)
def test_spamassassin_scores_each_email_under_half_a_point(
    spamassassin: str, emails: dict[str, RecordedMessage], method: str, tmp_path: Path
) -> None:
    score, report = spam_score(spamassassin, rfc5322(emails[method]), tmp_path)
    assert score < 0.5, report


def test_spamassassin_does_score_a_hidden_text_coloured_like_its_background(
    spamassassin: str, emails: dict[str, RecordedMessage], tmp_path: Path
) -> None:
    """The check above can fail: the preheader of issue 13 (its colour the background's)."""
    message = emails["otp"]
    html = (message.html_body or "").replace('color:#4b5563;">', 'color:#f4f5f7;">', 1)
    assert html != message.html_body
    bad = dataclasses.replace(message, html_body=html)
    score, report = spam_score(spamassassin, rfc5322(bad), tmp_path)
    assert score >= 0.5, report
    assert "HTML_FONT_LOW_CONTRAST" in report


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [600, 390])
@pytest.mark.parametrize("method", METHODS)
def test_each_email_fits_and_reads_in_chromium(
    browser: Any, emails: dict[str, RecordedMessage], method: str, width: int, scheme: str
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 700}, color_scheme=scheme)
    try:
        page.route("**/*", lambda route: route.abort())  # nothing may load from anywhere
        page.set_content(emails[method].html_body or "")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page_colour = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert page_colour == ("rgb(17, 20, 24)" if scheme == "dark" else "rgb(244, 245, 247)")
        assert page.locator("td.pa-text", has_text=f"as {EMAIL}").first.is_visible()
        assert page.locator("td", has_text="Requested from Firefox on Windows").last.is_visible()
        if method == "magic_link":
            box = page.get_by_role("link", name="Sign in to Acme").bounding_box()
            assert box is not None
            assert box["height"] >= 44
            assert box["width"] >= 120
        else:
            assert page.get_by_text(code_in(emails[method]), exact=True).is_visible()
    finally:
        page.close()
