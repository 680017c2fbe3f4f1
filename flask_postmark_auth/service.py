"""The sign-in service: codes, links and users, and signing in as one call.

Views and the CLI call it; it uses the store, the dispatcher (:mod:`.delivery`) and the
flow runner (:mod:`.flows`), and knows Flask only through the settings it was built from
(plus the app, for signals and to send in the background).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask

from . import errors, signals
from .addresses import mask_email, normalize_email
from .codes import DAY, GUESS_BUDGET_CODES, CodeKeys, Codes, unpack
from .connector import PostmarkConnector, SendResult
from .delivery import BackgroundPool, Dispatcher, SendJob
from .errors import InvalidCodeError, InvalidEmailError, InvalidLinkError, ThrottledError
from .flows import Flow, FlowResult, FlowRunner
from .links import LinkView, MagicLinks, new_number, read_number
from .mail import MAGIC_LINK, OTP, SignInMail
from .settings import Settings
from .site import Origin, Site
from .store import Store
from .throttles import Throttles, ceil_seconds
from .tokens import code_digits
from .users import AddressMismatchError, UserDirectory

log = logging.getLogger("flask_postmark_auth")


#: Starts the session of a user who proved their address; False when it cannot.
Login = Callable[[Any], bool]


@dataclass(frozen=True)
class Sent:
    """A sign-in email was (or, to the caller, looks as if it was) sent."""

    expires_in: int
    #: For a link asked for with a waiter: what the asking browser shows, for approval
    #: from another device.
    number: int | None = None


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, where to go next, and whether the account is new."""

    user: Any
    email: str
    next: str
    method: str
    created: bool
    #: ``"other"`` when another device approved this browser by link, else ``"this"``.
    device: str = "this"


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
        self.users = users
        self._secret_keys = secret_keys
        self.throttles = Throttles(store, settings)
        self.links = MagicLinks(store, secret_keys, settings.magic_link_ttl)
        self.codes = Codes(secret_keys, settings.otp_length, settings.otp_ttl)
        self.site = Site(settings)
        self.mail = SignInMail(app, settings, dict(connectors))
        self.dispatcher = Dispatcher(
            app=app,
            mode=settings.delivery,
            connectors=connectors,
            store=store,
            mail=self.mail,
            may_send=self._may_send,
            background=background,
        )
        self.flow_runner = FlowRunner(
            app=app,
            settings=settings,
            store=store,
            flows=flows or {},
            deliver=self.dispatcher.deliver,
        )
        self.flows: Mapping[str, Flow] = self.flow_runner.flows

    def _address(self, email: object, origin: Origin) -> str:
        """The normalized address; a refused one still counts against the client's IP."""
        try:
            return normalize_email(email)
        except InvalidEmailError:
            self.throttles.count(origin.ip)
            raise

    # -- asking for a code or a link ----------------------------------------------------------

    def _request_sign_in(
        self,
        method: str,
        email: object,
        origin: Origin,
        ttl: int,
        issue: Callable[[str], tuple[str, dict[str, str]]],
    ) -> Sent:
        """What asking for a code and asking for a link share: the throttles (with the
        read of a code pause and of a built-in user, in the same round trip), one store
        write of the secret (``issue(address)`` returns its key and what the email shows
        of it) and one job handed to ``DELIVERY``, the same work for every address. Who the
        address belongs to, and whether it gets mail, is decided in the job
        (:meth:`run_job`), so with background delivery the answer's timing tells nothing.
        """
        address = self._address(email, origin)
        self.users.check()
        pause = [("get", CodeKeys(address).pause)] if method == OTP else []
        ahead = self.users.read_ahead(address) if self.dispatcher.mode == "sync" else []
        resend, quota, answers = self.throttles.take_send_quota(
            method, address, origin.ip, [*pause, *ahead]
        )
        if pause and answers[0] is not None:  # the address's codes pause (links still work)
            self.throttles.give_back([quota, resend])
            raise ThrottledError(retry_after=ceil_seconds(float(answers[0]) - self.store.clock()))
        self.users.was_read(address, answers[len(pause) :])
        try:
            key, secret = issue(address)
            context = {**self.mail.context(method, address, origin.ip, origin.host, ttl), **secret}
        except BaseException:
            self.dispatcher.give_back((resend,), (quota,))
            raise
        job = SendJob(
            connector=self.mail.connector(method),
            purpose=method,
            recipient=address,
            message={},
            release_delete=(resend, key),
            release_unhit=(quota,),
            context=context,
        )
        self.dispatcher.deliver(job)  # a job that fails gives its throttles back itself
        return Sent(expires_in=ttl)

    def request_code(self, email: object, next_url: object, origin: Origin) -> Sent:
        """Send a code to ``email`` if it may sign in; answer the same either way. Codes
        for an address whose daily guess budget is spent pause for a day (links keep
        working): :class:`ThrottledError`, alike for every address."""

        def issue(address: str) -> tuple[str, dict[str, str]]:
            keys = CodeKeys(address)
            code, ops = self.codes.issue(keys, self.site.safe_next(next_url, origin))
            self.store.many(ops)
            return keys.record, {"code": code}

        return self._request_sign_in(OTP, email, origin, self.settings.otp_ttl, issue)

    def request_link(
        self, email: object, next_url: object, origin: Origin, *, waiter: str | None = None
    ) -> Sent:
        """Send a one-use sign-in link to ``email`` if it may sign in. With ``waiter`` (a
        secret of the asking browser's session, :func:`.links.new_waiter`) the link can
        also approve that browser from another device, with the number in the answer."""
        number = new_number() if waiter else None

        def issue(address: str) -> tuple[str, dict[str, str]]:
            # Stored for every address, one write, like a code (and kept when the address
            # gets no mail, so the asking browser's status says "pending" all the same).
            safe = self.site.safe_next(next_url, origin)
            key, token = self.links.issue(address, safe, waiter, number)
            return key, {"link": self.site.link_url(token, origin)}

        sent = self._request_sign_in(MAGIC_LINK, email, origin, self.links.ttl, issue)
        return Sent(expires_in=sent.expires_in, number=number)

    # -- signing in with a code -------------------------------------------------------------

    def verify_code(
        self, email: object, code: object, next_url: object, origin: Origin, login: Login
    ) -> SignedIn:
        """Sign in with a code (``login`` starts the session; see :meth:`_finish`), read as
        :func:`.tokens.code_digits` reads it (input of another shape uses no attempt): each
        guess uses an attempt before it is compared, so concurrent guesses cannot exceed
        ``OTP_MAX_ATTEMPTS``; a right code is consumed with compare-and-delete, so it works
        exactly once. Guesses at one address count against a daily budget too, whose end
        pauses its codes for a day. Two store round trips: the counting with the reads,
        then the consuming with the writes."""
        address = self._address(email, origin)
        keys = CodeKeys(address)
        limit = self.settings.otp_max_attempts
        digits = code_digits(code, self.settings.otp_length)
        if digits is None:  # not a code at all (a typo, not a guess): no attempt is used
            _, (raw, tries) = self.throttles.count_with(
                origin.ip, (), [("get", keys.record), ("get", keys.tries)]
            )
            if raw is None:
                self._failed(address, OTP, "no code pending")
                raise InvalidCodeError(attempts_left=0)
            self._failed(address, OTP, "not a code")
            left = max(0, limit - int(tries or 0))
            raise errors.NotACodeError(params={"digits": self.codes.length}, attempts_left=left)
        # Each guess is counted before it is compared. The counter, not deleting the record,
        # is what voids the code: a guess still in flight from within the limit must not
        # lose to a later one that went over it.
        budget = GUESS_BUDGET_CODES * limit
        (tries, today), (raw, *user) = self.throttles.count_with(
            origin.ip,
            [(keys.tries, self.settings.otp_ttl, None), (keys.guesses, DAY, None)],
            [("get", keys.record), *self.users.read_ahead(address)],
        )
        if raw is None:  # nothing to guess at: the guess was no attempt
            self.throttles.give_back([keys.tries, keys.guesses])
            self._failed(address, OTP, "no code pending")
            raise InvalidCodeError(attempts_left=0)
        self.users.was_read(address, user)
        if tries > limit or today > budget:
            if today >= budget:  # the budget went on guesses at a void code: pause all the same
                self._pause_codes(keys)
            self._failed(address, OTP, "too many attempts")
            raise InvalidCodeError(attempts_left=0)
        if not self.codes.matches(keys, unpack(raw), digits):
            if today == budget:
                self._pause_codes(keys)
            self._failed(address, OTP, "wrong code")
            raise InvalidCodeError(attempts_left=0 if today == budget else limit - tries)
        make = self.users.make_ahead(address)
        taken, *done = self.store.many([*self.codes.consume(keys, raw), *make])
        self.users.was_made(address, done[2:])
        if taken is None:
            self._failed(address, OTP, "code already used")
            raise InvalidCodeError(attempts_left=0)
        target = self.site.safe_next(next_url, origin) or unpack(raw).next
        return self._finish(address, OTP, target, InvalidCodeError(attempts_left=0), login)

    def _pause_codes(self, keys: CodeKeys) -> None:
        self.store.many(self.codes.pause(keys, self.store.clock() + DAY))
        log.warning(
            "%s: %d wrong codes in a day; its codes pause for a day (links still work)",
            mask_email(keys.address),
            GUESS_BUDGET_CODES * self.settings.otp_max_attempts,
        )

    # -- magic links ------------------------------------------------------------------------

    def link_view(self, token: object, waiter: str | None = None) -> LinkView | None:
        """What the link ``token`` would do opened in the browser of ``waiter`` (the
        account, whether this is the browser that asked); ``None`` when it is bad, expired
        or used. Changes nothing (for the page that asks to confirm)."""
        return self.links.view(token, waiter)

    def consume_link(
        self, token: object, next_url: object, origin: Origin, login: Login
    ) -> SignedIn:
        """Sign in with a link, in the browser that opened it: its nonce is taken from the
        store atomically, once (a browser waiting for its approval then waits no more)."""
        self.throttles.count(origin.ip)
        record = self.links.take(token)
        if record is None:
            self._failed(None, MAGIC_LINK, "invalid, expired or used link")
            raise InvalidLinkError()
        target = self.site.safe_next(next_url, origin) or record.get("next")
        return self._finish(record["email"], MAGIC_LINK, target, InvalidLinkError(), login)

    def approve_link(self, token: object, number: object, origin: Origin) -> str:
        """Approve, from another device, the browser that asked for the link ``token``:
        ``number`` must be the one its waiting page shows, else the link is void. Signs in
        nobody here; returns the address approved."""
        self.throttles.count(origin.ip)
        typed = read_number(number)
        if typed is None:
            raise errors.NoNumberError()
        outcome = self.links.approve(token, typed)
        if outcome is None:
            self._failed(None, MAGIC_LINK, "invalid, expired or used link (approval)")
            raise InvalidLinkError()
        address, approved = outcome
        if not approved:
            self._failed(address, MAGIC_LINK, "wrong number: the link is void")
            raise InvalidLinkError(
                "That number does not match the other device, so this link no longer "
                "works. Ask for a new one on the device you want to sign in on."
            )
        log.info("%s approved another device by link", mask_email(address))
        return address

    def link_status(self, waiter: object, login: Login) -> SignedIn | None:
        """For the browser that asked for a link (``waiter`` from its session): signed in
        once its link approved it (``login`` starts its session), ``None`` while the link
        is out; :class:`InvalidLinkError` once it expired, was used elsewhere or voided.
        Counts against no throttle: there is nothing to guess."""
        status = self.links.status(waiter) if isinstance(waiter, str) and waiter else None
        if status == "pending":
            return None
        if not isinstance(status, dict):
            raise InvalidLinkError()
        return self._finish(
            status["email"], MAGIC_LINK, status.get("next"), InvalidLinkError(), login, "other"
        )

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
        self,
        address: str,
        method: str,
        target: str | None,
        refusal: Exception,
        login: Login,
        device: str = "this",
    ) -> SignedIn:
        """The account for ``address`` (made on a first sign-in), the session started by
        ``login(user)`` (Flask-Login's, from the view), then ``user_signed_in`` and the
        triggered flows: one call, so no caller can skip a step."""
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
        if not getattr(user, "is_active", True) or not login(user):
            self._failed(address, method, "inactive user")
            raise refusal
        log.info("%s signed in by %s", mask_email(address), method)
        signals.user_signed_in.send(self.app, user=user, method=method, device=device)
        context = {"user": user, "email": address, "method": method, "device": device}
        if created:
            self.flow_runner.run_triggered("signed_up", context)
        self.flow_runner.run_triggered("signed_in", context)
        return SignedIn(
            user=user,
            email=address,
            next=target or self.settings.login_redirect,
            method=method,
            created=created,
            device=device,
        )

    def _failed(self, address: str | None, method: str, reason: str) -> None:
        log.info(
            "sign-in by %s failed for %s: %s",
            method,
            mask_email(address) if address else "an unknown address",
            reason,
        )
        signals.sign_in_failed.send(self.app, email=address, method=method, reason=reason)

    # -- delivery and flows ----------------------------------------------------------------

    def run_job(self, job: SendJob) -> SendResult | None:
        """Carry out ``job`` now: what a task-queue worker calls (see :class:`.Dispatcher`)."""
        return self.dispatcher.run_job(job)

    def run_flow(
        self, flow: Flow, context: Mapping[str, Any], *, client_ip: str | None = None
    ) -> FlowResult:
        """Run ``flow``; rate-limited when ``client_ip`` (a request asked) is given."""
        return self.flow_runner.run(flow, context, client_ip=client_ip)
