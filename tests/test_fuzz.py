"""Hypothesis fuzzing of every field of every sign-in POST route, as JSON and as forms.

Properties checked on every example:

* never a 5xx (the documented 503s need a broken store or Postmark, which these apps lack);
* a JSON request (or one preferring JSON) gets a JSON body, with ``error`` and ``message``
  on every 4xx; an HTML answer never shows a traceback nor echoes raw markup;
* no mail ever goes to an address that did not pass the package's own address rules
  (``normalize_email(to) == to``), and a send happens exactly when the address is valid;
* every redirect stays on this site.

One app per test function (throttles raised so they never interfere), examples share it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from flask_postmark_auth.addresses import normalize_email
from flask_postmark_auth.edge import MAX_BODY
from flask_postmark_auth.errors import InvalidEmailError
from flask_postmark_auth.redirects import safe_next
from flask_postmark_auth.testing import RecordedMessage, code_in, link_in, record_messages
from tests.helpers import AppFactory

EMAIL = "ann@example.com"
BIG = "a" * 100_000
XSS = "<script>alert(1)</script>"

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

#: Hand-picked hostile strings: empty, huge, NUL, CR/LF, confusables, lists, display
#: names, quoted local parts, comments, markup, open-redirect vectors.
TRICKY: list[str] = [
    "",
    " ",
    "\t",
    "\x00",
    "\x00" * 1000,
    "ann\x00@example.com",
    "ann@example.com\x00",
    "ann@example.com\r\nBcc: victim@example.net",
    "ann@example.com\n",
    "\r\nann@example.com",
    "\r\n",
    # full-width letters and at sign
    "\uff41\uff4e\uff4e\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    "ann\uff20example.com",
    "\u0430nn@example.com",  # Cyrillic a
    "ann@\u0435\u0445\u0430mple.com",  # Cyrillic e, x, a in the domain
    "ann\u200d@example.com",  # zero-width joiner
    "\u200dann@example.com",
    "ann@exa\u200bmple.com",  # zero-width space
    "\u202eann@example.com",  # right-to-left override
    "ann@example.com\u202e",
    "moc.elpmaxe@nna\u202e",
    "ANN@EXAMPLE.COM",
    "  Ann@Example.com  ",
    "a@x.com, b@x.com",
    "a@x.com,b@x.com",
    "a@x.com;b@x.com",
    "a@x.com b@x.com",
    "Ann <ann@example.com>",
    "<ann@example.com>",
    '"a@x.com" <b@y.com>',
    '"ann"@example.com',
    '"a b"@example.com',
    '"a@b"@example.com',
    "ann(comment)@example.com",
    "ann@example.com (comment)",
    "(comment)ann@example.com",
    "ann@[192.168.0.1]",
    "ann@localhost",
    "ann@@example.com",
    "@example.com",
    "ann@",
    "a" * 65 + "@example.com",
    "ann@" + "b" * 64 + ".com",
    BIG,
    BIG + "@example.com",
    "ann@" + BIG + ".com",
    XSS,
    XSS + "@example.com",
    '"><script>alert(1)</script>',
    "/",
    "/private",
    "/?a=b&c=d",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "http://evil.example/",
    "https://localhost/ok",
    "http://localhost/ok",
    "javascript:alert(1)",
    "http://[x",
    "https://[abc]/private",
    "http://localhost]/",
    "http://[::1]/",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "/\r\nSet-Cookie: x=1",
    "%0d%0aLocation:%20//evil.example",
    " /private",
    "/" + BIG,
    "\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width digits
    "123456",
    "000000",
    "1",
    "true",
    "on",
    "yes",
    "0",
    "false",
]


strings = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=40),
    st.emails(),
    st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=12), st.text(max_size=12)),
    st.builds(
        lambda a, b, c: f"{a}{b}{c}",
        st.sampled_from(["", " ", "\u200d", "\u202e", "\x00", "\r\n", "Ann <"]),
        st.sampled_from([EMAIL, "\uff41\uff4e\uff4e\uff20example.com", "bob@example.org"]),
        st.sampled_from(["", " ", "\u200d", "\u202e", "\x00", "\r\n", ">", ", c@x.com"]),
    ),
)
json_values = st.one_of(
    strings,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**40),
    st.floats(),
    st.lists(strings, max_size=3),
    st.dictionaries(st.text(max_size=6), strings, max_size=3),
)


def json_body(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


def form_body(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


# -- fixtures and checks ------------------------------------------------------------------


@pytest.fixture
def fuzz_app(make_app: AppFactory) -> Flask:
    # Examples share one app: no limit may carry one example's state into the next (the
    # daily guess budget is a multiple of OTP_MAX_ATTEMPTS).
    return make_app(
        IP_REQUESTS_PER_HOUR=10**9,
        RESEND_INTERVAL=0,
        EMAILS_PER_HOUR=10**9,
        OTP_MAX_ATTEMPTS=100,  # the most allowed: a budget of 300 guesses, > max_examples
    )


@pytest.fixture
def client(fuzz_app: Flask) -> FlaskClient:
    return fuzz_app.test_client()


@pytest.fixture
def mail(fuzz_app: Flask) -> Iterator[list[RecordedMessage]]:
    with record_messages(fuzz_app) as messages:
        yield messages


def valid(value: object) -> str | None:
    try:
        return normalize_email(value)
    except InvalidEmailError:
        return None


def post(
    client: FlaskClient,
    path: str,
    body: dict[str, Any],
    *,
    as_json: bool,
    prefer_json: bool = False,
    query: dict[str, str] | None = None,
) -> TestResponse:
    headers = {"Accept": "application/json"} if prefer_json else {}
    if as_json:
        return client.post(path, json=body, query_string=query, headers=headers)
    return client.post(path, data=body, query_string=query, headers=headers)


def check(response: TestResponse, mail: list[RecordedMessage], *, json_answer: bool) -> Any:
    """The properties every answer has; returns the JSON body (or None for HTML).

    A body over the sign-in limit is refused with 413 before anything reads it (and sends
    nothing); such an example is checked for that here, then dropped.
    """
    status = response.status_code
    assert status < 500, response.get_data(as_text=True)[:500]
    if status == 413:
        assert (response.request.content_length or 0) > MAX_BODY
        if json_answer:
            assert response.get_json()["error"] == "request_too_large"
        else:
            assert "Traceback" not in response.get_data(as_text=True)
        reject()
    for message in mail:
        assert normalize_email(message.to) == message.to
    body: Any = None
    if json_answer:
        assert response.is_json, (status, response.content_type)
        body = response.get_json()
        assert isinstance(body, dict)
        if 400 <= status < 500:
            assert isinstance(body.get("error"), str), body
            assert isinstance(body.get("message"), str), body
    else:
        text = response.get_data(as_text=True)
        assert "Traceback" not in text
        assert XSS not in text
        if 400 <= status < 500:
            assert response.mimetype == "text/html"
    if 300 <= status < 400:
        location = response.headers["Location"]
        assert "\\" not in location
        assert not location.startswith("//")
        parts = urlsplit(location)
        assert parts.scheme in ("", "http")
        assert parts.netloc in ("", "localhost")
    return body


def email_route_expectations(
    response: TestResponse,
    body: Any,
    sent: list[RecordedMessage],
    email: object,
    *,
    json_answer: bool,
    expires_in: int,
) -> None:
    """POST /otp and /magic-link: sent to the normalized address iff it is valid."""
    address = valid(email)
    if address is None:
        assert response.status_code == 400
        assert sent == []
        if json_answer:
            assert body["error"] == "invalid_email"
        return
    assert [m.to for m in sent] == [address]
    if json_answer:
        assert response.status_code == 202
        number = body.pop("number", None)
        assert body == {"status": "sent", "expires_in": expires_in}
        assert number is None if expires_in == 600 else 10 <= number <= 99
    else:
        assert response.status_code == 303


# -- POST /auth/otp and /auth/magic-link ----------------------------------------------------


SEND_ROUTES = [("/auth/otp", 600), ("/auth/magic-link", 900)]


@pytest.mark.parametrize(("path", "expires_in"), SEND_ROUTES)
@FUZZ
@given(body=json_body(email=json_values, next=json_values, extra=json_values))
def test_send_routes_json(
    client: FlaskClient,
    mail: list[RecordedMessage],
    path: str,
    expires_in: int,
    body: dict[str, Any],
) -> None:
    before = len(mail)
    response = post(client, path, body, as_json=True)
    answer = check(response, mail, json_answer=True)
    email_route_expectations(
        response, answer, mail[before:], body.get("email"), json_answer=True, expires_in=expires_in
    )


@pytest.mark.parametrize(("path", "expires_in"), SEND_ROUTES)
@FUZZ
@given(body=form_body(email=strings, next=strings), prefer_json=st.booleans())
def test_send_routes_form(
    client: FlaskClient,
    mail: list[RecordedMessage],
    path: str,
    expires_in: int,
    body: dict[str, Any],
    prefer_json: bool,
) -> None:
    before = len(mail)
    response = post(client, path, body, as_json=False, prefer_json=prefer_json)
    answer = check(response, mail, json_answer=prefer_json)
    email_route_expectations(
        response,
        answer,
        mail[before:],
        body.get("email"),
        json_answer=prefer_json,
        expires_in=expires_in,
    )


# -- POST /auth/otp/verify ----------------------------------------------------------------


def code_variants(code: str) -> list[str]:
    wide = "".join(chr(ord(c) - ord("0") + ord("\uff10")) for c in code)
    grouped = [f"{code[:3]} {code[3:]}", f"{code[:3]}-{code[3:]}", f"{code[:3]}.{code[3:]}"]
    return [code, f" {code}", f"{code}\n", f"{code}\x00", wide, code[:-1], code + "0", *grouped]


def as_pasted(code: object) -> object:
    """What the spec (section 15) reads a code as: NFKC, then spaces, hyphens and dots
    dropped; anything else as it is."""
    if not isinstance(code, str) or len(code) > 64:
        return code
    dashes = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212.\u00b7\u2022"
    kept = [c for c in unicodedata.normalize("NFKC", code) if not (c.isspace() or c in dashes)]
    return "".join(kept)


def truthy_remember(value: object) -> bool | None:
    """What ``remember`` should mean; None when the spec leaves it open (odd JSON types)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "on", "yes")
    return None


