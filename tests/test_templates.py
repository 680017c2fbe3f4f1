"""Templates (SPEC sections 5 and 6): the app's own files override the package's, emails get
their documented context, subjects are Jinja strings, and pages are accessible and
self-contained (no external assets)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_postmark_auth import PostmarkAuth, PostmarkConnector
from flask_postmark_auth.testing import (
    FakeClock,
    RecordedMessage,
    code_in,
    link_in,
    record_messages,
)
from tests.helpers import AppFactory

EMAIL = "ann@example.com"
FROM = "Acme <login@acme.example>"
CONTEXT_DUMP = (
    "code={{ code }}|link={{ link }}|email={{ email }}|minutes={{ expires_in_minutes }}"
    "|ip={{ request_ip }}|app={{ app_name }}"
)


def connector(from_email: str = FROM) -> PostmarkConnector:
    """A connector that never reaches the network (record_messages intercepts it)."""
    return PostmarkConnector(
        "default",
        server_token="server-token",
        from_email=from_email,
        api_url="http://127.0.0.1:9",
        max_retries=0,
    )


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build_app(
    template_folder: Path, clock: FakeClock, from_email: str = FROM, **settings: Any
) -> Flask:
    """Like the ``make_app`` fixture, with the app's own template folder."""
    app = Flask(__name__, template_folder=str(template_folder))
    app.config.update(SECRET_KEY="test-secret", TESTING=True, WTF_CSRF_ENABLED=False)
    settings.setdefault("CONNECTORS", {"default": connector(from_email)})
    app.config.update({f"POSTMARK_AUTH_{k}": v for k, v in settings.items()})

    @app.get("/")
    def home() -> str:
        return "home"

    PostmarkAuth(clock=clock).init_app(app)
    return app


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    return folder


@pytest.fixture
def plain_app(make_app: AppFactory) -> Flask:
    return make_app(CONNECTORS={"default": connector()})


@pytest.fixture
def outbox(plain_app: Flask) -> Iterator[list[RecordedMessage]]:
    with record_messages(plain_app) as messages:
        yield messages


# -- overrides and context ----------------------------------------------------------------


def test_app_otp_text_template_overrides_with_the_documented_context(
    templates: Path, clock: FakeClock
) -> None:
    write(templates, "postmark_auth/email/otp.txt", CONTEXT_DUMP)
    app = build_app(templates, clock, OTP_TTL=120)
    client = app.test_client()
    with record_messages(app) as outbox:
        response = client.post(
            "/auth/otp",
            json={"email": "  Ann@Example.COM "},
            environ_base={"REMOTE_ADDR": "203.0.113.7"},
        )
    assert response.status_code == 202
    [message] = outbox
    fields = dict(part.split("=", 1) for part in (message.text_body or "").split("|"))
    assert re.fullmatch(r"\d{6}", fields["code"])
    assert fields == {
        "code": fields["code"],
        "link": "",
        "email": EMAIL,
        "minutes": "2",
        "ip": "203.0.113.7",
        "app": "Acme",
    }
    # the package's HTML part is still used, with the same code
    assert "<html" in (message.html_body or "")
    assert fields["code"] in (message.html_body or "")
    verify = client.post("/auth/otp/verify", json={"email": EMAIL, "code": fields["code"]})
    assert verify.status_code == 200


def test_app_magic_link_templates_override_with_the_documented_context(
    templates: Path, clock: FakeClock
) -> None:
    write(templates, "postmark_auth/email/magic_link.txt", CONTEXT_DUMP)
    write(
        templates,
        "postmark_auth/email/magic_link.html",
        '<p>Our own HTML</p><a href="{{ link }}">{{ app_name }}</a> {{ email }}',
    )
    app = build_app(templates, clock, MAGIC_LINK_TTL=1800)
    client = app.test_client()
    with record_messages(app) as outbox:
        client.post("/auth/magic-link", json={"email": EMAIL})
    [message] = outbox
    fields = dict(part.split("=", 1) for part in (message.text_body or "").split("|"))
    assert fields["code"] == ""
    assert fields["email"] == EMAIL
    assert fields["minutes"] == "30"
    assert fields["ip"] == "127.0.0.1"
    assert fields["app"] == "Acme"
    link = fields["link"]
    assert link.startswith("http://localhost/auth/magic-link/")
    html = message.html_body or ""
    assert html.startswith("<p>Our own HTML</p>")
    assert f'<a href="{link}">Acme</a> {EMAIL}' == html.split("</p>", 1)[1]
    assert client.post(link.removeprefix("http://localhost"), json={}).status_code == 200


