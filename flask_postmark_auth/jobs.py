"""Send jobs: :class:`SendJob`, plain data a queue can carry, and its sealed form for a task
queue, where it waits in a broker outside the app.

A sealed job is the job as JSON with its expiry and the store record it belongs to,
encrypted and authenticated with AES-256-GCM under a key derived (HKDF-SHA256) from
``SECRET_KEY``; opening tries ``SECRET_KEY`` and then each of ``SECRET_KEY_FALLBACKS``, so
jobs queued before a key rotation still go out. A broker that leaks, or keeps a job after
it failed, holds no readable code, link or address. Plain Python: no Flask here, and
``cryptography`` is imported only when a job is sealed or opened.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .store.base import revive

if TYPE_CHECKING:
    from .store import Store

#: What a sealed job starts with: the format's version, so a later one can be told apart.
SEALED_PREFIX = "fpa-job1."
#: HKDF ``info`` of the sealing key (and the AES-GCM associated data): a key derived for
#: jobs serves nothing else.
JOB_KEY_CONTEXT = b"flask-postmark-auth.send-job.v1"
#: How long a flow step's job stays good in a queue, in seconds (a sign-in job lives as long
#: as its code or link).
FLOW_JOB_TTL = 3600
_NONCE_BYTES = 12


@dataclass(frozen=True)
class SendJob:
    """One message to send, as plain data a queue can carry.

    ``connector`` is the name of the connector to send through. ``purpose`` says what the
    mail is: ``"otp"`` or ``"magic_link"`` for sign-in mail, else a flow step's name for the
    logs (``"flow 'welcome' step 1"``). ``recipient`` is the address, for the user lookup,
    the signals and the logs. ``message`` holds the keyword arguments of ``send``, ``to`` and
    ``subject`` included (of ``send_template`` when ``template`` is among them); it is empty
    for sign-in mail, composed from ``context`` (the email's template context, the code or
    link included) when the job runs, once it is known that the address gets mail.

    ``release_delete`` (store keys to delete) and ``release_unhit`` (counters to take a hit
    back from) are what to undo if the service fails: for sign-in mail, its resend wait and
    hourly quota, and its code's or link's record (the last key of ``release_delete``).
    :meth:`to_dict` and :meth:`from_dict` make it a JSON-safe payload for Celery or RQ."""

    connector: str
    purpose: str
    recipient: str
    message: dict[str, Any]
    release_delete: tuple[str, ...] = ()
    release_unhit: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The job as a dict of its fields, for a JSON serializer; :meth:`from_dict` reads
        it back. A sign-in job's ``context`` holds its code or link in clear text, so a
        broker outside the app should get the sealed form instead (what the deliveries of
        :mod:`flask_postmark_auth.tasks` send)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SendJob:
        """The job :meth:`to_dict` gave ``data`` for, after a trip through JSON (the
        ``release_*`` lists become tuples of store names again, members of a group
        included; missing ones and ``context`` mean empty).
        Raises :class:`KeyError` when ``connector``, ``purpose``, ``recipient`` or
        ``message`` is missing."""
        return cls(
            connector=data["connector"],
            purpose=data["purpose"],
            recipient=data["recipient"],
            message=dict(data["message"]),
            release_delete=tuple(revive(key) for key in data.get("release_delete", ())),
            release_unhit=tuple(revive(key) for key in data.get("release_unhit", ())),
            context=dict(data.get("context", {})),
        )


@dataclass(frozen=True)
class OpenedJob:
    """A sealed job, opened: the job, when it stops being worth sending (store-clock
    seconds), and the store entry (``key``, with the ``record`` fingerprint it had when the
    job was queued) it must still match; ``key`` is ``None`` for a job tied to no entry."""

    job: SendJob
    expires_at: float
    key: str | None = None
    record: str | None = None


def fingerprint(raw: str | None) -> str | None:
    """What identifies one stored record (a code's or a link's): SHA-256 of its raw value.
    A new code for the address, or a used or expired one, no longer matches."""
    return None if raw is None else hashlib.sha256(raw.encode()).hexdigest()


def _to_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


@lru_cache(maxsize=16)
def _aead(secret_key: bytes) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=JOB_KEY_CONTEXT)
    return AESGCM(derived.derive(secret_key))


def seal(
    job: SendJob,
    secret_key: str | bytes,
    *,
    expires_at: float,
    key: str | None = None,
    record: str | None = None,
) -> str:
    """``job`` sealed with ``secret_key`` (the app's current ``SECRET_KEY``): URL-safe
    text, fit for any broker and serializer."""
    plain = json.dumps(
        {"job": job.to_dict(), "exp": expires_at, "key": key, "record": record},
        separators=(",", ":"),
    ).encode()
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = _aead(_to_bytes(secret_key)).encrypt(nonce, plain, JOB_KEY_CONTEXT)
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(sealed: object, secret_keys: Sequence[str | bytes]) -> OpenedJob | None:
    """The job sealed in ``sealed``, opened with the first of ``secret_keys`` that
    authenticates it; ``None`` when none does (tampered with, truncated, or sealed by
    another app), so a forged job is never sent."""
    from cryptography.exceptions import InvalidTag

    if not isinstance(sealed, str) or not sealed.startswith(SEALED_PREFIX):
        return None
    try:
        raw = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :].encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(raw) <= _NONCE_BYTES:
        return None
    nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for secret_key in secret_keys:
        try:
            plain = _aead(_to_bytes(secret_key)).decrypt(nonce, body, JOB_KEY_CONTEXT)
        except InvalidTag:
            continue
        data = json.loads(plain)
        return OpenedJob(
            job=SendJob.from_dict(data["job"]),
            expires_at=float(data["exp"]),
            key=data.get("key"),
            record=data.get("record"),
        )
    return None


def still_wanted(opened: OpenedJob, store: Store) -> bool:
    """True while the job's store entry holds the record it was queued for: False once its
    code or link was used, replaced by a newer one, or expired. A job tied to no entry (a
    flow step's) is always wanted; its expiry alone bounds it."""
    if opened.key is None:
        return True
    current = fingerprint(store.get(opened.key))
    return current is not None and hmac.compare_digest(current, opened.record or "")