def signed_in_expectations(
    response: TestResponse,
    body: Any,
    given_next: list[object],
    remember: object,
    *,
    json_answer: bool,
) -> None:
    """A successful sign-in: status, a safe ``next``, and the remember cookie iff asked."""
    if json_answer:
        assert response.status_code == 200, body
        assert body["status"] == "signed_in"
        assert body["user"] == {"id": EMAIL, "email": EMAIL}
        target = body["next"]
    else:
        assert response.status_code == 303
        target = unquote(response.headers["Location"])
    # JSON gives ``next`` as it was kept; a redirect's Location is percent-encoded.
    candidates = [v if json_answer else unquote(v) for v in given_next if isinstance(v, str)]
    assert target == "/" or target in candidates, (target, given_next)
    if target != "/":
        assert safe_next(target, scheme="http", host="localhost") == target
    wanted = truthy_remember(remember)
    cookies = " ".join(response.headers.getlist("Set-Cookie"))
    if wanted is not None:
        assert ("remember_token=" in cookies) is wanted


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
@FUZZ
@given(
    data=st.data(),
    email=st.one_of(
        st.sampled_from(
            [EMAIL, "ANN@example.com", "\uff41\uff4e\uff4e\uff20example.com", " ann@example.com"]
        ),
        json_values,
    ),
    next_url=json_values,
    remember=json_values,
    present=st.sets(st.sampled_from(["email", "code", "next", "remember"])),
    prefer_json=st.booleans(),
)
def test_verify_code(
    client: FlaskClient,
    mail: list[RecordedMessage],
    as_json: bool,
    data: st.DataObject,
    email: object,
    next_url: object,
    remember: object,
    present: set[str],
    prefer_json: bool,
) -> None:
    client.post("/auth/otp", json={"email": EMAIL})
    real = code_in(mail[-1])
    variants = code_variants(real)  # as above: the strategy does not depend on the code
    picked = data.draw(
        st.one_of(st.integers(0, len(variants) - 1).map(lambda i: ("variant", i)), json_values),
        label="code",
    )
    variant = isinstance(picked, tuple) and len(picked) == 2 and picked[0] == "variant"
    code = variants[picked[1]] if variant else picked
    fields = {"email": email, "code": code, "next": next_url, "remember": remember}
    if not as_json:
        fields = {k: v for k, v in fields.items() if isinstance(v, str)}
    body = {k: v for k, v in fields.items() if k in present}
    before = len(mail)
    json_answer = as_json or prefer_json
    response = post(client, "/auth/otp/verify", body, as_json=as_json, prefer_json=prefer_json)
    answer = check(response, mail, json_answer=json_answer)
    assert len(mail) == before  # verifying never sends mail
    if valid(body.get("email")) == EMAIL and as_pasted(body.get("code")) == real:
        signed_in_expectations(
            response, answer, [body.get("next")], body.get("remember"), json_answer=json_answer
        )
    else:
        assert response.status_code == 400
        if json_answer:
            expected = "invalid_code" if valid(body.get("email")) else "invalid_email"
            assert answer["error"] == expected