def test_package_templates_serve_when_the_app_has_none(templates: Path, clock: FakeClock) -> None:
    write(templates, "postmark_auth/email/otp.txt", "ours {{ code }}")
    app = build_app(templates, clock)
    with record_messages(app) as outbox:
        app.test_client().post("/auth/magic-link", json={"email": EMAIL})
    [message] = outbox
    assert "Sign in to Acme by opening this link" in (message.text_body or "")


@pytest.mark.parametrize(
    ("page", "path"),
    [
        ("login.html", "/auth/login"),
        ("verify.html", "/auth/otp/verify"),
        ("check_email.html", "/auth/magic-link"),
        ("magic_link.html", "/auth/magic-link/whatever"),
    ],
)
def test_app_page_templates_override(
    templates: Path, clock: FakeClock, page: str, path: str
) -> None:
    write(
        templates,
        f"postmark_auth/{page}",
        '{% extends "postmark_auth/base.html" %}{% block content %}'
        "<h1>Our own {{ request.endpoint }}</h1>{% endblock %}",
    )
    client = build_app(templates, clock).test_client()
    body = client.get(path).get_data(as_text=True)
    assert "<h1>Our own postmark_auth." in body
    assert "<style>" in body  # the package's base still serves the override


def test_app_login_override_is_used_for_error_re_renders(
    templates: Path, clock: FakeClock
) -> None:
    write(templates, "postmark_auth/login.html", "OUR LOGIN: {{ error }}")
    client = build_app(templates, clock).test_client()
    response = client.post("/auth/otp", data={"email": "not an address"})
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith("OUR LOGIN: Enter")


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [("http://localhost", "localhost"), ("https://shop.example:8443", "shop.example")],
)
def test_app_name_falls_back_to_the_host(
    templates: Path, clock: FakeClock, base_url: str, expected: str
) -> None:
    write(templates, "postmark_auth/email/otp.txt", "app={{ app_name }}")
    app = build_app(templates, clock, from_email="login@acme.example")
    with record_messages(app) as outbox:
        app.test_client().post("/auth/otp", json={"email": EMAIL}, base_url=base_url)
    assert outbox[0].text_body == f"app={expected}"


@pytest.mark.parametrize(
    ("from_email", "expected"),
    [(FROM, "Acme"), ('"Acme, Inc." <login@acme.example>', "Acme, Inc.")],
)
def test_app_name_is_the_from_display_name(
    templates: Path, clock: FakeClock, from_email: str, expected: str
) -> None:
    write(templates, "postmark_auth/email/otp.txt", "app={{ app_name }}")
    app = build_app(templates, clock, from_email=from_email)
    with record_messages(app) as outbox:
        app.test_client().post("/auth/otp", json={"email": EMAIL})
    assert outbox[0].text_body == f"app={expected}"


def test_magic_link_mail_names_its_own_connector(templates: Path, clock: FakeClock) -> None:
    links = PostmarkConnector(
        "links",
        server_token="server-token",
        from_email="Links Co <links@links.example>",
        api_url="http://127.0.0.1:9",
        max_retries=0,
    )
    app = build_app(
        templates,
        clock,
        CONNECTORS={"default": connector(), "links": links},
        MAGIC_LINK_CONNECTOR="links",
    )
    with record_messages(app) as outbox:
        app.test_client().post("/auth/magic-link", json={"email": EMAIL})
    [message] = outbox
    assert message.from_ == "Links Co <links@links.example>"
    assert message.subject == "Your sign-in link for Links Co"


