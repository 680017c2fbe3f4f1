"""``FakePostmark``: a loopback HTTP server that imitates Postmark's HTTP API.

For tests and benchmarks: it accepts, validates and records what a Postmark client sends, and
answers the way Postmark does (HTTP status, ``ErrorCode`` and, where it could be found in
public sources, Postmark's own ``Message`` wording). Standard library only::

    with FakePostmark(confirmed_senders=["@example.com"]) as fake:
        requests.post(
            fake.url + "/email",
            json={"From": "a@example.com", "To": "b@example.net", "TextBody": "Hi"},
            headers={"X-Postmark-Server-Token": fake.server_token},
        )
        assert fake.messages[0].to == "b@example.net"

Served: ``POST /email``, ``POST /email/withTemplate``, ``POST /email/batch``,
``POST /email/batchWithTemplates``, ``GET /server`` and ``GET /message-streams/{id}``.
Faults for resilience tests: :meth:`FakePostmark.fail`, :meth:`FakePostmark.fail_html`,
:meth:`FakePostmark.drop_connection` and :meth:`FakePostmark.slow`.

Where the wording comes from (``ErrorCode`` numbers are all in Postmark's API overview,
"Error codes"):

* ErrorCode 10, header missing: the text quoted by many client tests and bug reports;
  token wrong: "Request does not contain a valid Server token.", as reported by users.
* 409 "JSON required": text from a postmark-php client test fixture. Postmark's overview
  documents HTTP 415 for missing request headers, so the fake answers 415 with ErrorCode 409.
* 300: "Zero recipients specified" (postmark-java integration tests), "Provide either email
  TextBody or HtmlBody or both.", "Invalid 'From' value.", "Invalid 'To' address: '...'."
  and "Error parsing 'To': Illegal email address '...'. It must contain the '@' symbol."
  (postmark-gem, multimail and django-anymail tests and comments). The texts for more than
  50 recipients, an overlong Tag or Subject and bad Metadata are the fake's own (the metadata
  ones keep Postmark's "Invalid metadata content." opening).
* 400: "The 'From' address you supplied (...) is not a Sender Signature on your account. ..."
  (quoted in many client projects).
* 406: "You tried to send to recipient(s) that have been marked as inactive. Found inactive
  addresses: .... Inactive recipients are ones that have generated a hard bounce, a spam
  complaint, or a manual suppression." (postmark.js / postmark-gem fixtures); batch items use
  the "a recipient that has been" wording of the batch example in Postmark's email API docs.
* 410: "You may only send up to 500 messages in a single batched request." (API overview).
* 1101: "The Template's 'Alias' associated with this request is not valid or was not found."
  / "The 'TemplateId' associated with this request is not valid or was not found."
  (postmark-dotnet, postmark-java and postmarker tests). 1120 for a missing TemplateModel
  (API overview: "a required field is missing ... TemplateModel").
* 1226 / 1235 / 1236: API overview and the postmark-php integration test ("The
  'MessageStream' provided does not exist on this server."). Postmark accepts API sends on
  Broadcasts streams; only Inbound streams answer 1236, and so does the fake.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote, urlsplit

__all__ = ["FakePostmark", "RecordedMessage", "RecordedRequest"]

#: The token the fake expects when none is given.
#: (A fake's well-known test token, not a secret.)
DEFAULT_SERVER_TOKEN = "fake-server-token"  # noqa: S105  # nosec B105
#: Postmark's limits (Swagger descriptions, API overview, custom metadata FAQ).
MAX_RECIPIENTS = 50
MAX_BATCH_MESSAGES = 500
MAX_TAG = 1000
MAX_SUBJECT = 2000
MAX_METADATA_FIELDS = 10
MAX_METADATA_KEY = 20
MAX_METADATA_VALUE = 80
#: Request size limits: 10 MB for single sends, 50 MB for batches (API overview, HTTP 413).
MAX_BODY = 10 * 1024 * 1024
MAX_BATCH_BODY = 50 * 1024 * 1024

STREAM_TYPES = frozenset({"Transactional", "Broadcasts", "Inbound"})
DELIVERY_TYPES = frozenset({"Live", "Sandbox"})
TRACK_LINKS = frozenset({"None", "HtmlAndText", "HtmlOnly", "TextOnly"})
_JSON_TYPES = frozenset({"application/json", "text/json", "text/x-json"})
_ACCEPT_ANY = frozenset({"*/*", "application/*", "text/*"})

SEND_ENDPOINTS = ("/email", "/email/withTemplate", "/email/batch", "/email/batchWithTemplates")
_STREAMS_PREFIX = "/message-streams/"

_MSG_AUTH_MISSING = (
    "No Account or Server API tokens were supplied in the HTTP headers. Please add a header "
    "for either X-Postmark-Server-Token or X-Postmark-Account-Token."
)
_MSG_AUTH_WRONG = "Request does not contain a valid Server token."
_MSG_JSON_REQUIRED = (
    "Content-Type and Accept headers must be set to application/json, text/json, or text/x-json."
)
_MSG_INVALID_JSON = "Invalid JSON: the request body is not syntactically valid JSON."
_MSG_ZERO_RECIPIENTS = "Zero recipients specified"
_MSG_NO_BODY = "Provide either email TextBody or HtmlBody or both."
_MSG_NO_FROM = "Invalid 'From' value."
_MSG_TOO_MANY_BATCH = "You may only send up to 500 messages in a single batched request."
_MSG_STREAM_UNKNOWN = "The 'MessageStream' provided does not exist on this server."
_MSG_STREAM_NO_SENDING = (
    "Sending is not supported on the supplied 'MessageStream'. "
    "Sending is not possible with Inbound Message Streams."
)
_MSG_NO_TEMPLATE_ID = (
    "The 'TemplateId' associated with this request is not valid or was not found."
)
_MSG_NO_TEMPLATE_ALIAS = (
    "The Template's 'Alias' associated with this request is not valid or was not found."
)
_MSG_STREAM_NOT_FOUND = "The message stream for the provided 'ID' was not found."
_MSG_INACTIVE = (
    "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
    "addresses: {addresses}. Inactive recipients are ones that have generated a hard bounce, "
    "a spam complaint, or a manual suppression."
)
_MSG_INACTIVE_BATCH = (
    "You tried to send to a recipient that has been marked as inactive. Found inactive "
    "addresses: {addresses}. Inactive recipients are ones that have generated a hard bounce, "
    "a spam complaint, or a manual suppression. "
)
_MSG_NOT_SIGNATURE = (
    "The 'From' address you supplied ({sender}) is not a Sender Signature on your account. "
    "Please add and confirm this address in order to be able to use it in the 'From' field of "
    "your messages."
)

#: A fault answer's default ErrorCode and Message, by HTTP status.
_FAULT_DEFAULTS: dict[int, tuple[int, str]] = {
    401: (10, _MSG_AUTH_WRONG),
    422: (300, "Invalid email request"),
    429: (429, "Rate limit exceeded: please reduce the request rate."),
    500: (101, "You encountered an error that shouldn't have occurred."),
    503: (100, "The Postmark API is offline for maintenance."),
}

_DEFAULT_HTML = (
    "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
    "<center><h1>403 Forbidden</h1></center>\r\n</body>\r\n</html>\r\n"
)

#: The ID of the one server the fake plays.
SERVER_ID = 1
_CREATED_AT = "2020-07-01T00:00:00-04:00"

# Address checks: "addr@domain" or "Name <addr@domain>", comma separated.
_MAILBOX = re.compile(
    r'(?:(?P<name>"(?:[^"\\]|\\.)*"|[^"<>]*?)\s*<(?P<angle>[^<>\s]*)>|(?P<bare>[^\s<>"]+))'
)
_LOCAL = re.compile(r"[\w!#$%&'*+/=?^`{|}~.-]+")
_LABEL = re.compile(r"[^\W_](?:[\w-]{0,61}[^\W_])?")
_TLD = re.compile(r"[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59}", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- records --------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RecordedMessage:
    """One message Postmark (or the fake) accepted, as the client sent it.

    ``endpoint`` is the path it came through (``"/email"``, ``"/email/batch"``, ...);
    ``message_stream`` is the stream it went to (``"outbound"`` when the payload named none);
    ``template`` is the ``TemplateId`` or ``TemplateAlias`` of a template send; ``payload`` is
    the message's JSON object as received.
    """

    message_id: str
    endpoint: str
    to: str
    from_: str
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None
    tag: str | None = None
    metadata: dict[str, str] | None = None
    message_stream: str = "outbound"
    template: str | int | None = None
    template_model: dict[str, Any] | None = None
    headers: list[dict[str, Any]] = field(default_factory=list)
    track_opens: bool | None = None
    track_links: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    cc: str | None = None
    bcc: str | None = None
    reply_to: str | None = None

    @classmethod
    def from_payload(
        cls, endpoint: str, payload: Mapping[str, Any], message_id: str
    ) -> RecordedMessage:
        """Build the record of one message object (one item of a batch) sent to ``endpoint``."""
        template: str | int | None = None
        template_id = payload.get("TemplateId")
        if isinstance(template_id, int) and not isinstance(template_id, bool):
            template = template_id
        else:
            template = _text(payload.get("TemplateAlias"))
        model = payload.get("TemplateModel")
        metadata = payload.get("Metadata")
        headers = payload.get("Headers")
        stream = payload.get("MessageStream")
        track_opens = payload.get("TrackOpens")
        return cls(
            message_id=message_id,
            endpoint=endpoint,
            to=_text(payload.get("To")) or "",
            from_=_text(payload.get("From")) or "",
            subject=_text(payload.get("Subject")),
            text_body=_text(payload.get("TextBody")),
            html_body=_text(payload.get("HtmlBody")),
            tag=_text(payload.get("Tag")),
            metadata=(
                {str(k): v if isinstance(v, str) else str(v) for k, v in metadata.items()}
                if isinstance(metadata, Mapping)
                else None
            ),
            message_stream=stream if isinstance(stream, str) and stream else "outbound",
            template=template,
            template_model=dict(model) if isinstance(model, Mapping) else None,
            headers=(
                [dict(h) for h in headers if isinstance(h, Mapping)]
                if isinstance(headers, list)
                else []
            ),
            track_opens=track_opens if isinstance(track_opens, bool) else None,
            track_links=_text(payload.get("TrackLinks")),
            payload=dict(payload),
            cc=_text(payload.get("Cc")),
            bcc=_text(payload.get("Bcc")),
            reply_to=_text(payload.get("ReplyTo")),
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake received, whatever it answered (faults included).

    ``path`` has no query string (that is in ``query``); ``body`` is the raw body and
    ``json`` its decoded JSON, or ``None`` when the body is empty or not JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    json: Any = None
    query: str = ""


# -- answers and faults ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    error_code: int | None = None
    close: bool = False
    extra_headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _Fault:
    remaining: int
    path: str | None
    reply: _Reply | None  # None: drop the connection


@dataclass
class _Slow:
    seconds: float
    remaining: int


def _encode(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_reply(status: int, data: object, *, close: bool = False) -> _Reply:
    return _Reply(status, _encode(data), close=close)


def _error(status: int, code: int, message: str, **kwargs: Any) -> _Reply:
    body = _encode({"ErrorCode": code, "Message": message})
    return _Reply(status, body, error_code=code, **kwargs)


def _submitted_at() -> str:
    """Now, the way Postmark writes ``SubmittedAt``: seven fractional digits, UTC."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0Z"