# -- POST /auth/magic-link/<token> --------------------------------------------------------


path_tokens = st.one_of(
    st.sampled_from([t for t in TRICKY if t and "/" not in t]),
    st.text(min_size=1, max_size=60).filter(lambda t: "/" not in t),
    st.just("x" * 100_000),
)


def link_token(message: RecordedMessage) -> str:
    return link_in(message).rsplit("/", 1)[1]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
@FUZZ
@given(
    data=st.data(),
    next_url=json_values,
    query_next=st.one_of(st.none(), strings),
    remember=json_values,
    present=st.sets(st.sampled_from(["next", "remember"])),
    prefer_json=st.booleans(),
)
def test_magic_link_token(
    client: FlaskClient,
    mail: list[RecordedMessage],
    as_json: bool,
    data: st.DataObject,
    next_url: object,
    query_next: str | None,
    remember: object,
    present: set[str],
    prefer_json: bool,
) -> None:
    client.post("/auth/magic-link", json={"email": EMAIL})
    real = link_token(mail[-1])
    # What is drawn does not depend on this run's token (Hypothesis replays a choice
    # sequence, so the strategy must be the same in every run): a variant, applied after.
    variants = [real, real + "x", real[:-1], real.upper(), f"{real}\x00", f" {real}"]
    picked = data.draw(
        st.one_of(st.integers(0, len(variants) - 1), path_tokens), label="token variant"
    )
    token = variants[picked] if isinstance(picked, int) else picked
    fields = {"next": next_url, "remember": remember}
    if not as_json:
        fields = {k: v for k, v in fields.items() if isinstance(v, str)}
    body = {k: v for k, v in fields.items() if k in present}
    query = {"next": query_next} if query_next is not None else None
    path = "/auth/magic-link/" + quote(token, safe="")
    json_answer = as_json or prefer_json
    confirm = client.get(path, headers={"Accept": "application/json"} if json_answer else {})
    shown = check(confirm, mail, json_answer=json_answer)
    if json_answer:
        # The client that asked opens its own link: this device, nothing to approve.
        mine = {"valid": True, "email": EMAIL, "same_device": True, "can_approve": False}
        assert shown == (mine if token == real else {"valid": False})
    else:
        assert confirm.status_code == (200 if token == real else 400)
    response = post(client, path, body, as_json=as_json, prefer_json=prefer_json, query=query)
    answer = check(response, mail, json_answer=json_answer)
    if token == real:
        given_next: list[object] = [query_next] if query_next else [body.get("next")]
        signed_in_expectations(
            response, answer, given_next, body.get("remember"), json_answer=json_answer
        )
    else:
        assert response.status_code == 400
        if json_answer:
            assert answer["error"] == "invalid_link"


