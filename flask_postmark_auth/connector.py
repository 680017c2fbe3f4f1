"""The Postmark connector: validated sends over one kept-alive session, with retries.

Plain Python, no Flask: usable and testable on its own.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import requests

from .addresses import check_mailbox, has_control_chars, mask_email, scrub_addresses
from .connector_check import TestReport, run_test
from .connector_session import new_session
from .errors import MessageValidationError, PostmarkError, TransportError, error_for, refusal
from .messages import BATCH_KEYS, build_message, parse_submitted_at

log = logging.getLogger(__name__)

#: Postmark's API root.
DEFAULT_API_URL = "https://api.postmarkapp.com"
#: (connect, read) seconds, as requests takes them.
DEFAULT_TIMEOUT = (3.05, 10.0)
#: Messages in one batch request.
BATCH_SIZE = 500


class SendResult(NamedTuple):
    """One message Postmark accepted: ``message_id`` is its ``MessageID``, ``to`` the
    recipients as Postmark echoed them, ``submitted`` the raw ``SubmittedAt`` (``None`` when
    the answer had none). :attr:`submitted_at` parses it when read (a batch of 500 need not
    parse 500 timestamps)."""

    message_id: str
    to: str
    submitted: str | None = None

    @property
    def submitted_at(self) -> datetime | None:
        """When Postmark accepted the message, timezone-aware, or ``None``."""
        return parse_submitted_at(self.submitted)


class PostmarkConnector:
    """A configured way to send through one Postmark server and Message Stream.

    ``name`` identifies it in errors and test reports (``"default"``, or its key in
    ``POSTMARK_AUTH_CONNECTORS``). ``server_token`` is the server's Server API Token (shown
    only as :attr:`masked_token`); ``from_email`` the From of every message, a confirmed
    Sender Signature, bare or as ``"Acme <login@acme.example>"``; ``message_stream`` the ID of
    the Message Stream sent to; ``description`` free text that ``flask postmark-auth
    connectors`` shows; ``api_url`` the API root (in tests, the ``url`` of a
    :class:`~flask_postmark_auth.testing.FakePostmark`).

    Each attempt may take ``timeout`` seconds: one number, or ``(connect, read)``. A failed
    or dropped connection, a read timeout, and HTTP 429, 500, 502, 503 or 504 are tried again
    up to ``max_retries`` times (``0``: one attempt; ``Retry-After`` is not followed). Before
    retry *n* it waits between half and all of ``backoff * 2 ** (n - 1)`` seconds, at most
    8 (``BACKOFF_CAP``): by default 0.25 to 0.5 s, then 0.5 to 1 s, then 1 to 2 s
    (``backoff=0`` retries at once). A POST is retried after a read timeout or a dropped
    connection too, so a message whose answer was lost on the way back may go out twice.

    Raises :class:`ValueError` for an empty token or Message Stream ID, a token with control
    characters, or a negative ``max_retries`` or ``backoff``, and
    :class:`MessageValidationError` when ``from_email`` is not one valid mailbox.
    """

    def __init__(
        self,
        name: str,
        *,
        server_token: str,
        from_email: str,
        message_stream: str = "outbound",
        description: str = "",
        api_url: str = DEFAULT_API_URL,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not isinstance(server_token, str) or not server_token.strip():
            raise ValueError(f"Connector {name!r} needs a Server API Token.")
        if has_control_chars(server_token):
            raise ValueError(f"Connector {name!r}: the Server API Token has control characters.")
        check_mailbox(from_email, f"Connector {name!r} from_email")
        if not isinstance(message_stream, str) or not message_stream.strip():
            raise ValueError(f"Connector {name!r} needs a Message Stream ID.")
        if max_retries < 0 or backoff < 0:
            raise ValueError("max_retries and backoff must not be negative.")
        self.name = name
        self.description = description
        self.from_email = from_email
        self.message_stream = message_stream
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._token = server_token
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-Postmark-Server-Token": server_token,
        }
        #: When set, sends go to this callable, ``(path, payload) -> Postmark-style answer``,
        #: instead of over HTTP: the dev outbox and :func:`~.testing.record_messages` use it.
        self.interceptor: Callable[[str, Any], Any] | None = None
        self._session: requests.Session | None = None
        self._session_pid = 0
        #: Per (method, path), a request prepared by this process's session (see _request).
        self._prepared: dict[tuple[str, str], requests.PreparedRequest] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<PostmarkConnector {self.name!r} from={self.from_email!r} "
            f"stream={self.message_stream!r} api_url={self.api_url!r}>"
        )

    @property
    def masked_token(self) -> str:
        """The token as it may be shown: its last four characters only."""
        return f"****{self._token[-4:]}" if len(self._token) > 8 else "****"

    # -- sending ---------------------------------------------------------------------------

    def send(
        self,
        to: str | Sequence[str],
        subject: str,
        *,
        text_body: str | None = None,
        html_body: str | None = None,
        tag: str | None = None,
        metadata: Mapping[str, str] | None = None,
        reply_to: str | None = None,
        headers: Mapping[str, str] | None = None,
        track_opens: bool | None = None,
        track_links: str | bool | None = None,
    ) -> SendResult:
        """Send one message with ``POST /email`` and return its :class:`SendResult`.

        ``to`` is one address or a list of up to 50; ``subject`` one line of at most 2000
        characters; ``text_body`` and ``html_body`` the plain-text and HTML parts (one at
        least). The options, left out of the message when ``None``: ``tag`` (one line, for
        Postmark's statistics), ``metadata`` (up to 10 string values of at most 80 characters,
        keys of at most 20), ``reply_to`` (one address), ``headers`` (extra headers by name),
        ``track_opens`` and ``track_links`` (``"None"``, ``"HtmlAndText"``, ``"HtmlOnly"`` or
        ``"TextOnly"``; ``True`` and ``False`` mean the first two); left out, tracking follows
        the server's setting.

        Raises :class:`MessageValidationError`, before any request, for a message Postmark
        would refuse; else, once the retries are spent, the :class:`PostmarkError` subclass
        that fits Postmark's answer (:class:`TransportError` when no usable answer came).
        """
        payload = self._build(
            to,
            {
                "subject": subject,
                "text_body": text_body,
                "html_body": html_body,
                "tag": tag,
                "metadata": metadata,
                "reply_to": reply_to,
                "headers": headers,
                "track_opens": track_opens,
                "track_links": track_links,
            },
        )
        return self._result(self._post("/email", payload))

    def send_template(
        self,
        to: str | Sequence[str],
        template: str | int,
        model: Mapping[str, Any],
        *,
        tag: str | None = None,
        metadata: Mapping[str, str] | None = None,
        reply_to: str | None = None,
        headers: Mapping[str, str] | None = None,
        track_opens: bool | None = None,
        track_links: str | bool | None = None,
    ) -> SendResult:
        """Send one message rendered by a Postmark template, with
        ``POST /email/withTemplate``; returns and raises as :meth:`send` does.

        ``template`` is the template's alias (``str``) or numeric ID (``int``), ``model`` the
        dict its variables are filled from; the template gives the subject and the bodies.
        ``to``, ``tag``, ``metadata``, ``reply_to``, ``headers``, ``track_opens`` and
        ``track_links`` are as for :meth:`send`.
        """
        payload = self._build(
            to,
            {
                "template": template,
                "model": model,
                "tag": tag,
                "metadata": metadata,
                "reply_to": reply_to,
                "headers": headers,
                "track_opens": track_opens,
                "track_links": track_links,
            },
        )
        return self._result(self._post("/email/withTemplate", payload))

    def send_batch(
        self, messages: Iterable[Mapping[str, Any]]
    ) -> list[SendResult | PostmarkError]:
        """Send many messages, 500 to a request; one result or error per message, in order.

        ``messages`` are dicts of the arguments of :meth:`send` or :meth:`send_template` by
        name (``to`` included). Every message is checked before the first request: one that
        Postmark would refuse raises :class:`MessageValidationError` (naming its index), and
        nothing is sent. A message with ``template`` and ``model`` goes through
        ``/email/batchWithTemplates``, the others through ``/email/batch``. Errors are
        returned, not raised: an error Postmark gives one item lands in that item's slot; a
        whole request that fails after its retries puts its error in every slot it carried.
        """
        plain: list[tuple[int, dict[str, Any]]] = []
        templated: list[tuple[int, dict[str, Any]]] = []
        count = 0
        for index, message in enumerate(messages):
            count += 1
            if not isinstance(message, Mapping):
                raise MessageValidationError(f"messages[{index}] must be a dict.")
            if not BATCH_KEYS.issuperset(message):
                unknown = set(message) - BATCH_KEYS
                raise MessageValidationError(f"messages[{index}]: unknown keys {sorted(unknown)}.")
            try:
                payload = self._build(message.get("to"), message)
            except MessageValidationError as exc:
                raise MessageValidationError(f"messages[{index}]: {exc}") from exc
            group = plain if message.get("template") is None else templated
            group.append((index, payload))

        results: list[SendResult | PostmarkError | None] = [None] * count
        for path, group in (("/email/batch", plain), ("/email/batchWithTemplates", templated)):
            for start in range(0, len(group), BATCH_SIZE):
                chunk = group[start : start + BATCH_SIZE]
                body: Any = [p for _, p in chunk]
                if path == "/email/batchWithTemplates":
                    body = {"Messages": body}
                try:
                    answers = self._post(path, body)
                except PostmarkError as exc:
                    for index, _ in chunk:
                        results[index] = exc
                    continue
                if not isinstance(answers, list) or len(answers) != len(chunk):
                    mismatch = TransportError(200, None, "Postmark's batch answer did not match.")
                    for index, _ in chunk:
                        results[index] = mismatch
                    continue
                for (index, _), answer in zip(chunk, answers, strict=True):
                    results[index] = self._item_result(answer)
        accepted = sum(1 for r in results if isinstance(r, SendResult))
        log.debug("Postmark accepted %d of %d messages of a batch", accepted, count)
        return [r for r in results if r is not None]

    # -- checking --------------------------------------------------------------------------

    def test(self, send_to: str | None = None) -> TestReport:
        """Check the token, the Message Stream and the From address; with ``send_to``,
        send a real test email. Never raises for a failed check: the report says why."""
        return run_test(self, send_to)

    # -- internals -------------------------------------------------------------------------

    def _explain(self, exc: Exception) -> str:
        return self._scrub(str(exc))

    def _scrub(self, text: str) -> str:
        """Remove the token from text that may be shown or logged."""
        return text.replace(self._token, "****")

    def _build(self, to: object, options: Mapping[str, Any]) -> dict[str, Any]:
        return build_message(
            to, options, from_email=self.from_email, message_stream=self.message_stream
        )

    def _session_for_process(self) -> requests.Session:
        """This process's kept-alive session; a forked worker makes its own."""
        session = self._session
        if session is not None and self._session_pid == os.getpid():
            return session
        with self._lock:
            if self._session is None or self._session_pid != os.getpid():
                session = new_session(self._headers, self.max_retries, self.backoff)
                self._prepared = {}
                self._session = session
                self._session_pid = os.getpid()
            return self._session

    def close(self) -> None:
        """Close this process's session; the next send opens a new one."""
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = None

    def _post(self, path: str, payload: Any) -> Any:
        interceptor = self.interceptor
        if interceptor is not None:
            return interceptor(path, payload)
        return self._request("POST", path, payload)

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        """One API call with the retry policy; returns the decoded JSON or raises."""
        data = None if payload is None else json.dumps(payload, separators=(",", ":"))
        try:
            session = self._session_for_process()
            request = self._prepare(session, method, path)
            request.prepare_body(data, None)
            response = session.send(request, timeout=self.timeout)
        except requests.RequestException as exc:
            reason = type(exc).__name__
            log.warning("Postmark %s %s failed: %s", method, path, reason)
            raise TransportError(
                None, None, f"Postmark could not be reached ({reason})."
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and body is not None:
            return body
        error = refusal(response.status_code, body, self._scrub)
        # Postmark's texts name the recipient ("Illegal email address 'ann@...'").
        log.warning("Postmark %s %s refused: %s", method, path, scrub_addresses(str(error)))
        raise error

    def _prepare(
        self, session: requests.Session, method: str, path: str
    ) -> requests.PreparedRequest:
        """A copy of ``method path`` as ``session`` prepares it (URL, the session's headers),
        made once: ``Session.request`` would merge the session's settings, cookies and
        headers again on every call, a quarter of a send's CPU time. Postmark sets no
        cookies, and the session's headers are the connector's, set once."""
        prepared = self._prepared.get((method, path))
        if prepared is None:
            prepared = session.prepare_request(requests.Request(method, self.api_url + path))
            self._prepared[(method, path)] = prepared
        return prepared.copy()

    def _result(self, answer: Any) -> SendResult:
        result = self._item_result(answer)
        if isinstance(result, PostmarkError):
            raise result
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Postmark accepted a message for %s", mask_email(result.to))
        return result

    def _item_result(self, answer: Any) -> SendResult | PostmarkError:
        if not isinstance(answer, dict):
            return TransportError(200, None, "Postmark's answer was not a JSON object.")
        code = answer.get("ErrorCode", 0)
        message_id = answer.get("MessageID")
        if code or not message_id:
            message = str(answer.get("Message") or "Postmark refused the message.")
            return error_for(422, code if isinstance(code, int) else None, message)
        submitted = answer.get("SubmittedAt")
        return SendResult(
            str(message_id),
            str(answer.get("To", "")),
            submitted if isinstance(submitted, str) else None,
        )