# -- address checks -------------------------------------------------------------------------


def _split_addresses(value: str) -> list[str]:
    """Split on the commas that are outside quotes and angle brackets."""
    parts: list[str] = []
    current: list[str] = []
    quoted = angle = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"' and not angle:
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        elif char == "," and not quoted and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _valid_addr_spec(addr: str) -> bool:
    local, at, domain = addr.rpartition("@")
    if not at or not local or len(local) > 64 or len(addr) > 254:
        return False
    if not _LOCAL.fullmatch(local) or local.startswith(".") or local.endswith("."):
        return False
    if ".." in local:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not _TLD.fullmatch(labels[-1]):
        return False
    return all(_LABEL.fullmatch(label) for label in labels)


def _mailbox_address(part: str) -> str | None:
    """The address of one ``addr`` or ``Name <addr>`` entry, or None if it does not parse."""
    match = _MAILBOX.fullmatch(part)
    if match is None:
        return None
    addr = match.group("angle") if match.group("bare") is None else match.group("bare")
    return addr if addr and _valid_addr_spec(addr) else None


def _address_problem(field_name: str, part: str) -> str:
    match = _MAILBOX.fullmatch(part)
    addr = part
    if match is not None:
        addr = match.group("bare") or match.group("angle") or part
    if "@" not in addr:
        return (
            f"Error parsing '{field_name}': Illegal email address '{addr}'. "
            "It must contain the '@' symbol."
        )
    return f"Invalid '{field_name}' address: '{part}'."