# -- POST /auth/logout --------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
@FUZZ
@given(body=json_body(next=json_values, extra=json_values), prefer_json=st.booleans())
def test_logout(
    client: FlaskClient,
    mail: list[RecordedMessage],
    as_json: bool,
    body: dict[str, Any],
    prefer_json: bool,
) -> None:
    if not as_json:
        body = {k: v for k, v in body.items() if isinstance(v, str)}
    json_answer = as_json or prefer_json
    response = post(client, "/auth/logout", body, as_json=as_json, prefer_json=prefer_json)
    answer = check(response, mail, json_answer=json_answer)
    if json_answer:
        assert response.status_code == 200
        assert answer == {"status": "signed_out"}
    else:
        assert response.status_code == 303
        location = unquote(response.headers["Location"])
        given_next = body.get("next")
        assert location == "/" or (isinstance(given_next, str) and location == unquote(given_next))


# -- bodies that are not an object --------------------------------------------------------


ALL_POST_ROUTES = [
    "/auth/otp",
    "/auth/otp/verify",
    "/auth/magic-link",
    "/auth/magic-link/some-token",
    "/auth/logout",
]
EXPECTED_ERROR = {
    "/auth/otp": "invalid_email",
    "/auth/otp/verify": "invalid_email",
    "/auth/magic-link": "invalid_email",
    "/auth/magic-link/some-token": "invalid_link",
}
json_documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), strings),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("path", ALL_POST_ROUTES)
@FUZZ
@given(document=json_documents.filter(lambda d: not isinstance(d, dict)))
def test_non_object_json_body(
    client: FlaskClient, mail: list[RecordedMessage], path: str, document: Any
) -> None:
    response = client.post(path, data=json.dumps(document), content_type="application/json")
    answer = check(response, mail, json_answer=True)
    assert mail == []
    if path == "/auth/logout":
        assert answer == {"status": "signed_out"}
    else:
        assert response.status_code == 400
        assert answer["error"] == EXPECTED_ERROR[path]


