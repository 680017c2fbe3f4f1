"""The Postmark connector: validated sends over one kept-alive session, with retries.

Plain Python, no Flask: usable and testable on its own.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ._version import __version__
from .addresses import check_mailbox, has_control_chars, mask_email, scrub_addresses
from .errors import MessageValidationError, PostmarkError, TransportError, error_for

log = logging.getLogger(__name__)

#: Postmark's API root.
DEFAULT_API_URL = "https://api.postmarkapp.com"
#: (connect, read) seconds, as requests takes them.
DEFAULT_TIMEOUT = (3.05, 10.0)
#: Statuses worth another attempt; every other 4xx is final.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest wait between two attempts, whatever the backoff base.
BACKOFF_CAP = 8.0
#: Postmark's limits, checked before any request.
MAX_RECIPIENTS = 50
MAX_SUBJECT = 2000
MAX_TAG = 1000
MAX_METADATA_KEYS = 10
MAX_METADATA_KEY = 20
MAX_METADATA_VALUE = 80
BATCH_SIZE = 500
#: The endpoints whose body holds several messages.
BATCH_PATHS = frozenset({"/email/batch", "/email/batchWithTemplates"})

_TRACK_LINKS = frozenset({"None", "HtmlAndText", "HtmlOnly", "TextOnly"})
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Keys a message of a batch may have.
_BATCH_KEYS = frozenset(
    {
        "to",
        "subject",
        "text_body",
        "html_body",
        "template",
        "model",
        "tag",
        "metadata",
        "reply_to",
        "headers",
        "track_opens",
        "track_links",
    }
)


class SendResult(NamedTuple):
    """One message Postmark accepted. ``submitted_at`` is parsed from Postmark's
    ``SubmittedAt`` when read (a batch of 500 need not parse 500 timestamps)."""

    message_id: str
    to: str
    submitted: str | None = None

    @property
    def submitted_at(self) -> datetime | None:
        """When Postmark accepted the message, timezone-aware, or ``None``."""
        return _parse_time(self.submitted)


@dataclass
class TestReport:
    """What :meth:`PostmarkConnector.test` found; ``str()`` gives the Test Results panel."""

    __test__ = False  # not a pytest test class

    connector: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append((name, passed, detail))

    def __str__(self) -> str:
        width = max((len(name) for name, _, _ in self.checks), default=0)
        lines = [f"Test Results: connector {self.connector!r}", ""]
        for name, passed, detail in self.checks:
            lines.append(f"  {'PASS' if passed else 'FAIL'}  {name.ljust(width)}  {detail}")
        failed = sum(1 for _, passed, _ in self.checks if not passed)
        lines.append("")
        if failed:
            lines.append(f"{failed} of {len(self.checks)} checks failed.")
        else:
            lines.append(f"All {len(self.checks)} checks passed.")
        return "\n".join(lines)


class _Retry(Retry):
    """urllib3's retry policy with the first retry delayed too and "equal jitter"."""

    def get_backoff_time(self) -> float:
        attempts = len(self.history)
        if attempts == 0 or self.backoff_factor <= 0:
            return 0.0
        delay = min(float(self.backoff_max), self.backoff_factor * 2.0 ** (attempts - 1))
        # Jitter spreads retries from many workers; it needs no cryptographic randomness.
        return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311  # nosec B311


