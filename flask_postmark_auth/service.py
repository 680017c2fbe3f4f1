"""The sign-in service: codes, links, throttles, users and delivery, in one place.

Views and the CLI call it; it uses the store and the connectors, and knows Flask only
through the settings it was built from (plus the app, to send in the background).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from flask import Flask
from jinja2 import Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from . import signals
from .addresses import mask_email, normalize_email
from .connector import PostmarkConnector, SendResult
from .delivery import BackgroundPool, SendJob
from .errors import (
    ConfigurationError,
    DeliveryFailedError,
    InvalidCodeError,
    InvalidEmailError,
    InvalidLinkError,
    MessageValidationError,
    PostmarkError,
    ThrottledError,
)
from .flows import Flow, FlowResult, RenderedStep
from .flows import run_flow as run_flow_steps
from .redirects import safe_next as safe_target
from .settings import Settings, key
from .store import Store
from .tokens import LinkSigner, code_hash, code_matches, new_code, new_nonce
from .users import UserDirectory

log = logging.getLogger("flask_postmark_auth")

HOUR = 3600
#: Seconds between two sweeps of expired entries, per process (stores without native
#: expiry only), so the store stays flat without a cron job.
PURGE_INTERVAL = 60
#: The two methods and how each names itself in keys, tags and signals.
OTP = "otp"
MAGIC_LINK = "magic_link"
_TAGS = {OTP: "otp", MAGIC_LINK: "magic-link"}


@dataclass(frozen=True)
class Sent:
    """A sign-in email was (or, to the caller, looks as if it was) sent."""

    expires_in: int


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, where to go next, and whether the account is new."""

    user: Any
    email: str
    next: str
    method: str
    created: bool


@dataclass(frozen=True)
class Origin:
    """What the service needs to know of the request."""

    ip: str | None
    scheme: str
    host: str