@pytest.mark.parametrize("path", ALL_POST_ROUTES)
@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"",
                b"{",
                b'{"email": "ann@example.com"',
                b"\xff\xfe\x00",
                b'{"email": "ann@example.com", "email": {"a": 1}}',
                b"NaN",
                b'"\\ud800"',
                b"1" * 5000,
            ]
        ),
    ),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "text/plain",
        ]
    ),
)
def test_raw_garbage_bodies(
    client: FlaskClient, mail: list[RecordedMessage], path: str, raw: bytes, content_type: str
) -> None:
    response = client.post(path, data=raw, content_type=content_type)
    check(response, mail, json_answer=content_type.startswith("application/json"))
    if path != "/auth/logout":
        assert response.status_code == 400


# -- bugs found by fuzzing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "csrf"),
    [(path, False) for path in EXPECTED_ERROR] + [("/auth/logout", True)],
)
def test_deeply_nested_json_body_is_not_a_500(fuzz_app: Flask, path: str, csrf: bool) -> None:
    fuzz_app.testing = False  # see the 500 a production app would send
    fuzz_app.config["WTF_CSRF_ENABLED"] = csrf  # with CSRF on, protect() reads every body
    client = fuzz_app.test_client()
    response = client.post(path, data=b"[" * 100_000, content_type="application/json")
    assert response.status_code < 500
    assert response.is_json


EXPECTED_STATUS = {
    "otp-json": 202,
    "otp-form": 303,
    "magic-link": 202,
    "verify": 200,
    "link": 200,
    "logout-form": 303,
}


@pytest.mark.parametrize("bad_next", ["http://[x", "https://[abc]/", "http://x]/"])
@pytest.mark.parametrize("send", list(EXPECTED_STATUS))
def test_next_with_a_malformed_bracketed_host_falls_back(
    fuzz_app: Flask, mail: list[RecordedMessage], send: str, bad_next: str
) -> None:
    """Regression: urlsplit() raises ValueError on these, and safe_next once let it escape
    (a 500, after the code or link was used up). Found by this file; fixed in 335782d."""
    client = fuzz_app.test_client()
    requests: dict[str, Callable[[], TestResponse]] = {
        "otp-json": lambda: client.post("/auth/otp", json={"email": EMAIL, "next": bad_next}),
        "otp-form": lambda: client.post("/auth/otp", data={"email": EMAIL, "next": bad_next}),
        "magic-link": lambda: client.post(
            "/auth/magic-link", json={"email": EMAIL, "next": bad_next}
        ),
        "logout-form": lambda: client.post("/auth/logout", data={"next": bad_next}),
    }
    if send == "verify":
        client.post("/auth/otp", json={"email": EMAIL})
        code = code_in(mail[-1])
        requests[send] = lambda: client.post(
            "/auth/otp/verify", json={"email": EMAIL, "code": code, "next": bad_next}
        )
    if send == "link":
        client.post("/auth/magic-link", json={"email": EMAIL})
        path = link_in(mail[-1])
        requests[send] = lambda: client.post(path, json={"next": bad_next})
    response = requests[send]()
    assert response.status_code == EXPECTED_STATUS[send]
    if send in ("verify", "link"):
        assert response.json is not None
        assert response.json["next"] == "/"
    if send == "logout-form":
        assert response.headers["Location"] == "/"