class PostmarkConnector:
    """A configured way to send through one Postmark server and Message Stream."""

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
        """Send one message with ``POST /email``."""
        payload = self._message(
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
        """Send one message rendered by a Postmark template (alias or numeric id)."""
        payload = self._message(
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

        Every message is checked before the first request. A message with ``template`` and
        ``model`` goes through ``/email/batchWithTemplates``, the others through
        ``/email/batch``. An error Postmark gives one item lands in that item's slot; a whole
        request that fails after its retries puts its error in every slot it carried.
        """
        plain: list[tuple[int, dict[str, Any]]] = []
        templated: list[tuple[int, dict[str, Any]]] = []
        count = 0
        for index, message in enumerate(messages):
            count += 1
            if not isinstance(message, Mapping):
                raise MessageValidationError(f"messages[{index}] must be a dict.")
            if not _BATCH_KEYS.issuperset(message):
                unknown = set(message) - _BATCH_KEYS
                raise MessageValidationError(f"messages[{index}]: unknown keys {sorted(unknown)}.")
            try:
                payload = self._message(message.get("to"), message)
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
        report = TestReport(self.name)
        token_ok = False
        try:
            server = self._request("GET", "/server")
            kind = server.get("DeliveryType", "Live") if isinstance(server, dict) else "Live"
            name = server.get("Name", "?") if isinstance(server, dict) else "?"
            report.add("Server API Token", True, f"valid for server {name!r} ({kind})")
            token_ok = True
        except PostmarkError as exc:
            report.add("Server API Token", False, self._explain(exc))

        stream = self.message_stream
        if not token_ok:
            report.add("Message stream", False, f"{stream!r} not checked: no valid token")
        else:
            try:
                info = self._request("GET", f"/message-streams/{quote(stream, safe='')}")
                kind = info.get("MessageStreamType") if isinstance(info, dict) else None
                archived = info.get("ArchivedAt") if isinstance(info, dict) else None
                if archived:
                    report.add("Message stream", False, f"{stream!r} is archived ({archived})")
                elif kind != "Transactional":
                    report.add(
                        "Message stream",
                        False,
                        f"{stream!r} is {kind}; sign-in mail needs a Transactional stream",
                    )
                else:
                    report.add("Message stream", True, f"{stream!r} exists, Transactional")
            except PostmarkError as exc:
                detail = (
                    f"{stream!r} does not exist on this server"
                    if exc.error_code == 1226
                    else self._explain(exc)
                )
                report.add("Message stream", False, detail)

        report.add("From address", True, f"{self.from_email} parses")

        if send_to is not None:
            if not report.ok:
                report.add("Test email", False, "not sent: an earlier check failed")
            else:
                try:
                    result = self.send(
                        send_to,
                        f"Test email from connector {self.name!r}",
                        text_body=(
                            f"This is a test email from the Postmark connector {self.name!r}.\n"
                            "If you can read it, the connector can deliver sign-in mail.\n"
                        ),
                        tag="connector-test",
                        track_opens=False,
                        track_links="None",
                    )
                    report.add("Test email", True, f"sent, MessageID {result.message_id}")
                except (PostmarkError, MessageValidationError) as exc:
                    report.add("Test email", False, f"not sent: {self._explain(exc)}")
        return report

    # -- internals -------------------------------------------------------------------------

    def _explain(self, exc: Exception) -> str:
        return self._scrub(str(exc))

    def _scrub(self, text: str) -> str:
        """Remove the token from text that may be shown or logged."""
        return text.replace(self._token, "****")

    def _message(self, to: object, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check one message (``to`` and the other keyword arguments of :meth:`send` or
        :meth:`send_template`, missing ones meaning ``None``) and build its JSON."""
        get = options.get
        subject, text_body, html_body = get("subject"), get("text_body"), get("html_body")
        template, model, tag = get("template"), get("model"), get("tag")
        track_opens, track_links = get("track_opens"), get("track_links")
        payload: dict[str, Any] = {"From": self.from_email, "To": _recipients(to)}
        if template is None:
            if model is not None:
                raise MessageValidationError("model is only for template sends.")
            if not isinstance(subject, str):
                raise MessageValidationError("subject must be a string.")
            if has_control_chars(subject):
                raise MessageValidationError("subject must not contain CR, LF or control chars.")
            if len(subject) > MAX_SUBJECT:
                raise MessageValidationError(f"subject is longer than {MAX_SUBJECT} characters.")
            payload["Subject"] = subject
            if text_body is None and html_body is None:
                raise MessageValidationError("a message needs text_body, html_body or both.")
            for key, body in (("TextBody", text_body), ("HtmlBody", html_body)):
                if body is not None:
                    if not isinstance(body, str) or not body:
                        raise MessageValidationError(f"{key} must be a non-empty string.")
                    payload[key] = body
        else:
            if subject is not None or text_body is not None or html_body is not None:
                raise MessageValidationError(
                    "template sends take their subject and bodies from the template."
                )
            if isinstance(template, bool) or not isinstance(template, (str, int)):
                raise MessageValidationError("template must be an alias (str) or an id (int).")
            if isinstance(template, int):
                payload["TemplateId"] = template
            elif template.strip():
                payload["TemplateAlias"] = template
            else:
                raise MessageValidationError("template alias must not be empty.")
            if not isinstance(model, Mapping):
                raise MessageValidationError("model must be a dict.")
            payload["TemplateModel"] = dict(model)
        if tag is not None:
            if not isinstance(tag, str) or not tag:
                raise MessageValidationError("tag must be one non-empty string.")
            if has_control_chars(tag) or len(tag) > MAX_TAG:
                raise MessageValidationError(f"tag must be one line of at most {MAX_TAG} chars.")
            payload["Tag"] = tag
        if (metadata := get("metadata")) is not None:
            payload["Metadata"] = _metadata(metadata)
        if (reply_to := get("reply_to")) is not None:
            if not isinstance(reply_to, str):
                raise MessageValidationError("reply_to must be a string.")
            payload["ReplyTo"] = check_mailbox(reply_to, "reply_to")
        if (headers := get("headers")) is not None:
            payload["Headers"] = _headers(headers)
        if track_opens is not None:
            if not isinstance(track_opens, bool):
                raise MessageValidationError("track_opens must be True, False or None.")
            payload["TrackOpens"] = track_opens
        if track_links is not None:
            if isinstance(track_links, bool):
                track_links = "HtmlAndText" if track_links else "None"
            if track_links not in _TRACK_LINKS:
                raise MessageValidationError(f"track_links must be one of {sorted(_TRACK_LINKS)}.")
            payload["TrackLinks"] = track_links
        payload["MessageStream"] = self.message_stream
        return payload

    def _session_for_process(self) -> requests.Session:
        """This process's kept-alive session; a forked worker makes its own."""
        session = self._session
        if session is not None and self._session_pid == os.getpid():
            return session
        with self._lock:
            if self._session is None or self._session_pid != os.getpid():
                session = requests.Session()
                retry = _Retry(
                    total=self.max_retries,
                    connect=self.max_retries,
                    read=self.max_retries,
                    status=self.max_retries,
                    other=0,
                    allowed_methods=None,  # POSTs too: Postmark refused or never saw them
                    status_forcelist=RETRY_STATUSES,
                    backoff_factor=self.backoff,
                    backoff_max=BACKOFF_CAP,
                    raise_on_status=False,
                    raise_on_redirect=False,
                    respect_retry_after_header=False,
                )
                adapter = HTTPAdapter(pool_connections=1, pool_maxsize=32, max_retries=retry)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers.update(self._headers)
                session.headers["User-Agent"] = f"flask-postmark-auth/{__version__}"
                session.trust_env = False
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
            response = self._session_for_process().request(
                method, self.api_url + path, data=data, timeout=self.timeout
            )
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
        code = body.get("ErrorCode") if isinstance(body, dict) else None
        text = body.get("Message") if isinstance(body, dict) else None
        if isinstance(code, bool) or not isinstance(code, int):
            code = None
        if body is None and response.status_code < 500 and response.status_code != 429:
            error: PostmarkError = TransportError(
                response.status_code,
                None,
                f"Postmark answered HTTP {response.status_code} with a body that is not JSON.",
            )
        else:
            message = self._scrub(text) if isinstance(text, str) else "No message."
            error = error_for(response.status_code, code, message)
        # Postmark's texts name the recipient ("Illegal email address 'ann@...'").
        log.warning("Postmark %s %s refused: %s", method, path, scrub_addresses(str(error)))
        raise error

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


def _recipients(to: object) -> str:
    if isinstance(to, str):
        return check_mailbox(to, "to")
    if isinstance(to, Sequence) and not isinstance(to, (bytes, bytearray)):
        if not to:
            raise MessageValidationError("to must name at least one recipient.")
        if len(to) > MAX_RECIPIENTS:
            raise MessageValidationError(f"to has more than {MAX_RECIPIENTS} recipients.")
        return ", ".join(check_mailbox(item, f"to[{i}]") for i, item in enumerate(to))
    raise MessageValidationError("to must be an address or a list of addresses.")


def _metadata(metadata: object) -> dict[str, str]:
    if not isinstance(metadata, Mapping):
        raise MessageValidationError("metadata must be a dict of strings.")
    if len(metadata) > MAX_METADATA_KEYS:
        raise MessageValidationError(f"metadata has more than {MAX_METADATA_KEYS} keys.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
            raise MessageValidationError(
                f"metadata keys must be strings of 1 to {MAX_METADATA_KEY} characters."
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise MessageValidationError(
                f"metadata[{key!r}] must be a string of at most {MAX_METADATA_VALUE} chars."
            )
        if has_control_chars(key) or has_control_chars(value):
            raise MessageValidationError("metadata must not contain CR, LF or control chars.")
    return dict(metadata)


def _headers(headers: object) -> list[dict[str, str]]:
    if not isinstance(headers, Mapping):
        raise MessageValidationError("headers must be a dict of name to value.")
    out = []
    for name, value in headers.items():
        if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
            raise MessageValidationError(f"header name {name!r} is not a valid header name.")
        if not isinstance(value, str) or has_control_chars(value):
            raise MessageValidationError(f"header {name} must be a string without CR or LF.")
        out.append({"Name": name, "Value": value})
    return out


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _parse_time(value: object) -> datetime | None:
    """Postmark's SubmittedAt carries seven fractional digits; Python takes six."""
    if not isinstance(value, str):
        return None
    text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def request_messages(payload: Any) -> list[dict[str, Any]]:
    """The messages of a request body: a batch's list, a templated batch's ``Messages``,
    or the one message of a single send."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and "Messages" in payload:
        messages: list[dict[str, Any]] = payload["Messages"]
        return messages
    return [payload]


def accepted_answers(payload: Any) -> list[dict[str, Any]]:
    """What Postmark answers for each message of ``payload`` when it accepts them all."""
    return [accepted_answer("/email", item) for item in request_messages(payload)]


def accepted_answer(path: str, payload: Any) -> Any:
    """What Postmark answers when it accepts ``payload`` at ``path``: for interceptors."""
    if path in BATCH_PATHS:
        return accepted_answers(payload)
    return {
        "To": payload.get("To", ""),
        "SubmittedAt": datetime.now(timezone.utc).isoformat(),
        "MessageID": str(uuid.uuid4()),
        "ErrorCode": 0,
        "Message": "OK",
    }