class SignInService:
    """Passwordless sign-in for one app."""

    def __init__(
        self,
        *,
        app: Flask,
        settings: Settings,
        store: Store,
        connectors: Mapping[str, PostmarkConnector],
        users: UserDirectory,
        secret_keys: Callable[[], Sequence[str | bytes]],
        background: BackgroundPool | None = None,
        flows: Mapping[str, Flow] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.store = store
        self.connectors = connectors
        self.users = users
        self._secret_keys = secret_keys
        self._background = background
        self.flows: Mapping[str, Flow] = flows or {}
        self._next_purge = store.clock() + PURGE_INTERVAL
        self._signer_cache: tuple[tuple[str | bytes, ...], LinkSigner] | None = None
        self._display_names = {
            method: parseaddr(connectors[name].from_email)[0].strip()
            for method, name in (
                (OTP, settings.otp_connector),
                (MAGIC_LINK, settings.magic_link_connector),
            )
        }
        subjects = SandboxedEnvironment(autoescape=False)
        self._subjects: dict[str, Template] = {}
        for method, name, source in (
            (OTP, "OTP_SUBJECT", settings.otp_subject),
            (MAGIC_LINK, "MAGIC_LINK_SUBJECT", settings.magic_link_subject),
        ):
            try:
                self._subjects[method] = subjects.from_string(source)
            except TemplateSyntaxError as exc:
                raise ConfigurationError(f"{key(name)}: {exc.message}; fix the Jinja.") from exc

    # -- throttles --------------------------------------------------------------------------

    def _count(self, ip: str | None, *more: tuple[str, float, int | None]) -> list[int]:
        """Count this sign-in POST from ``ip`` and one event on each ``(key, window, limit)``
        (``limit`` ``None``: count only), in one store round trip. Over any limit: the other
        counts are given back and :class:`ThrottledError` says when to retry. Returns the
        counts of ``more``."""
        self._maybe_purge()
        windows = [(key, window) for key, window, _ in more]
        limits: list[int | None] = [limit for _, _, limit in more]
        if ip:
            windows.insert(0, (f"ip:{ip}", HOUR))
            limits.insert(0, self.settings.ip_requests_per_hour)
        counts = self.store.hits(windows)
        waits = [
            left
            for (count, left), limit in zip(counts, limits, strict=True)
            if limit is not None and count > limit
        ]
        if waits:
            for key, _ in windows[1 if ip else 0 :]:
                self.store.unhit(key)
            raise ThrottledError(retry_after=_ceil(max(waits)))
        return [count for count, _ in counts[1 if ip else 0 :]]

    def _maybe_purge(self) -> None:
        """Drop expired entries at most once per :data:`PURGE_INTERVAL` (a race between two
        threads only purges twice)."""
        if not self.store.needs_purge:
            return
        now = self.store.clock()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            dropped = self.store.purge()
            log.debug("purged %d expired store entries", dropped)

    def _address(self, email: object, origin: Origin) -> str:
        """The normalized address; a refused one still counts against the client's IP."""
        try:
            return normalize_email(email)
        except InvalidEmailError:
            self._count(origin.ip)
            raise

    def _take_send_quota(self, method: str, address: str, origin: Origin) -> tuple[str, str]:
        """Count the POST and use up one send of ``method`` to ``address`` (hourly quota,
        resend interval); the same answer whoever owns the address."""
        quota = f"hour:{address}"
        resend = f"resend:{method}:{address}"
        interval = self.settings.resend_interval
        limits: list[tuple[str, float, int | None]] = [
            (quota, HOUR, self.settings.emails_per_hour)
        ]
        if interval:
            limits.append((resend, interval, 1))
        self._count(origin.ip, *limits)
        return resend, quota

    # -- one-time codes ---------------------------------------------------------------------

    def _request_sign_in(
        self,
        method: str,
        email: object,
        origin: Origin,
        ttl: int,
        issue: Callable[[str, bool], tuple[str, dict[str, str]] | None],
    ) -> Sent:
        """What asking for a code and asking for a link share: the throttles, the user
        look-up, the email and its signal, and giving the throttles back if anything fails.

        ``issue(address, may_send)`` stores the method's secret and returns its store key
        and what the email shows of it, or ``None`` when no email is to go.
        """
        address = self._address(email, origin)
        resend, quota = self._take_send_quota(method, address, origin)
        try:
            may_send, user = self._may_send(address)
            issued = issue(address, may_send)
            if issued is not None:
                key, secret = issued
                context = {**self._email_context(method, address, origin, ttl), **secret}
                self._send(method, address, context, release=((resend, key), (quota,)))
                sent = signals.code_sent if method == OTP else signals.magic_link_sent
                sent.send(self.app, email=address, user=user)
        except DeliveryFailedError:
            raise  # run_job gave the throttles back already
        except BaseException:
            self._give_back((resend,), (quota,))
            raise
        return Sent(expires_in=ttl)

    def request_code(self, email: object, next_url: object, origin: Origin) -> Sent:
        """Send a code to ``email`` if it may sign in; answer the same either way."""

        def issue(address: str, may_send: bool) -> tuple[str, dict[str, str]] | None:
            code = new_code(self.settings.otp_length)
            record = {
                "id": new_nonce(),
                # An address that gets no mail still gets a record (of a code nobody
                # knows), so verifying answers alike for every address.
                "hash": code_hash(self._secret_keys()[0], address, code),
                "next": self.safe_next(next_url, origin),
            }
            key = f"otp:{address}"
            self.store.set(key, json.dumps(record), self.settings.otp_ttl)
            return (key, {"code": code}) if may_send else None

        return self._request_sign_in(OTP, email, origin, self.settings.otp_ttl, issue)

    def verify_code(
        self, email: object, code: object, next_url: object, origin: Origin
    ) -> SignedIn:
        """Sign in with a code: each guess uses an attempt before it is compared, so
        concurrent guesses cannot exceed ``OTP_MAX_ATTEMPTS``; a right code is consumed
        with compare-and-delete, so it works exactly once."""
        address = self._address(email, origin)
        key = f"otp:{address}"
        raw = self.store.get(key)
        if raw is None:
            self._count(origin.ip)
            self._failed(address, OTP, "no code pending")
            raise InvalidCodeError(attempts_left=0)
        record = json.loads(raw)
        limit = self.settings.otp_max_attempts
        # Each guess is counted before it is compared. The counter, not deleting the record,
        # is what voids the code: a guess still in flight from within the limit must not
        # lose to a later one that went over it.
        tries_key = f"otp-tries:{address}:{record['id']}"
        [tries] = self._count(origin.ip, (tries_key, self.settings.otp_ttl, None))
        if tries > limit:
            self._failed(address, OTP, "too many attempts")
            raise InvalidCodeError(attempts_left=0)
        good = (
            isinstance(code, str)
            and len(code) == self.settings.otp_length
            and code.isascii()
            and code.isdigit()
            and code_matches(self._secret_keys(), address, code, record["hash"])
        )
        if not good:
            self._failed(address, OTP, "wrong code")
            raise InvalidCodeError(attempts_left=limit - tries)
        if self.store.take(key, expected=raw) is None:
            self._failed(address, OTP, "code already used")
            raise InvalidCodeError(attempts_left=0)
        target = self.safe_next(next_url, origin) or record.get("next")
        return self._finish(address, OTP, target, InvalidCodeError(attempts_left=0))

    # -- magic links ------------------------------------------------------------------------

    def _signer(self) -> LinkSigner:
        """The link signer for the current keys, made again only when the keys change."""
        keys = tuple(self._secret_keys())
        cached = self._signer_cache
        if cached is None or cached[0] != keys:
            cached = self._signer_cache = (keys, LinkSigner(keys, self.store.clock))
        return cached[1]

    def request_link(
        self,
        email: object,
        next_url: object,
        origin: Origin,
        link_for: Callable[[str], str],
    ) -> Sent:
        """Send a one-use sign-in link to ``email`` if it may sign in."""
        ttl = self.settings.magic_link_ttl

        def issue(address: str, may_send: bool) -> tuple[str, dict[str, str]] | None:
            if not may_send:
                return None
            nonce = new_nonce()
            key = f"link:{nonce}"
            record = {"email": address, "next": self.safe_next(next_url, origin)}
            self.store.set(key, json.dumps(record), ttl)
            return key, {"link": link_for(self._signer().dumps(nonce))}

        return self._request_sign_in(MAGIC_LINK, email, origin, ttl, issue)

    def _link_key(self, token: object) -> str | None:
        if not isinstance(token, str) or len(token) > 512:
            return None
        nonce = self._signer().loads(token, self.settings.magic_link_ttl)
        return None if nonce is None else f"link:{nonce}"

    def link_is_valid(self, token: object) -> bool:
        """Whether ``token`` would sign in now; changes nothing (for the confirm page)."""
        key = self._link_key(token)
        return key is not None and self.store.get(key) is not None

    def consume_link(self, token: object, next_url: object, origin: Origin) -> SignedIn:
        """Sign in with a link: its nonce is taken from the store atomically, once."""
        self._count(origin.ip)
        key = self._link_key(token)
        raw = self.store.take(key) if key is not None else None
        if raw is None:
            self._failed(None, MAGIC_LINK, "invalid, expired or used link")
            raise InvalidLinkError()
        record = json.loads(raw)
        target = self.safe_next(next_url, origin) or record.get("next")
        return self._finish(record["email"], MAGIC_LINK, target, InvalidLinkError())

    # -- shared steps -----------------------------------------------------------------------

    def _may_send(self, address: str) -> tuple[bool, Any]:
        user = self.users.find(address)
        if user is None:
            return self.users.may_sign_up(), None
        return bool(getattr(user, "is_active", True)), user

    def _finish(
        self, address: str, method: str, target: str | None, refusal: Exception
    ) -> SignedIn:
        user = self.users.find(address)
        created = False
        if user is None:
            if not self.users.may_sign_up():
                self._failed(address, method, "unknown address")
                raise refusal
            user, created = self.users.create(address)
            if created:
                signals.user_signed_up.send(self.app, user=user, email=address)
        if not getattr(user, "is_active", True):
            self._failed(address, method, "inactive user")
            raise refusal
        log.info("%s signed in by %s", mask_email(address), method)
        return SignedIn(
            user=user,
            email=address,
            next=target or self.settings.login_redirect,
            method=method,
            created=created,
        )

    def signed_in(self, result: SignedIn) -> None:
        """After Flask-Login has the user: the signal, then the triggered flows."""
        signals.user_signed_in.send(self.app, user=result.user, method=result.method)
        context = {"user": result.user, "email": result.email, "method": result.method}
        if result.created:
            self.run_triggered("signed_up", context)
        self.run_triggered("signed_in", context)

    def _give_back(self, delete: Sequence[str], unhit: Sequence[str]) -> None:
        """Undo what a send that never happened used: its resend wait, its hourly quota
        and its code or link."""
        for entry in delete:
            self.store.delete(entry)
        for entry in unhit:
            self.store.unhit(entry)

    def _failed(self, address: str | None, method: str, reason: str) -> None:
        log.info(
            "sign-in by %s failed for %s: %s",
            method,
            mask_email(address) if address else "an unknown address",
            reason,
        )
        signals.sign_in_failed.send(self.app, email=address, method=method, reason=reason)

    def safe_next(self, next_url: object, origin: Origin) -> str | None:
        return safe_target(
            next_url,
            scheme=origin.scheme,
            host=origin.host,
            allowed_hosts=self.settings.allowed_redirect_hosts,
        )

    def _email_context(
        self, method: str, address: str, origin: Origin, ttl: int
    ) -> dict[str, Any]:
        return {
            "email": address,
            "expires_in_minutes": max(1, ttl // 60),
            "request_ip": origin.ip,
            "app_name": self.app_name(method, origin),
        }

    def app_name(self, method: str, origin: Origin) -> str:
        """How emails name the app: the display name of the From address of the method's
        connector, else the host."""
        return self._display_names[method] or origin.host.split(":")[0]

    # -- delivery ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        address: str,
        context: dict[str, Any],
        release: tuple[tuple[str, ...], tuple[str, ...]],
    ) -> None:
        settings = self.settings
        template = settings.otp_template if method == OTP else settings.magic_link_template
        options: dict[str, Any] = {
            "to": address,
            "tag": _TAGS[method],
            "track_opens": False,
            "track_links": "None",
        }
        if template is not None:
            options.update(template=template, model=context)
        else:
            options.update(
                subject=self._subjects[method].render(context).strip(),
                text_body=self._render_email(f"{method}.txt", context),
                html_body=self._render_email(f"{method}.html", context),
            )
        connector = settings.otp_connector if method == OTP else settings.magic_link_connector
        self.deliver(
            SendJob(
                connector=connector,
                purpose=method,
                recipient=address,
                message=options,
                release_delete=release[0],
                release_unhit=release[1],
            )
        )

    def _render_email(self, name: str, context: dict[str, Any]) -> str:
        """Render an email template (the app's own file of that name wins) with exactly the
        documented context: no request context processors, so it costs little."""
        return self.app.jinja_env.get_template(f"postmark_auth/email/{name}").render(context)

    def deliver(self, job: SendJob) -> SendResult | None:
        """Hand ``job`` to the configured ``DELIVERY``: sent inline (its result returned),
        queued on the background pool, or passed to the app's callable (``None``)."""
        mode = self.settings.delivery
        if mode == "background" and self._background is not None:
            self._background.submit(self.app, self.run_job, job)
        elif callable(mode):
            mode(job)
        else:
            return self.run_job(job)
        return None

    def run_job(self, job: SendJob) -> SendResult | None:
        """Send ``job`` now and fire ``delivery_failed`` if it fails.

        For sign-in mail, a recipient's fault (inactive, invalid) counts as sent, so the
        answer does not reveal the address; a fault of the service gives back the throttles
        the send used and raises :class:`DeliveryFailedError`. Any other job (a flow step)
        raises the connector's error for its caller to report.
        """
        connector = self.connectors[job.connector]
        options = dict(job.message)
        try:
            if "template" in options:
                result = connector.send_template(
                    options.pop("to"), options.pop("template"), options.pop("model"), **options
                )
            else:
                result = connector.send(options.pop("to"), options.pop("subject"), **options)
        except (PostmarkError, MessageValidationError) as exc:
            signals.delivery_failed.send(
                self.app, email=job.recipient, error=exc, purpose=job.purpose
            )
            if job.purpose not in _TAGS:
                log.warning("%s to %s failed: %s", job.purpose, mask_email(job.recipient), exc)
                raise
            if isinstance(exc, PostmarkError) and exc.recipient_error:
                log.warning("Postmark refused mail for %s: %s", mask_email(job.recipient), exc)
                return None
            log.error("sending %s to %s failed: %s", job.purpose, mask_email(job.recipient), exc)
            self._give_back(job.release_delete, job.release_unhit)
            raise DeliveryFailedError() from exc
        log.info("sent %s to %s", job.purpose, mask_email(job.recipient))
        return result

    # -- flows ------------------------------------------------------------------------------

    def run_flow(self, flow: Flow, context: Mapping[str, Any]) -> FlowResult:
        """Run ``flow`` through ``DELIVERY``; fires ``flow_finished``."""

        def send(step: RenderedStep) -> str | None:
            job = SendJob(
                connector=step.connector,
                purpose=f"flow {flow.name!r} step {step.index + 1}",
                recipient=step.to or "",
                message=dict(step.message),
            )
            result = self.deliver(job)
            return None if result is None else result.message_id

        result = run_flow_steps(flow, context, send)
        for outcome in result.steps:
            if outcome.status == "failed":
                log.warning(
                    "flow %r step %d failed: %s", flow.name, outcome.index + 1, outcome.error
                )
        signals.flow_finished.send(self.app, flow=flow.name, result=result)
        return result

    def run_triggered(self, trigger: str, context: Mapping[str, Any]) -> None:
        """Run the flows of ``trigger``; a failing flow is logged, never raised."""
        for flow in self.flows.values():
            if flow.trigger != trigger:
                continue
            try:
                self.run_flow(flow, context)
            except Exception:
                log.exception("flow %r (trigger %s) failed", flow.name, trigger)


def _ceil(seconds: float) -> int:
    return max(1, int(-(-seconds // 1)))
