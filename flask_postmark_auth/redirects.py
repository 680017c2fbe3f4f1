"""Which ``next`` targets are safe to redirect to after sign-in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def _parses_the_same(original: str, decoded: str) -> bool:
    a, b = urlsplit(original), urlsplit(decoded)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc) and not decoded.startswith("//")


def safe_next(
    target: object,
    *,
    scheme: str,
    host: str,
    allowed_hosts: Iterable[str] = (),
) -> str | None:
    """Return ``target`` when it is a path on this site, or a URL with the request's own
    scheme and host (or a host in ``allowed_hosts``); otherwise ``None``.

    Refused outright: backslashes and control characters anywhere, raw spaces, a ``//``
    start, schemes other than http(s), user info in the host, a port that is not a number,
    any target whose percent-decoded form parses to a different scheme or host, and
    anything the URL parser itself rejects (such as a malformed ``[`` host).
    """
    try:
        return _safe_next(target, scheme, host, allowed_hosts)
    except ValueError:
        return None


def _safe_next(target: object, scheme: str, host: str, allowed_hosts: Iterable[str]) -> str | None:
    if not isinstance(target, str) or not target or len(target) > 2048 or " " in target:
        return None
    decoded = target
    for _ in range(3):  # double-encoded tricks
        if _UNSAFE_CHARS.search(decoded) or decoded.startswith("//"):
            return None
        once = unquote(decoded)
        if once == decoded:
            break
        if not _parses_the_same(decoded, once):
            return None
        decoded = once
    else:
        return None
    parts = urlsplit(target)
    if not parts.scheme and not parts.netloc:
        return target if target.startswith("/") else None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if "@" in parts.netloc:
        return None
    parts.port  # noqa: B018 - a port that is not a number ("host:evil") raises ValueError
    netloc = parts.netloc.lower()
    if parts.scheme.lower() == scheme.lower() and netloc == host.lower():
        return target
    if (parts.hostname or "") in {h.lower() for h in allowed_hosts}:
        return target
    return None