def _parse_addresses(field_name: str, value: str) -> tuple[list[str], str | None]:
    """The addresses of a comma-separated list, or the 300 message for the first bad one."""
    if _CONTROL.search(value):
        return [], f"Invalid '{field_name}' address: '{value}'."
    parts = [p for p in _split_addresses(value) if p]
    if not parts:
        return [], f"Invalid '{field_name}' address: '{value}'."
    addresses: list[str] = []
    for part in parts:
        addr = _mailbox_address(part)
        if addr is None:
            return [], _address_problem(field_name, part)
        addresses.append(addr)
    return addresses, None


# -- the HTTP side --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: FakePostmark) -> None:
        self.fake = fake
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's FQDN up, which can hang without DNS.
        TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away: not the fake's business
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakePostmark/1.0"
    sys_version = ""
    disable_nagle_algorithm = True

    @property
    def fake(self) -> FakePostmark:
        return cast(_Server, self.server).fake

    def setup(self) -> None:
        super().setup()
        self.fake._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and benchmarks do not want a line per request."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake = self.fake
        split = urlsplit(self.path)
        path = split.path
        limit = MAX_BATCH_BODY if path.startswith("/email/batch") else MAX_BODY
        raw_headers = self.headers.items()
        headers = {name.lower(): value for name, value in raw_headers}
        try:
            body = self._read_body(limit, headers)
        except ValueError:
            self._write(_error(400, 0, "The request body could not be read.", close=True))
            return
        if body is None:
            self._write(_error(413, 0, "The request exceeded Postmark's size limit.", close=True))
            return
        decoded: Any = None
        if body:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None
        fake._record_request(
            RecordedRequest(
                method=self.command,
                path=path,
                headers=dict(raw_headers),
                body=body,
                json=decoded,
                query=split.query,
            )
        )
        delay = fake._next_delay()
        if delay > 0:
            fake._stopping.wait(delay)
        found, reply = fake._take_fault(path)
        if not found:
            try:
                reply = fake._dispatch(self.command, path, headers, body)
            except Exception as exc:  # a bug in the fake: say so instead of hanging up
                reply = _error(500, 101, f"FakePostmark failed: {exc!r}")
        if reply is None:
            self._drop()
        else:
            self._write(reply)

    def _read_body(self, limit: int, headers: Mapping[str, str]) -> bytes | None:
        """The request body; None when it is over ``limit``; ValueError when unreadable."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > limit:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(headers.get("content-length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > limit:
            return None
        return self.rfile.read(length) if length else b""

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _write(self, reply: _Reply) -> None:
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(reply.body)}",
        ]
        if reply.error_code is not None:
            lines.append(f"X-PM-ApiErrorCode: {reply.error_code}")
        lines.extend(f"{name}: {value}" for name, value in reply.extra_headers)
        if reply.close or self.close_connection:
            self.close_connection = True
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += reply.body
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


# -- the fake -------------------------------------------------------------------------------


class FakePostmark:
    """A Postmark look-alike on a loopback port (:attr:`url` once started).

    :param server_token: the ``X-Postmark-Server-Token`` every request must carry.
    :param host: the address to listen on (loopback by default).
    :param port: the port; 0 picks a free one.
    :param delay: seconds every request waits before its answer (also settable later).
    :param server_name: ``Name`` in ``GET /server``.
    :param delivery_type: ``"Live"`` or ``"Sandbox"``, ``DeliveryType`` in ``GET /server``.
    :param confirmed_senders: the From addresses that have a confirmed Sender Signature:
        addresses, or ``"@domain"`` for a verified domain; None (the default) confirms all.
    :param streams: Message Streams by ID, each a mapping with ``MessageStreamType``
        (``"Transactional"``, ``"Broadcasts"`` or ``"Inbound"``) and optionally ``Name``,
        ``Description`` and ``ArchivedAt`` (an ISO date: the stream is archived). The default
        is the one ``"outbound"`` Transactional stream.
    :param templates: the templates that exist, ints for ``TemplateId`` and strings for
        ``TemplateAlias``; None (the default) means any template exists.

    The configuration stays in public attributes of the same names (``streams`` normalized to
    dicts, ``confirmed_senders`` lower-cased), which tests may change while it runs. Also
    public: :attr:`messages` (accepted messages, in order), :attr:`requests` (every request),
    :attr:`inactive_recipients` (addresses answered with ErrorCode 406).

    Checks happen in this order: route (404/405), token (401, ErrorCode 10), headers (415,
    ErrorCode 409), JSON (422, ErrorCode 402), then each message: field types (403), From,
    To/Cc/Bcc/ReplyTo and the recipient count (300), template fields (1101, 1120), body (300),
    Subject/Tag/Metadata limits (300), MessageStream (1235, 1236), template existence (1101),
    sender signature (400), inactive recipients (406).
    """

    def __init__(
        self,
        *,
        server_token: str = DEFAULT_SERVER_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        server_name: str = "Fake Postmark",
        delivery_type: str = "Live",
        confirmed_senders: Iterable[str] | None = None,
        streams: Mapping[str, Mapping[str, Any]] | None = None,
        templates: Iterable[str | int] | None = None,
    ) -> None:
        if delivery_type not in DELIVERY_TYPES:
            raise ValueError(f"delivery_type must be 'Live' or 'Sandbox', not {delivery_type!r}")
        self.server_token = server_token
        self.host = host
        self.port = port
        self.delay = float(delay)
        self._initial_delay = self.delay
        self.server_name = server_name
        self.delivery_type = delivery_type
        self.confirmed_senders: set[str] | None = (
            None if confirmed_senders is None else {s.strip().lower() for s in confirmed_senders}
        )
        if streams is None:
            streams = {"outbound": {"MessageStreamType": "Transactional"}}
        self.streams: dict[str, dict[str, Any]] = {
            sid: _stream_config(sid, cfg) for sid, cfg in streams.items()
        }
        self.templates: set[str | int] | None = None if templates is None else set(templates)
        self.messages: list[RecordedMessage] = []
        self.requests: list[RecordedRequest] = []
        self.inactive_recipients: set[str] = set()

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._faults: deque[_Fault] = deque()
        self._slow: deque[_Slow] = deque()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connection_count = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port = 0

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> FakePostmark:
        """Listen and serve in a background thread; returns self. Starting twice is a no-op."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), self)
        self._connection_count = 0
        self._bound_port = server.server_port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"FakePostmark:{self._bound_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every socket, kept-alive client connections included."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            open_connections = list(self._connections.items())
        for sock, _ in open_connections:
            _shutdown(sock)
        for _, handler in open_connections:
            handler.join(timeout=2.0)
        if thread is not None:
            thread.join(timeout=2.0)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakePostmark:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FakePostmark {where} messages={len(self.messages)}>"

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, the API root to give the client; valid once started."""
        if self._server is None:
            raise RuntimeError("FakePostmark is not started: call start() first.")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def connection_count(self) -> int:
        """TCP connections accepted since start() or reset(): 1 for a kept-alive client."""
        return self._connection_count

    # -- test controls ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget messages, requests, connection count, pending faults and slowness (``delay``
        goes back to its constructor value). The configuration stays."""
        with self._lock:
            self.messages.clear()
            self.requests.clear()
            self._faults.clear()
            self._slow.clear()
            self._connection_count = 0
            self.delay = self._initial_delay

    def fail(
        self,
        status: int = 500,
        error_code: int | None = None,
        message: str | None = None,
        *,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``path`` only, if given) with ``status`` and
        ``{"ErrorCode": error_code, "Message": message}``. Without ``error_code`` the code
        fits the status (401: 10, 422: 300, 429: 429, 500: 101, 503: 100, others 0); without
        ``message`` a Postmark-like text is used.

        Faults queue up first in, first out; each request consumes the first fault whose
        ``path`` (compared without the query string) matches, or that has no ``path``, before
        any other check: a faulted request is recorded in :attr:`requests` but never accepted.
        """
        default_code, default_message = _FAULT_DEFAULTS.get(
            status, (0, f"HTTP {status} from FakePostmark.")
        )
        code = default_code if error_code is None else error_code
        reply = _error(status, code, default_message if message is None else message)
        self._add_fault(_Fault(_times(times), path, reply))

    def fail_html(
        self,
        status: int = 403,
        body: str = _DEFAULT_HTML,
        *,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with a non-JSON ``text/html`` body, as
        a proxy or web application firewall in front of the API would."""
        reply = _Reply(status, body.encode("utf-8"), content_type="text/html; charset=utf-8")
        self._add_fault(_Fault(_times(times), path, reply))

    def drop_connection(self, *, times: int = 1, path: str | None = None) -> None:
        """Close the connection of the next ``times`` matching requests without answering."""
        self._add_fault(_Fault(_times(times), path, None))

    def slow(self, seconds: float, *, times: int | None = None) -> None:
        """Make requests wait ``seconds`` before their answer: the next ``times`` requests, or
        with ``times=None`` every request from now on (the same as setting ``delay``)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        if times is None:
            self.delay = float(seconds)
            return
        with self._lock:
            self._slow.append(_Slow(float(seconds), _times(times)))

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[RecordedMessage]:
        """Wait until at least ``count`` messages were accepted; return them all (a copy).
        Raises TimeoutError when ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"FakePostmark got {len(self.messages)} of {count} messages "
                        f"within {timeout} s."
                    )
                self._changed.wait(remaining)
            return list(self.messages)

    # -- used by the handler ----------------------------------------------------------------

    def _register(self, sock: socket.socket) -> None:
        with self._lock:
            self._connection_count += 1
            if self._stopping.is_set():
                _shutdown(sock)
                return
            self._connections[sock] = threading.current_thread()

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    def _record_request(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_delay(self) -> float:
        with self._lock:
            if not self._slow:
                return self.delay
            slow = self._slow[0]
            slow.remaining -= 1
            if slow.remaining <= 0:
                self._slow.popleft()
            return slow.seconds

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str) -> tuple[bool, _Reply | None]:
        """(True, answer or None to drop) for the first queued fault matching ``path``."""
        with self._lock:
            for fault in self._faults:
                if fault.path is None or fault.path == path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return True, fault.reply
        return False, None

    def _accept(self, endpoint: str, item: dict[str, Any]) -> dict[str, Any]:
        message_id = str(uuid.uuid4())
        record = RecordedMessage.from_payload(endpoint, item, message_id)
        with self._changed:
            self.messages.append(record)
            self._changed.notify_all()
        return {
            "To": item.get("To"),
            "SubmittedAt": _submitted_at(),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }

    # -- routing ----------------------------------------------------------------------------

    def _dispatch(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        """The answer to one request; ``headers`` has lower-case names."""
        if path in SEND_ENDPOINTS:
            allowed = "POST"
        elif path == "/server" or (
            path.startswith(_STREAMS_PREFIX) and "/" not in path[len(_STREAMS_PREFIX) :]
        ):
            allowed = "GET"
        else:
            return _error(404, 0, f"No HTTP resource was found that matches '{path}'.")
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            return _error(
                405,
                0,
                f"The requested resource does not support http method '{method}'.",
                extra_headers=(("Allow", allowed),),
            )

        token = headers.get("x-postmark-server-token")
        if token is None or not token.strip():
            return _error(401, 10, _MSG_AUTH_MISSING)
        if token != self.server_token:
            return _error(401, 10, _MSG_AUTH_WRONG)

        # Postmark documents HTTP 415 for missing expected headers and ErrorCode 409 "JSON
        # required"; a missing Accept header means "anything", so only a wrong one is refused.
        if not _accepts_json(headers.get("accept")):
            return _error(415, 409, _MSG_JSON_REQUIRED)

        if allowed == "GET":
            if path == "/server":
                return _json_reply(200, self._server_info())
            return self._stream_info(unquote(path[len(_STREAMS_PREFIX) :]))

        if not _is_json_type(headers.get("content-type")):
            return _error(415, 409, _MSG_JSON_REQUIRED)
        try:
            data = json.loads(body.decode("utf-8-sig"))
        except ValueError:
            return _error(422, 402, _MSG_INVALID_JSON)

        if path in ("/email", "/email/withTemplate"):
            templated = path == "/email/withTemplate"
            problem = self._check(data, templated=templated)
            if problem is not None:
                return _error(422, problem[0], problem[1])
            return _json_reply(200, self._accept(path, data))

        if path == "/email/batch":
            items = data
            if not isinstance(items, list):
                return _error(422, 403, "Invalid request: the batch must be a JSON array.")
        else:
            items = data.get("Messages") if isinstance(data, dict) else None
            if not isinstance(items, list):
                return _error(
                    422, 403, "Invalid request field(s): 'Messages' must be a JSON array."
                )
        if len(items) > MAX_BATCH_MESSAGES:
            return _error(422, 410, _MSG_TOO_MANY_BATCH)
        templated = path == "/email/batchWithTemplates"
        results: list[dict[str, Any]] = []
        for item in items:
            problem = self._check(item, templated=templated, batch=True)
            if problem is None:
                results.append(self._accept(path, item))
            else:
                results.append({"ErrorCode": problem[0], "Message": problem[1]})
        return _json_reply(200, results)

    # -- answers for GET --------------------------------------------------------------------

    def _server_info(self) -> dict[str, Any]:
        inbound_hash = uuid.uuid5(uuid.NAMESPACE_URL, self.server_token).hex
        return {
            "ID": SERVER_ID,
            "Name": self.server_name,
            "ApiTokens": [self.server_token],
            "Color": "blue",
            "SmtpApiActivated": True,
            "RawEmailEnabled": False,
            "DeliveryType": self.delivery_type,
            "ServerLink": f"https://account.postmarkapp.com/servers/{SERVER_ID}/streams",
            "InboundAddress": f"{inbound_hash}@inbound.postmarkapp.com",
            "InboundHookUrl": "",
            "BounceHookUrl": "",
            "OpenHookUrl": "",
            "DeliveryHookUrl": "",
            "PostFirstOpenOnly": False,
            "InboundDomain": "",
            "InboundHash": inbound_hash,
            "InboundSpamThreshold": 0,
            "TrackOpens": False,
            "TrackLinks": "None",
            "IncludeBounceContentInHook": False,
            "ClickHookUrl": "",
            "EnableSmtpApiErrorHooks": False,
        }

    def _stream_info(self, stream_id: str) -> _Reply:
        config = self.streams.get(stream_id)
        if config is None:
            return _error(422, 1226, _MSG_STREAM_NOT_FOUND)
        archived = config.get("ArchivedAt")
        kind = config["MessageStreamType"]
        return _json_reply(
            200,
            {
                "ID": stream_id,
                "ServerID": SERVER_ID,
                "Name": config.get("Name") or stream_id,
                "Description": config.get("Description"),
                "MessageStreamType": kind,
                "CreatedAt": config.get("CreatedAt") or _CREATED_AT,
                "UpdatedAt": config.get("UpdatedAt"),
                "ArchivedAt": archived,
                "ExpectedPurgeDate": config.get("ExpectedPurgeDate") or _purge_date(archived),
                "SubscriptionManagementConfiguration": {
                    "UnsubscribeHandlingType": "Postmark" if kind == "Broadcasts" else "None"
                },
            },
        )

    # -- message checks ---------------------------------------------------------------------

    def _check(self, item: Any, *, templated: bool, batch: bool = False) -> tuple[int, str] | None:
        """None when Postmark would accept ``item``, else its (ErrorCode, Message)."""
        if not isinstance(item, dict):
            return 403, "Invalid request field(s): each message must be a JSON object."
        wrong = _wrong_type(item)
        if wrong is not None:
            return 403, f"Invalid request field(s): '{wrong}'."

        sender = item.get("From")
        if not sender or not sender.strip():
            return 300, _MSG_NO_FROM
        senders, problem = _parse_addresses("From", sender)
        if problem is not None or len(senders) != 1:
            return 300, f"Invalid 'From' address: '{sender}'."

        to = item.get("To")
        if not to or not to.strip():
            return 300, _MSG_ZERO_RECIPIENTS
        recipients: list[str] = []
        for name in ("To", "Cc", "Bcc"):
            value = item.get(name)
            if value is None or (name != "To" and not value.strip()):
                continue
            found, problem = _parse_addresses(name, value)
            if problem is not None:
                return 300, problem
            recipients.extend(found)
        if len(recipients) > MAX_RECIPIENTS:
            return 300, (
                f"Too many recipients: a message can have at most {MAX_RECIPIENTS} recipients "
                f"across To, Cc and Bcc, and this one has {len(recipients)}."
            )
        reply_to = item.get("ReplyTo")
        if reply_to is not None and reply_to.strip():
            _, problem = _parse_addresses("ReplyTo", reply_to)
            if problem is not None:
                return 300, problem

        template_id = item.get("TemplateId")
        alias = item.get("TemplateAlias")
        if templated:
            if template_id is None and not alias:
                return 1101, "Provide either a 'TemplateId' or a 'TemplateAlias'."
            if template_id is not None and alias:
                return 1101, "Provide either a 'TemplateId' or a 'TemplateAlias', not both."
            if item.get("TemplateModel") is None:
                return 1120, "The 'TemplateModel' field is required."
        elif not item.get("TextBody") and not item.get("HtmlBody"):
            return 300, _MSG_NO_BODY

        problem_text = _limits(item)
        if problem_text is not None:
            return 300, problem_text

        stream_id = item.get("MessageStream") or "outbound"
        stream = self.streams.get(stream_id)
        if stream is None or stream.get("ArchivedAt"):
            return 1235, _MSG_STREAM_UNKNOWN
        if stream["MessageStreamType"] == "Inbound":
            return 1236, _MSG_STREAM_NO_SENDING

        if templated and self.templates is not None:
            if template_id is not None and template_id not in self.templates:
                return 1101, _MSG_NO_TEMPLATE_ID
            if template_id is None and alias not in self.templates:
                return 1101, _MSG_NO_TEMPLATE_ALIAS

        if not self._confirmed(senders[0]):
            return 400, _MSG_NOT_SIGNATURE.format(sender=sender)

        if self.inactive_recipients:
            inactive_set = {a.strip().lower() for a in self.inactive_recipients}
            inactive = [a for a in recipients if a.lower() in inactive_set]
            if inactive:
                text = _MSG_INACTIVE_BATCH if batch else _MSG_INACTIVE
                return 406, text.format(addresses=", ".join(inactive))
        return None

    def _confirmed(self, address: str) -> bool:
        if self.confirmed_senders is None:
            return True
        address = address.lower()
        domain = "@" + address.rpartition("@")[2]
        return address in self.confirmed_senders or domain in self.confirmed_senders


# -- helpers --------------------------------------------------------------------------------

_STRING_FIELDS = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "ReplyTo",
    "Subject",
    "Tag",
    "HtmlBody",
    "TextBody",
    "MessageStream",
    "TrackLinks",
    "TemplateAlias",
)


