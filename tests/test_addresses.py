"""The address rules of sign-in and flows (SPEC section 7): NFKC, email-validator, lower-case;
display names, comments, lists, quoted local parts and CR/LF refused."""

from __future__ import annotations

import pytest

from flask_postmark_auth.addresses import mask_email, normalize_email
from flask_postmark_auth.errors import InvalidEmailError
from flask_postmark_auth.testing import record_messages
from tests.helpers import AppFactory

#: "ann@example.com" in full-width forms (each ASCII character + 0xFEE0).
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "ann@example.com")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann@Example.COM ", "ann@example.com"),
        (FULL_WIDTH, "ann@example.com"),  # full-width forms fold under NFKC
        ("ANN@EXAMPLE.COM", "ann@example.com"),
        ("ann+tag@sub.example.co.uk", "ann+tag@sub.example.co.uk"),
        ("ann@bücher.example", "ann@bücher.example"),
    ],
)
def test_addresses_are_normalized(given: str, expected: str) -> None:
    assert normalize_email(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "Ann <ann@example.com>",
        '"Ann" <ann@example.com>',
        "ann@example.com (Ann)",
        "ann@example.com, bob@example.com",
        "ann@example.com;bob@example.com",
        '"ann smith"@example.com',
        "ann@example.com\r\nBcc: evil@example.com",
        "ann@example.com\n",
        "\tann@example.com",
        "ann@example.com\x00",
        "ann@@example.com",
        "ann",
        "",
        "a" * 300 + "@example.com",
        None,
        42,
        ["ann@example.com"],
    ],
)
def test_anything_but_one_plain_address_is_refused(given: object) -> None:
    with pytest.raises(InvalidEmailError):
        normalize_email(given)


def test_one_person_has_one_key_whatever_the_spelling(make_app: AppFactory) -> None:
    app = make_app(RESEND_INTERVAL=30)
    client = app.test_client()
    with record_messages(app) as outbox:
        assert client.post("/auth/otp", json={"email": "Ann@Example.com"}).status_code == 202
        second = client.post("/auth/otp", json={"email": FULL_WIDTH})
    assert second.status_code == 429  # the same address: the resend interval applies
    assert [m.to for m in outbox] == ["ann@example.com"]


def test_addresses_are_masked_for_logs() -> None:
    assert mask_email("ann@example.com") == "a***@example.com"
    assert mask_email("nonsense") == "***"
