"""Exceptions: Postmark's answers by cause, and what is refused before any request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from markupsafe import escape
from werkzeug.exceptions import HTTPException

from .i18n import N_, gettext


class PostmarkError(Exception):
    """Postmark refused a request, or could not be reached.

    ``status`` is the HTTP status (``None`` when no answer came), ``error_code`` the
    ``ErrorCode`` read from the body (``None`` when the body had none), ``message`` the text
    of Postmark's ``Message``, or the connector's own account of what went wrong when
    Postmark gave none. All three stay as attributes of the same names; ``str()`` adds the
    status and ErrorCode to the message.
    """

    def __init__(self, status: int | None, error_code: int | None, message: str) -> None:
        super().__init__(status, error_code, message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no HTTP answer"
        code = f", ErrorCode {self.error_code}" if self.error_code is not None else ""
        return f"{self.message} ({where}{code})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, "
            f"error_code={self.error_code!r}, message={self.message!r})"
        )

    @property
    def recipient_error(self) -> bool:
        """True when the failure is tied to the recipient (406 inactive, 300 invalid
        recipient) rather than to the service, so sign-in answers as if it had been sent."""
        return self.error_code in RECIPIENT_ERROR_CODES


class InvalidTokenError(PostmarkError):
    """The Server API Token was missing or wrong (ErrorCode 10)."""


class InvalidRequestError(PostmarkError):
    """Postmark rejected the message itself (ErrorCodes 300, 402, 403)."""


class InactiveRecipientError(PostmarkError):
    """The recipient is marked inactive after a bounce or spam complaint (ErrorCode 406)."""


class SenderNotConfirmedError(PostmarkError):
    """The From address or its domain is not confirmed (ErrorCodes 400, 401, 412, 413)."""


class MessageStreamError(PostmarkError):
    """The Message Stream is unknown or cannot take this mail (ErrorCodes 1226, 1235, 1236)."""


class RateLimitedError(PostmarkError):
    """Postmark answered HTTP 429."""


class ServerError(PostmarkError):
    """Postmark failed on its side (HTTP 5xx, ErrorCodes 100 and 101)."""


class TransportError(PostmarkError):
    """No usable answer: connection or read failure, timeout, or a body that is not JSON."""


class MessageValidationError(ValueError):
    """A message was refused before any request because Postmark would refuse it too."""


class ConfigurationError(RuntimeError):
    """The extension's configuration is wrong; the message names the key and the fix."""


#: ErrorCodes that blame the recipient, not the service.
RECIPIENT_ERROR_CODES = frozenset({300, 406})

#: ErrorCode -> exception class; codes not listed fall back to the HTTP status.
ERROR_CODES: dict[int, type[PostmarkError]] = {
    10: InvalidTokenError,
    100: ServerError,
    101: ServerError,
    300: InvalidRequestError,
    402: InvalidRequestError,
    403: InvalidRequestError,
    406: InactiveRecipientError,
    400: SenderNotConfirmedError,
    401: SenderNotConfirmedError,
    412: SenderNotConfirmedError,
    413: SenderNotConfirmedError,
    1226: MessageStreamError,
    1235: MessageStreamError,
    1236: MessageStreamError,
}


def error_for(status: int | None, error_code: int | None, message: str) -> PostmarkError:
    """Build the exception for an answer: the class :data:`ERROR_CODES` gives ``error_code``,
    else :class:`RateLimitedError` for ``status`` 429, :class:`ServerError` for 5xx and
    :class:`PostmarkError` itself for any other status or none (``None``). The exception
    carries ``status``, ``error_code`` and ``message`` as given."""
    cls: type[PostmarkError] | None = ERROR_CODES.get(error_code or 0)
    if cls is None:
        if status == 429:
            cls = RateLimitedError
        elif status is not None and status >= 500:
            cls = ServerError
        else:
            cls = PostmarkError
    return cls(status, error_code, message)


def refusal(status: int, body: Any, scrub: Callable[[str], str]) -> PostmarkError:
    """The exception for an HTTP answer that is not a 200 with JSON (``body`` is the decoded
    JSON, ``None`` when it was not JSON): :func:`error_for` with the body's ``ErrorCode`` and
    its ``Message`` passed through ``scrub``; a :class:`TransportError` when the body is not
    JSON and ``status`` is neither 429 nor 5xx (a proxy's page, say)."""
    code = body.get("ErrorCode") if isinstance(body, dict) else None
    text = body.get("Message") if isinstance(body, dict) else None
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    if body is None and status < 500 and status != 429:
        return TransportError(
            status, None, f"Postmark answered HTTP {status} with a body that is not JSON."
        )
    return error_for(status, code, scrub(text) if isinstance(text, str) else "No message.")


