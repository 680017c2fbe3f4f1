"""Magic links, and approving the browser that asked for one from another device.

A link carries a signed nonce; the store keeps ``link:<nonce>`` (the address, the pending
``next``, the number the asking browser shows) until the link is used, once.

The browser that asks gets a *waiter*, a random secret kept in its session; the link's nonce
is derived from it (:func:`waiter_nonce`), so the same browser is recognised when it opens
the link, and nothing in the email identifies it. Opened elsewhere, the link may *approve*
the waiter instead of signing in there: the number the waiting page shows must be typed (a
wrong one voids the link), the link record is taken (so approving, approving again and
signing in on the phone exclude each other) and ``link-ok:<nonce>`` is written, which the
waiting browser's next poll of its status takes, once, to sign in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .store import Store
from .tokens import LinkSigner, code_digits, new_nonce

#: Context of the hash that turns a browser's waiter secret into its link's nonce.
WAITER_CONTEXT = b"flask-postmark-auth.link-waiter\x00"
#: The numbers a waiting page shows (two digits; 10 to 99).
NUMBERS = range(10, 100)


def new_waiter() -> str:
    """A waiter secret for the session of a browser that asks for a link (256 bits)."""
    return secrets.token_urlsafe(32)


def waiter_nonce(secret: str) -> str:
    """The link nonce of the waiter ``secret``: knowing it does not make a link (that takes
    the app's key), and the store holds only the nonce, never the secret."""
    digest = hashlib.sha256(WAITER_CONTEXT + secret.encode()).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


def new_number() -> int:
    """The number a waiting page shows, for its approval elsewhere."""
    return NUMBERS[secrets.randbelow(len(NUMBERS))]


def read_number(value: object) -> int | None:
    """A typed number (``42``, ``"42"``, ``" 4 2 "``, full-width digits), or ``None`` when
    the input is not a two-digit number at all (a typo, which voids nothing)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    digits = code_digits(value, 2)
    return int(digits) if digits is not None and int(digits) in NUMBERS else None


@dataclass(frozen=True)
class LinkView:
    """What opening a link shows, before anything changes."""

    email: str
    #: The browser that asked for the link opened it.
    same_device: bool
    #: The link may approve the browser that asked (it has a waiting browser and a number).
    can_approve: bool


class MagicLinks:
    """The link records in the store, and the tokens that point at them."""

    def __init__(
        self,
        store: Store,
        secret_keys: Callable[[], Sequence[str | bytes]],
        ttl: int,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._secret_keys = secret_keys
        self._signer_cache: tuple[tuple[str | bytes, ...], LinkSigner] | None = None

    def _signer(self) -> LinkSigner:
        """The link signer for the current keys, made again only when the keys change."""
        keys = tuple(self._secret_keys())
        cached = self._signer_cache
        if cached is None or cached[0] != keys:
            cached = self._signer_cache = (keys, LinkSigner(keys, self.store.clock))
        return cached[1]

    def _nonce(self, token: object) -> str | None:
        if not isinstance(token, str) or len(token) > 512:
            return None
        return self._signer().loads(token, self.ttl)

    def issue(
        self, address: str, next_url: str | None, waiter: str | None, number: int | None
    ) -> tuple[str, str]:
        """Store a link for ``address``; its store key and its token. With ``waiter`` (and
        its ``number``) the link can approve that browser from another device."""
        nonce = waiter_nonce(waiter) if waiter else new_nonce()
        record: dict[str, Any] = {"email": address, "next": next_url}
        if waiter and number is not None:
            record.update(number=number, until=self.store.clock() + self.ttl)
        key = f"link:{nonce}"
        self.store.set(key, json.dumps(record), self.ttl)
        return key, self._signer().dumps(nonce)

    def view(self, token: object, waiter: str | None) -> LinkView | None:
        """What the link ``token`` would do when opened in the browser of ``waiter``;
        ``None`` for a bad, expired or used link. Changes nothing."""
        nonce = self._nonce(token)
        raw = self.store.get(f"link:{nonce}") if nonce is not None else None
        if raw is None:
            return None
        record = json.loads(raw)
        same = waiter is not None and hmac.compare_digest(waiter_nonce(waiter), str(nonce))
        return LinkView(
            email=record["email"],
            same_device=same,
            can_approve=not same and record.get("number") is not None,
        )

    def take(self, token: object) -> dict[str, Any] | None:
        """The link's record, taken from the store (once, whoever else tries at once)."""
        nonce = self._nonce(token)
        raw = self.store.pop(f"link:{nonce}") if nonce is not None else None
        return None if raw is None else dict(json.loads(raw))

    def approve(self, token: object, number: int) -> tuple[str, bool] | None:
        """Approve the waiting browser with the number it shows: ``(address, True)``; a
        wrong number takes the link all the same (``(address, False)``). ``None`` when the
        link is bad, used, expired, or has no waiting browser (then it is left alone)."""
        nonce = self._nonce(token)
        key = f"link:{nonce}"
        raw = self.store.get(key) if nonce is not None else None
        record = json.loads(raw) if raw is not None else {}
        if record.get("number") is None:
            return None
        if self.store.pop(key, expected=raw) is None:
            return None  # used or approved meanwhile
        address = str(record["email"])
        if not hmac.compare_digest(str(number), str(record["number"])):
            return address, False
        left = float(record["until"]) - self.store.clock()
        if left <= 0:
            return None
        approved = {"email": address, "next": record.get("next")}
        self.store.set(f"link-ok:{nonce}", json.dumps(approved), left)
        return address, True

    def status(self, waiter: str) -> dict[str, Any] | str | None:
        """For the waiting browser: its approval, taken from the store once (a dict with
        ``email`` and ``next``); ``"pending"`` while its link is out; ``None`` when the link
        expired, was used elsewhere or voided."""
        nonce = waiter_nonce(waiter)
        key = f"link-ok:{nonce}"
        raw = self.store.get(key)
        if raw is not None:
            taken = self.store.pop(key, expected=raw)
            return None if taken is None else dict(json.loads(taken))
        return "pending" if self.store.get(f"link:{nonce}") is not None else None