# -- subjects -------------------------------------------------------------------------------


def test_otp_subject_is_a_jinja_string(make_app: AppFactory) -> None:
    app = make_app(
        CONNECTORS={"default": connector()},
        OTP_SUBJECT="{{ app_name }}: {{ code }} for {{ email }} ({{ expires_in_minutes }} min)",
    )
    with record_messages(app) as outbox:
        app.test_client().post("/auth/otp", json={"email": "ANN@example.com"})
    [message] = outbox
    assert message.subject == f"Acme: {code_in(message)} for {EMAIL} (10 min)"


def test_magic_link_subject_is_a_jinja_string(make_app: AppFactory) -> None:
    app = make_app(
        CONNECTORS={"default": connector()},
        MAGIC_LINK_SUBJECT="{% if email.endswith('@example.com') %}Hi{% endif %} {{ app_name }}",
    )
    with record_messages(app) as outbox:
        app.test_client().post("/auth/magic-link", json={"email": EMAIL})
    assert outbox[0].subject == "Hi Acme"


def test_default_subjects(plain_app: Flask, outbox: list[RecordedMessage]) -> None:
    client = plain_app.test_client()
    client.post("/auth/otp", json={"email": EMAIL})
    client.post("/auth/magic-link", json={"email": EMAIL})
    assert outbox[0].subject == "Your sign-in code for Acme"  # the code stays out of previews
    assert code_in(outbox[0]) not in outbox[0].subject
    assert outbox[1].subject == "Your sign-in link for Acme"


def test_subject_and_text_are_not_html_escaped_but_html_is(make_app: AppFactory) -> None:
    app = make_app(CONNECTORS={"default": connector("Tom & Jerry <login@acme.example>")})
    with record_messages(app) as outbox:
        app.test_client().post("/auth/otp", json={"email": EMAIL})
    [message] = outbox
    assert message.subject is not None
    assert message.subject == "Your sign-in code for Tom & Jerry"
    assert "Tom & Jerry" in (message.text_body or "")
    assert "&amp;" not in (message.text_body or "")
    assert "Tom &amp; Jerry" in (message.html_body or "")
    assert "Tom & Jerry" not in (message.html_body or "")


# -- pages: labels, code field, no external assets ----------------------------------------


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser


def assert_inputs_are_labelled(html: str) -> None:
    tags = parse(html).tags
    labels = {attrs.get("for") for tag, attrs in tags if tag == "label"}
    visible = [
        attrs
        for tag, attrs in tags
        if tag in ("input", "select", "textarea")
        and attrs.get("type") not in ("hidden", "submit", "button")
    ]
    assert visible
    for attrs in visible:
        assert attrs.get("id") in labels, attrs


def test_login_page_fields_are_labelled(client: FlaskClient) -> None:
    html = client.get("/auth/login").get_data(as_text=True)
    assert_inputs_are_labelled(html)
    [email] = [a for t, a in parse(html).tags if t == "input" and a.get("name") == "email"]
    assert email["type"] == "email"
    assert email["autocomplete"] == "email"


def test_verify_page_code_field(client: FlaskClient) -> None:
    html = client.get("/auth/otp/verify").get_data(as_text=True)
    assert_inputs_are_labelled(html)
    [code] = [a for t, a in parse(html).tags if t == "input" and a.get("name") == "code"]
    assert code["autocomplete"] == "one-time-code"
    assert code["inputmode"] == "numeric"
    assert "maxlength" not in code  # it would cut a pasted "123 456"
    assert code["minlength"] == "6"


def test_verify_page_follows_otp_length(make_app: AppFactory) -> None:
    html = make_app(OTP_LENGTH=8).test_client().get("/auth/otp/verify").get_data(as_text=True)
    [code] = [a for t, a in parse(html).tags if t == "input" and a.get("name") == "code"]
    assert code["minlength"] == "8"