def _wrong_type(item: Mapping[str, Any]) -> str | None:
    """The first field whose JSON type Postmark could not take, or None."""
    for name in _STRING_FIELDS:
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            return name
    for name in ("TrackOpens", "InlineCss"):
        value = item.get(name)
        if value is not None and not isinstance(value, bool):
            return name
    template_id = item.get("TemplateId")
    if template_id is not None and (
        not isinstance(template_id, int) or isinstance(template_id, bool)
    ):
        return "TemplateId"
    for name in ("TemplateModel", "Metadata"):
        value = item.get(name)
        if value is not None and not isinstance(value, dict):
            return name
    headers = item.get("Headers")
    if headers is not None and not (
        isinstance(headers, list)
        and all(
            isinstance(h, dict)
            and isinstance(h.get("Name"), str)
            and isinstance(h.get("Value"), str)
            for h in headers
        )
    ):
        return "Headers"
    attachments = item.get("Attachments")
    if attachments is not None and not isinstance(attachments, list):
        return "Attachments"
    track_links = item.get("TrackLinks")
    if track_links is not None and track_links not in TRACK_LINKS:
        return "TrackLinks"
    return None


def _limits(item: Mapping[str, Any]) -> str | None:
    """The 300 message for an overlong Subject or Tag or bad Metadata, or None."""
    subject = item.get("Subject")
    if subject is not None and len(subject) > MAX_SUBJECT:
        return f"The 'Subject' field is too long: at most {MAX_SUBJECT} characters are allowed."
    tag = item.get("Tag")
    if tag is not None and len(tag) > MAX_TAG:
        return f"The 'Tag' field is too long: at most {MAX_TAG} characters are allowed."
    metadata = item.get("Metadata")
    if metadata:
        if len(metadata) > MAX_METADATA_FIELDS:
            return (
                f"Invalid metadata content. At most {MAX_METADATA_FIELDS} fields are allowed, "
                f"and this message has {len(metadata)}."
            )
        seen: set[str] = set()
        for key, value in metadata.items():
            if not key or len(key) > MAX_METADATA_KEY:
                return (
                    f"Invalid metadata content. Field names must be 1 to {MAX_METADATA_KEY} "
                    f"characters long: '{key}'."
                )
            if key.lower() in seen:
                return f"Invalid metadata content. Field names must be unique: '{key}'."
            seen.add(key.lower())
            if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
                return (
                    "Invalid metadata content. Field values must be strings of at most "
                    f"{MAX_METADATA_VALUE} characters: '{key}'."
                )
    return None


def _accepts_json(value: str | None) -> bool:
    if value is None or not value.strip():
        return True
    for part in value.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _JSON_TYPES or media in _ACCEPT_ANY:
            return True
    return False


def _is_json_type(value: str | None) -> bool:
    return value is not None and value.split(";", 1)[0].strip().lower() in _JSON_TYPES


def _stream_config(stream_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
    kind = config.get("MessageStreamType", "Transactional")
    if kind not in STREAM_TYPES:
        raise ValueError(
            f"stream {stream_id!r}: MessageStreamType must be one of "
            f"{sorted(STREAM_TYPES)}, not {kind!r}"
        )
    out = dict(config)
    out["MessageStreamType"] = kind
    if "Name" not in out:
        out["Name"] = {
            "outbound": "Default Transactional Stream",
            "inbound": "Default Inbound Stream",
        }.get(stream_id, stream_id)
    return out


def _purge_date(archived: object) -> str | None:
    """Postmark purges an archived stream 45 days after archiving it."""
    if not isinstance(archived, str):
        return None
    try:
        when = datetime.fromisoformat(archived.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when + timedelta(days=45)).isoformat()


def _times(times: int) -> int:
    if times < 1:
        raise ValueError("times must be at least 1")
    return times


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
