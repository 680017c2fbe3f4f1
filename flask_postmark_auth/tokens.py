"""Secrets that sign people in: one-time codes (kept only as keyed hashes) and magic-link
tokens (itsdangerous-signed, timestamped, carrying a nonce the store consumes once)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from .store.base import Clock

#: Salt of magic-link signatures, so no other signed value of the app can pass as a link.
LINK_SALT = "flask-postmark-auth.magic-link"
#: Context of the code hashing key, derived from SECRET_KEY.
CODE_KEY_CONTEXT = b"flask-postmark-auth.otp"


def new_code(length: int) -> str:
    """A uniformly random code of ``length`` digits, from :mod:`secrets`."""
    return f"{secrets.randbelow(10**length):0{length}d}"


#: What a pasted code may carry besides its digits: spaces, hyphens (and dashes) and dots.
_CODE_FILLER = re.compile(r"[\s\-\u2010-\u2015\u2212.\u00b7\u2022]+")
#: Longer input is not a code however it is spaced (and is not normalized at all).
_CODE_MAX_INPUT = 64


def code_digits(code: object, length: int) -> str | None:
    """The ``length`` ASCII digits of a typed or pasted code (``"123 456"``, ``"123-456"``,
    ``" 123456 "``, full-width digits: NFKC, then spaces, hyphens and dots dropped), or
    ``None`` when the input is not a code of that shape."""
    if not isinstance(code, str) or len(code) > _CODE_MAX_INPUT:
        return None
    digits = _CODE_FILLER.sub("", unicodedata.normalize("NFKC", code))
    ok = len(digits) == length and digits.isascii() and digits.isdigit()
    return digits if ok else None


def new_nonce() -> str:
    """A random, URL-safe nonce with 192 bits of entropy."""
    return secrets.token_urlsafe(24)


def _to_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


@lru_cache(maxsize=16)
def _code_key(secret_key: bytes) -> bytes:
    return hmac.new(secret_key, CODE_KEY_CONTEXT, hashlib.sha256).digest()


def _code_digest(secret_key: str | bytes, email: str, code: str) -> bytes:
    key = _code_key(_to_bytes(secret_key))
    return hmac.new(key, f"{email}\x00{code}".encode(), hashlib.sha256).digest()


def code_hash(secret_key: str | bytes, email: str, code: str) -> str:
    """The keyed hash under which a code is kept: HMAC-SHA256 with a key derived from the
    app's secret key, over the address and the code (so equal codes never hash alike),
    its first 128 bits in 22 URL-safe base64 characters."""
    return base64.urlsafe_b64encode(_code_digest(secret_key, email, code)[:16]).decode()[:22]


def code_matches(secret_keys: Sequence[str | bytes], email: str, code: str, stored: str) -> bool:
    """Constant-time check of ``code`` against ``stored`` under the current key or a
    fallback (``stored`` may also be the 64 hex digits of earlier releases)."""
    found = False
    for key in secret_keys:
        # No early exit: every key is tried, so timing does not tell which one matched.
        if len(stored) == 64:
            kept = _code_digest(key, email, code).hex()
        else:
            kept = code_hash(key, email, code)
        found |= hmac.compare_digest(kept, stored)
    return found


class LinkSigner:
    """Signs and checks magic-link tokens with the app's secret key and its fallbacks."""

    def __init__(self, secret_keys: Sequence[str | bytes], clock: Clock) -> None:
        class _ClockSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        # itsdangerous signs with the last key and accepts any of them.
        self._serializer = URLSafeTimedSerializer(
            [_to_bytes(k) for k in reversed(secret_keys)], salt=LINK_SALT, signer=_ClockSigner
        )

    def dumps(self, nonce: str) -> str:
        return self._serializer.dumps(nonce)

    def loads(self, token: str, max_age: int) -> str | None:
        """The nonce of a valid, unexpired token; ``None`` when tampered, foreign or old."""
        try:
            nonce = self._serializer.loads(token, max_age=max_age)
        except BadSignature:  # SignatureExpired and BadTimeSignature included
            return None
        return nonce if isinstance(nonce, str) else None


#: The shortest ``SECRET_KEY`` accepted in production, in bytes.
MIN_SECRET_KEY_BYTES = 16
#: The fewest distinct characters a production ``SECRET_KEY`` may have.
MIN_SECRET_KEY_DISTINCT = 8
#: Values copied from tutorials and templates: anyone can sign sessions with them.
PLACEHOLDER_KEYS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "change-me-in-production",
        "change-this",
        "replace-me",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "super-secret",
        "supersecret",
        "super-secret-key",
        "my-secret-key",
        "mysecretkey",
        "your-secret-key",
        "your_secret_key",
        "your-secret-key-here",
        "dev",
        "dev-key",
        "dev-secret",
        "dev-secret-key",
        "development",
        "development-key",
        "default",
        "insecure",
        "password",
        "test",
        "testing",
        "flask",
        "not-a-secret",
        "notasecret",
        "this-is-a-secret",
        "this-is-not-secret",
    }
)


#: Words a placeholder key is made of ("change-me-in-prod", "your-secret-key-123"): no
#: random key holds them.
PLACEHOLDER_MARKERS = (
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replace_me",
    "replaceme",
    "your-secret",
    "your_secret",
    "secret-key",
    "secret_key",
    "secretkey",
    "do-not-use",
    "not-secret",
    "notsecret",
    "insecure",
    "placeholder",
)


def weak_key_reason(secret_key: object) -> str | None:
    """Why ``secret_key`` is too weak to sign sessions and links in production, or ``None``.

    Anyone who knows or guesses the key can forge a Flask session, and so sign in as
    anyone: a known placeholder, a short key or one with few distinct characters is refused.
    """
    if not secret_key:
        return "is not set"
    raw = _to_bytes(secret_key) if isinstance(secret_key, (str, bytes)) else None
    if raw is None:
        return f"must be a string or bytes, not {type(secret_key).__name__}"
    text = raw.strip().lower().decode("utf-8", "replace")
    if text in PLACEHOLDER_KEYS or any(marker in text for marker in PLACEHOLDER_MARKERS):
        return "is a well-known placeholder"
    if len(raw) < MIN_SECRET_KEY_BYTES:
        return f"is {len(raw)} bytes long; use at least {MIN_SECRET_KEY_BYTES}"
    if len(set(raw)) < MIN_SECRET_KEY_DISTINCT:
        return f"has fewer than {MIN_SECRET_KEY_DISTINCT} distinct characters"
    return None
