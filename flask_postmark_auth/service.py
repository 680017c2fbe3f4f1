"""The sign-in service: codes, links, throttles, users and delivery, in one place.

Views and the CLI call it; it uses the store and the connectors, and knows Flask only
through the settings it was built from (plus the app, to send in the background).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from jinja2 import Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from . import signals
from .addresses import mask_email, normalize_email, scrub_addresses
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
from .flows import Flow, FlowResult, RenderedStep, StepRateLimitedError
from .flows import run_flow as run_flow_steps
from .redirects import safe_next as safe_target
from .settings import Settings, key
from .store import Store
from .throttles import DAY, HOUR, ip_bucket, mailbox_key
from .tokens import LinkSigner, code_hash, code_matches, new_code, new_nonce
from .users import AddressMismatchError, EmailUser, UserDirectory

log = logging.getLogger("flask_postmark_auth")

#: Seconds between two sweeps of expired entries, per process (stores without native
#: expiry only), so the store stays flat without a cron job.
PURGE_INTERVAL = 60
#: The two methods and how each names itself in keys, tags and signals.
OTP = "otp"
MAGIC_LINK = "magic_link"
_TAGS = {OTP: "otp", MAGIC_LINK: "magic-link"}
#: Wrong guesses at one address's codes, in a day, before its codes pause for a day (in
#: units of ``OTP_MAX_ATTEMPTS``: three codes' worth). At the defaults that is 15 guesses a
#: day, so a year of steady guessing at a 6-digit code stays under 0.6%.
GUESS_BUDGET_CODES = 3


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
    """What the service needs to know of the request. ``scheme``, ``host`` and ``root``
    (the script root) serve only in debug or testing without a canonical URL."""

    ip: str | None
    scheme: str
    host: str
    root: str = ""


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
        self._canonical = urlsplit(settings.base_url) if settings.base_url else None
        self._link_path = settings.url_prefix.rstrip("/") + "/magic-link/"
        subjects = ImmutableSandboxedEnvironment(autoescape=False)
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
            windows.insert(0, (f"ip:{ip_bucket(ip)}", HOUR))
            limits.insert(0, self.settings.ip_requests_per_hour)
        counts = self.store.hits(windows)
        waits = [
            # Never longer than the window: another worker's clock may run a hair behind.
            min(left, window)
            for (count, left), (_, window), limit in zip(counts, windows, limits, strict=True)
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
        """Count the POST and use up one send of ``method`` to ``address``'s mailbox (hourly
        quota, resend interval); the same answer whoever owns the address."""
        mailbox = mailbox_key(address)
        quota = f"hour:{mailbox}"
        resend = f"resend:{method}:{mailbox}"
        interval = self.settings.resend_interval
        limits: list[tuple[str, float, int | None]] = [
            (quota, HOUR, self.settings.emails_per_hour)
        ]
        if interval:
            limits.append((resend, interval, 1))
        self._count(origin.ip, *limits)
        return resend, quota

    # -- asking for a code or a link ----------------------------------------------------------

    def _request_sign_in(
        self,
        method: str,
        email: object,
        origin: Origin,
        ttl: int,
        issue: Callable[[str], tuple[str, dict[str, str]]],
    ) -> Sent:
        """What asking for a code and asking for a link share: the throttles, one store
        write of the secret (``issue(address)`` returns its key and what the email shows of
        it) and one job handed to ``DELIVERY``, the same work for every address. Who the
        address belongs to, and whether it gets mail, is decided in the job
        (:meth:`run_job`), so with background delivery the answer's timing tells nothing.
        """
        address = self._address(email, origin)
        self.users.check()
        resend, quota = self._take_send_quota(method, address, origin)
        try:
            key, secret = issue(address)
            context = {**self._email_context(method, address, origin, ttl), **secret}
        except BaseException:
            self._give_back((resend,), (quota,))
            raise
        job = SendJob(
            connector=self._connector_name(method),
            purpose=method,
            recipient=address,
            message={},
            release_delete=(resend, key),
            release_unhit=(quota,),
            context=context,
        )
        self.deliver(job)  # a job that fails gives its throttles back itself
        return Sent(expires_in=ttl)

    def request_code(self, email: object, next_url: object, origin: Origin) -> Sent:
        """Send a code to ``email`` if it may sign in; answer the same either way."""
        self._refuse_paused(email, origin)

        def issue(address: str) -> tuple[str, dict[str, str]]:
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
            return key, {"code": code}

        return self._request_sign_in(OTP, email, origin, self.settings.otp_ttl, issue)

    def _refuse_paused(self, email: object, origin: Origin) -> None:
        """Codes for an address whose daily guess budget is spent pause for a day (links
        keep working): :class:`ThrottledError`, alike for every address."""
        try:
            address = normalize_email(email)
        except InvalidEmailError:
            return  # refused with the right error by _request_sign_in
        until = self.store.get(f"otp-pause:{address}")
        if until is not None:
            self._count(origin.ip)
            raise ThrottledError(retry_after=_ceil(float(until) - self.store.clock()))

    def request_link(self, email: object, next_url: object, origin: Origin) -> Sent:
        """Send a one-use sign-in link to ``email`` if it may sign in."""
        ttl = self.settings.magic_link_ttl

        def issue(address: str) -> tuple[str, dict[str, str]]:
            # Stored for every address (one write, like a code); the job deletes it
            # again when the address gets no mail.
            nonce = new_nonce()
            key = f"link:{nonce}"
            record = {"email": address, "next": self.safe_next(next_url, origin)}
            self.store.set(key, json.dumps(record), ttl)
            return key, {"link": self.link_url(self._signer().dumps(nonce), origin)}

        return self._request_sign_in(MAGIC_LINK, email, origin, ttl, issue)

    # -- signing in with a code -------------------------------------------------------------

    def verify_code(
        self, email: object, code: object, next_url: object, origin: Origin
    ) -> SignedIn:
        """Sign in with a code: each guess uses an attempt before it is compared, so
        concurrent guesses cannot exceed ``OTP_MAX_ATTEMPTS``; a right code is consumed
        with compare-and-delete, so it works exactly once. Guesses at one address also
        count against a daily budget, whose end pauses its codes for a day."""
        address = self._address(email, origin)
        key = f"otp:{address}"
        raw = self.store.get(key)
        if raw is None:
            self._count(origin.ip)
            self._failed(address, OTP, "no code pending")
            raise InvalidCodeError(attempts_left=0)
        record = json.loads(raw)
        limit = self.settings.otp_max_attempts
        budget = GUESS_BUDGET_CODES * limit
        # Each guess is counted before it is compared. The counter, not deleting the record,
        # is what voids the code: a guess still in flight from within the limit must not
        # lose to a later one that went over it.
        tries_key = f"otp-tries:{address}:{record['id']}"
        guesses_key = f"otp-guesses:{address}"
        tries, today = self._count(
            origin.ip, (tries_key, self.settings.otp_ttl, None), (guesses_key, DAY, None)
        )
        if tries > limit or today > budget:
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
            if today == budget:
                self._pause_codes(address, key)
            self._failed(address, OTP, "wrong code")
            raise InvalidCodeError(attempts_left=0 if today == budget else limit - tries)
        if self.store.take(key, expected=raw) is None:
            self._failed(address, OTP, "code already used")
            raise InvalidCodeError(attempts_left=0)
        self.store.delete(guesses_key)
        target = self.safe_next(next_url, origin) or record.get("next")
        return self._finish(address, OTP, target, InvalidCodeError(attempts_left=0))

    def _pause_codes(self, address: str, code_key: str) -> None:
        until = self.store.clock() + DAY
        self.store.set(f"otp-pause:{address}", repr(until), DAY)
        self.store.delete(code_key)
        log.warning(
            "%s: %d wrong codes in a day; its codes pause for a day (links still work)",
            mask_email(address),
            GUESS_BUDGET_CODES * self.settings.otp_max_attempts,
        )

    # -- magic links ------------------------------------------------------------------------

    def _signer(self) -> LinkSigner:
        """The link signer for the current keys, made again only when the keys change."""
        keys = tuple(self._secret_keys())
        cached = self._signer_cache
        if cached is None or cached[0] != keys:
            cached = self._signer_cache = (keys, LinkSigner(keys, self.store.clock))
        return cached[1]

    def link_url(self, token: str, origin: Origin) -> str:
        """The link an email carries: on the canonical URL, never on the request's Host."""
        return f"{self.base_url(origin)}{self._link_path}{token}"

    def _link_key(self, token: object) -> str | None:
        if not isinstance(token, str) or len(token) > 512:
            return None
        nonce = self._signer().loads(token, self.settings.magic_link_ttl)
        return None if nonce is None else f"link:{nonce}"

    def link_email(self, token: object) -> str | None:
        """The address ``token`` would sign in now, or ``None``; changes nothing (for the
        confirm page, which names the account)."""
        key = self._link_key(token)
        raw = self.store.get(key) if key is not None else None
        if raw is None:
            return None
        email: str = json.loads(raw)["email"]
        return email

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
        try:
            user = self.users.find(address)
        except AddressMismatchError:
            return False, None
        if user is None:
            return self.users.may_sign_up(), None
        return bool(getattr(user, "is_active", True)), user

    def _finish(
        self, address: str, method: str, target: str | None, refusal: Exception
    ) -> SignedIn:
        created = False
        try:
            user = self.users.find(address)
            if user is None:
                if not self.users.may_sign_up():
                    self._failed(address, method, "unknown address")
                    raise refusal
                user, created = self.users.create(address)
        except AddressMismatchError:
            self._failed(address, method, "the app's user has another address")
            raise refusal from None
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

    def signed_out(self, user: Any) -> None:
        """After Flask-Login signed ``user`` out: a built-in user's every other session and
        remember cookie stop working too."""
        if isinstance(user, EmailUser):
            self.users.revoke(user.email)

    def sign_out_everywhere(self, email: object) -> bool:
        """End every session and remember cookie of the built-in user ``email``; False
        when there is no such user."""
        if not self.users.builtin:
            raise RuntimeError(
                "auth.sign_out_everywhere() ends sessions of built-in users only; with your "
                "own user model, rotate the alternative id your get_id() returns (see the "
                "README's 'Revocable remember-me')."
            )
        return self.users.revoke(normalize_email(email))

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

    # -- the canonical URL ------------------------------------------------------------------

    def base_url(self, origin: Origin) -> str:
        """``BASE_URL`` (or the one built from ``SERVER_NAME``); only in debug or testing
        without either, the request's own scheme and host."""
        if self.settings.base_url is not None:
            return self.settings.base_url
        return f"{origin.scheme}://{origin.host}{origin.root}"

    def safe_next(self, next_url: object, origin: Origin) -> str | None:
        """``next_url`` when it is safe to redirect to (a path, or a URL on the canonical
        host or an allowed one), else ``None``."""
        site = self._canonical
        return safe_target(
            next_url,
            scheme=site.scheme if site else origin.scheme,
            host=site.netloc if site else origin.host,
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
        """How emails name the app: ``APP_NAME``, else the display name of the From address
        of the method's connector, else the canonical host (never the request's, outside
        debug and testing)."""
        if self.settings.app_name:
            return self.settings.app_name
        if self._display_names[method]:
            return self._display_names[method]
        if self._canonical is not None:
            return self._canonical.hostname or self._canonical.netloc
        return origin.host.rsplit(":", 1)[0] if origin.host.count(":") == 1 else origin.host

    # -- delivery ---------------------------------------------------------------------------

    def _connector_name(self, method: str) -> str:
        settings = self.settings
        return settings.otp_connector if method == OTP else settings.magic_link_connector

    def _compose(self, method: str, context: dict[str, Any]) -> dict[str, Any]:
        """The message of a sign-in email, from its context."""
        settings = self.settings
        template = settings.otp_template if method == OTP else settings.magic_link_template
        options: dict[str, Any] = {
            "to": context["email"],
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
        return options

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
            try:
                mode(job)
            except BaseException:
                self._give_back(job.release_delete, job.release_unhit)
                raise
        else:
            return self.run_job(job)
        return None

    def run_job(self, job: SendJob) -> SendResult | None:
        """Carry out ``job``: for sign-in mail, look the address up, decide whether it gets
        mail and compose it (all here, off the request path with background delivery), then
        send it; fire ``delivery_failed`` if sending fails.

        For sign-in mail, a recipient's fault (inactive, invalid) counts as sent, so the
        answer does not reveal the address; a fault of the service gives back the throttles
        the send used and raises :class:`DeliveryFailedError`. Any other job (a flow step)
        raises the connector's error for its caller to report.
        """
        if job.purpose not in _TAGS:
            return self._send(job)
        try:
            may_send, user = self._may_send(job.recipient)
            if not may_send:
                if job.purpose == MAGIC_LINK:
                    self.store.delete(job.release_delete[-1])  # a link nobody will get
                return None
            if not job.message:
                job = replace(job, message=self._compose(job.purpose, job.context))
        except BaseException:
            self._give_back(job.release_delete, job.release_unhit)
            raise
        result = self._send(job)
        sent = signals.code_sent if job.purpose == OTP else signals.magic_link_sent
        sent.send(self.app, email=job.recipient, user=user)
        return result

    def _send(self, job: SendJob) -> SendResult | None:
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
            reason = scrub_addresses(str(exc))  # Postmark's texts name the recipient
            if job.purpose not in _TAGS:
                log.warning("%s to %s failed: %s", job.purpose, mask_email(job.recipient), reason)
                raise
            if isinstance(exc, PostmarkError) and exc.recipient_error:
                log.warning("Postmark refused mail for %s: %s", mask_email(job.recipient), reason)
                return None
            log.error(
                "sending %s to %s failed: %s", job.purpose, mask_email(job.recipient), reason
            )
            self._give_back(job.release_delete, job.release_unhit)
            raise DeliveryFailedError() from exc
        log.info("sent %s to %s", job.purpose, mask_email(job.recipient))
        return result

    # -- flows ------------------------------------------------------------------------------

    def run_flow(
        self, flow: Flow, context: Mapping[str, Any], *, client_ip: str | None = None
    ) -> FlowResult:
        """Run ``flow`` through ``DELIVERY``; fires ``flow_finished``.

        ``client_ip`` is given for a run asked for by a request: the run then counts
        against the flow's per-IP limit and each message against its per-recipient limit
        (``FLOW_*_PER_HOUR`` or the flow's own ``rate_limit``), so a public form that runs a
        flow cannot be used to mail anyone anything. Over a limit, steps are
        ``rate_limited`` and the result's ``retry_after`` says when to try again.
        """
        per_recipient, per_ip = (
            flow_limits(flow, self.settings) if client_ip is not None else (None, None)
        )
        if per_ip is not None and client_ip:
            count, left = self.store.hit(f"flow-ip:{flow.name}:{ip_bucket(client_ip)}", HOUR)
            if count > per_ip:
                log.warning("flow %r: per-IP limit reached", flow.name)
                result = FlowResult.rate_limited(flow, _ceil(left))
                signals.flow_finished.send(self.app, flow=flow.name, result=result)
                return result

        def send(step: RenderedStep) -> str | None:
            to = step.to or ""
            if per_recipient is not None:
                count, left = self.store.hit(f"flow-to:{flow.name}:{mailbox_key(to)}", HOUR)
                if count > per_recipient:
                    raise StepRateLimitedError(_ceil(left))
            job = SendJob(
                connector=step.connector,
                purpose=f"flow {flow.name!r} step {step.index + 1}",
                recipient=to,
                message=dict(step.message),
            )
            sent = self.deliver(job)
            return None if sent is None else sent.message_id

        result = run_flow_steps(flow, context, send)
        for outcome in result.steps:
            if outcome.status == "failed":
                log.warning(
                    "flow %r step %d failed: %s",
                    flow.name,
                    outcome.index + 1,
                    scrub_addresses(str(outcome.error)),
                )
            elif outcome.status == "rate_limited":
                log.warning(
                    "flow %r step %d: per-recipient limit reached", flow.name, outcome.index + 1
                )
        signals.flow_finished.send(self.app, flow=flow.name, result=result)
        return result

    def run_triggered(self, trigger: str, context: Mapping[str, Any]) -> None:
        """Run the flows of ``trigger``; a failing flow is logged, never raised. (Their
        mail goes to the person signing in, whose sign-in emails are throttled already.)"""
        for flow in self.flows.values():
            if flow.trigger != trigger:
                continue
            try:
                self.run_flow(flow, context)
            except Exception:
                log.exception("flow %r (trigger %s) failed", flow.name, trigger)


def flow_limits(flow: Flow, settings: Settings) -> tuple[int | None, int | None]:
    """``(per_recipient, per_ip)`` hourly limits of ``flow`` run from a request; ``None``
    for no limit."""
    if flow.rate_limit is None:
        return None, None
    own = {} if flow.rate_limit == "default" else dict(flow.rate_limit)
    return (
        own.get("per_recipient", settings.flow_emails_per_hour),
        own.get("per_ip", settings.flow_ip_requests_per_hour),
    )


def _ceil(seconds: float) -> int:
    return max(1, int(-(-seconds // 1)))