def test_error_re_render_keeps_the_labels(plain_app: Flask, client: FlaskClient) -> None:
    with record_messages(plain_app):  # a code pending: attempts are left
        client.post("/auth/otp", data={"email": EMAIL})
    response = client.post("/auth/otp/verify", data={"email": EMAIL, "code": "12"})
    assert response.status_code == 400
    assert_inputs_are_labelled(response.get_data(as_text=True))
    assert 'role="alert"' in response.get_data(as_text=True)


def test_magic_link_confirm_page_is_labelled(
    plain_app: Flask, outbox: list[RecordedMessage]
) -> None:
    client = plain_app.test_client()
    client.post("/auth/magic-link", json={"email": EMAIL})
    assert_inputs_are_labelled(client.get(link_in(outbox[0])).get_data(as_text=True))


EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
ASSET_ATTRS = {
    "link": "href",
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "video": "src",
    "audio": "src",
}


def assert_no_external_assets(html: str) -> None:
    parsed = parse(html)
    for tag, attrs in parsed.tags:
        attr = ASSET_ATTRS.get(tag)
        if attr and attr in attrs:
            assert not EXTERNAL.match(attrs[attr]), (tag, attrs)
        if tag == "img" and "srcset" in attrs:
            assert "http" not in attrs["srcset"]
        if tag == "script":
            assert "src" not in attrs, attrs
    for css in parsed.styles:
        assert "@import" not in css
        assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", css), css


def every_page(app: Flask, outbox: list[RecordedMessage]) -> dict[str, str]:
    """Every page the package renders, errors included, plus the emails' HTML parts."""
    client = app.test_client()
    pages: dict[str, str] = {}
    pages["login"] = client.get("/auth/login").get_data(as_text=True)
    pages["login-error"] = client.post("/auth/otp", data={"email": "x"}).get_data(as_text=True)
    pages["verify"] = client.get("/auth/otp/verify").get_data(as_text=True)
    client.post("/auth/otp", json={"email": EMAIL})
    pages["verify-error"] = client.post(
        "/auth/otp/verify", data={"email": EMAIL, "code": "1"}
    ).get_data(as_text=True)
    pages["check-email"] = client.get("/auth/magic-link").get_data(as_text=True)
    client.post("/auth/magic-link", json={"email": EMAIL})
    link = link_in(outbox[-1])
    pages["confirm"] = client.get(link).get_data(as_text=True)
    pages["bad-link"] = client.get(link + "x").get_data(as_text=True)
    for n, message in enumerate(outbox):
        pages[f"email-{n}"] = message.html_body or ""
    return pages


def test_pages_and_emails_use_no_external_assets(
    plain_app: Flask, outbox: list[RecordedMessage]
) -> None:
    pages = every_page(plain_app, outbox)
    assert len(pages) == 9, sorted(pages)
    for name, html in pages.items():
        assert html, name
        assert_no_external_assets(html)


def test_dev_outbox_page_uses_no_external_assets(make_app: AppFactory) -> None:
    client = make_app().test_client()
    client.post("/auth/otp", json={"email": EMAIL})
    client.post("/auth/magic-link", json={"email": "bob@example.com"})
    html = client.get("/auth/dev/outbox").get_data(as_text=True)
    assert "<iframe" in html
    assert_no_external_assets(html)


def test_the_asset_check_can_fail() -> None:
    for html in (
        '<link rel="stylesheet" href="https://cdn.example/x.css">',
        '<script src="//cdn.example/x.js"></script>',
        '<img src="http://tracker.example/p.gif">',
        "<style>@import url(https://fonts.example/x.css);</style>",
        "<style>body { background: url('//img.example/bg.png') }</style>",
    ):
        with pytest.raises(AssertionError):
            assert_no_external_assets(html)


@pytest.fixture
def client(plain_app: Flask) -> FlaskClient:
    return plain_app.test_client()