class SignInError(HTTPException):
    """A sign-in request that cannot go on: a Werkzeug HTTP exception, as Flask-WTF's
    ``CSRFError`` is, so an app calling the service from its own views can let it answer or
    catch it with ``@app.errorhandler``. ``code`` is the HTTP status, ``error`` the
    machine-readable name the JSON answers carry, ``extra`` more fields of the answer.

    ``message`` replaces the class's ``description``, the sentence shown; it is looked up in
    the catalogs as a msgid, so a text marked with ``N_`` is translated and any other shown
    as given. ``params`` fills its ``%(name)s`` placeholders. Any other keyword becomes a
    field of ``extra`` (``retry_after`` is also sent as the ``Retry-After`` header).

    The base class has no ``code``, so a handler registered for it (Flask files handlers of
    HTTP exceptions by code) catches every subclass, whatever its status."""

    code: int | None = None
    error = "error"
    description = N_("Something went wrong.")

    def __init__(
        self,
        message: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(message or type(self).description)
        self.extra = extra
        #: What fills the ``%(name)s`` of the message (which is the catalogs' msgid).
        self.params = dict(params or {})

    @property
    def message(self) -> str:
        """The sentence shown to the person, in the request's language."""
        return gettext(str(self.description), **self.params)

    def get_description(
        self, environ: Any = None, scope: Any = None
    ) -> str:  # Werkzeug's own page, for an app that returns the exception
        """The body of Werkzeug's own error page: :attr:`message`, HTML-escaped, in a ``<p>``.
        ``environ`` and ``scope`` are Werkzeug's arguments; the request's language comes from
        the request context instead."""
        return f"<p>{escape(self.message)}</p>"


class InvalidEmailError(SignInError, ValueError):
    """An address that is not one plain, valid address (display names, lists, CR/LF...)."""

    code = 400
    error = "invalid_email"
    description = N_("Enter a valid email address.")


class InvalidCodeError(SignInError):
    """The code is wrong, expired or used, its attempts are spent, or the address may not
    sign in (400); ``extra["attempts_left"]`` says how many more guesses the code allows
    (``0``: ask for a new one)."""

    code = 400
    error = "invalid_code"
    description = N_("That code is not valid. Check it, or ask for a new one.")


class NotACodeError(InvalidCodeError):
    """What was typed is not a code at all (a typo, not a guess: it uses no attempt)."""

    description = N_("Enter the %(digits)d-digit code from the email.")


class InvalidLinkError(SignInError):
    """The magic link is unknown, expired or used, its approval from another device failed,
    or the address may not sign in (400)."""

    code = 400
    error = "invalid_link"
    description = N_("This sign-in link is invalid, expired or already used.")


class NoNumberError(InvalidLinkError):
    """An approval from another device without a two-digit number."""

    description = N_("Enter the two-digit number the other device shows.")


class ThrottledError(SignInError):
    """Too many requests for the address or the client (429); ``extra["retry_after"]`` is
    the wait in whole seconds, sent as the ``Retry-After`` header too."""

    code = 429
    error = "rate_limited"
    description = N_("Too many requests. Wait a little, then try again.")


class DeliveryFailedError(SignInError):
    """The sign-in email could not be sent or queued, for a reason of the service rather
    than of the recipient (503). When it answers a request, what the send used (its resend
    wait, its hourly quota, its code or link) has been given back: the person may retry at
    once."""

    code = 503
    error = "delivery_failed"
    description = N_("We could not send the email just now. Please try again shortly.")


class CSRFFailedError(SignInError):
    """The form's CSRF token is missing, invalid or expired (400); the JSON answer says
    where to get a fresh one."""

    code = 400
    error = "csrf"
    description = N_("The form expired. Reload the page and try again.")


class RequestTooLargeError(SignInError):
    """A sign-in POST body over 64 KiB, refused before anything reads it, or one over the
    app's ``MAX_CONTENT_LENGTH`` (413)."""

    code = 413
    error = "request_too_large"
    description = N_("That request is too large.")


class StoreDownError(SignInError):
    """The store failed mid-request (see :class:`~.store.StoreUnavailableError`)."""

    code = 503
    error = "store_unavailable"
    description = N_("Sign-in is unavailable for a moment. Please try again shortly.")
