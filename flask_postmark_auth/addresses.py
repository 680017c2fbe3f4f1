"""Email address rules: the strict form sign-in and flows accept, the mailbox form the
connector sends to, and masking for logs."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from .errors import InvalidEmailError, MessageValidationError
from .i18n import N_

#: Longest address accepted anywhere (RFC 5321's path limit).
MAX_ADDRESS_LENGTH = 254
#: Longest input looked at before normalization (room for surrounding spaces and for
#: characters that NFKC composes); anything longer is refused unread.
MAX_RAW_LENGTH = 2 * MAX_ADDRESS_LENGTH

_ATOM = r"[^\s\x00-\x1f\x7f@<>()\[\],;:\"\\]+"
_ADDR_SPEC = re.compile(rf"{_ATOM}@{_ATOM}\.{_ATOM}")
_MAILBOX = re.compile(
    r"\s*(?:(?P<name>\"(?:[^\"\\]|\\.)*\"|[^<>\",;:@]*?)\s*<(?P<addr>[^<>]*)>)\s*"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control_chars(value: str) -> bool:
    """True when ``value`` holds CR, LF or another control character."""
    return _CONTROL.search(value) is not None


def normalize_email(value: object) -> str:
    """Return the canonical form of one plain address, or raise :class:`InvalidEmailError`.

    NFKC first (so look-alike full-width characters collapse), then email-validator's syntax
    check and normalization (no DNS), then lower-case whole so one person has one key.
    Display names, comments, quoted local parts, lists and control characters are refused.
    """
    if not isinstance(value, str):
        raise InvalidEmailError(N_("Enter an email address."))
    if len(value) > MAX_RAW_LENGTH:
        # Checked before NFKC, which can multiply a string's length (U+FDFA becomes 18
        # characters): no input may cost more than a short one to refuse.
        raise InvalidEmailError(N_("Enter a valid email address."))
    return _normalize(value)


@lru_cache(maxsize=4096)
def _normalize(value: str) -> str:
    # Cached: a sign-in normalizes the same address when the code is asked for and again
    # when it is typed; only valid results are kept (a refusal raises, and is not cached).
    text = unicodedata.normalize("NFKC", value).strip(" ")
    if not text:
        raise InvalidEmailError(N_("Enter an email address."))
    if len(text) > MAX_ADDRESS_LENGTH or has_control_chars(text):
        raise InvalidEmailError(N_("Enter a valid email address."))
    if any(c in text for c in '<>(),;:"\\ '):
        raise InvalidEmailError(N_("Enter one plain email address, like name@example.com."))
    try:
        info = validate_email(text, check_deliverability=False, allow_quoted_local=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(N_("Enter a valid email address.")) from exc
    return info.normalized.lower()


def check_mailbox(value: str, field: str) -> str:
    """Check one mailbox (``addr`` or ``Name <addr>``) for a Postmark header; return it."""
    if not isinstance(value, str):
        raise MessageValidationError(f"{field} must be a string, not {type(value).__name__}.")
    if len(value) <= MAX_ADDRESS_LENGTH and _ADDR_SPEC.fullmatch(value):
        return value  # the common case, a bare address: one match checks it all
    if has_control_chars(value):
        raise MessageValidationError(f"{field} must not contain CR, LF or control characters.")
    addr = mailbox_address(value)
    if addr is None:
        raise MessageValidationError(
            f"{field} must be one address such as 'name@example.com' or "
            f"'Name <name@example.com>'; give a list for several recipients."
        )
    return value


def mailbox_address(value: str) -> str | None:
    """The bare address in ``addr`` or ``Name <addr>``, or ``None`` when it is not one."""
    text = value.strip()
    if "<" in text:
        match = _MAILBOX.fullmatch(text)
        if match is not None:
            text = match.group("addr").strip()
    if len(text) > MAX_ADDRESS_LENGTH or _ADDR_SPEC.fullmatch(text) is None:
        return None
    return text


_ANY_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"'`]+@[^\s@<>()\[\],;:\"'`]+")


def scrub_addresses(text: str) -> str:
    """``text`` with every address in it masked: for logging error messages from elsewhere
    (Postmark's own texts name the recipient)."""
    return _ANY_ADDRESS.sub(lambda match: mask_email(match.group(0)), text)


def mask_email(value: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``: enough to tell logs apart, no more."""
    local, sep, domain = value.rpartition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"
