"""``FakePostmark`` itself: its configuration, life cycle, test controls and what it
recorded; the parts it is made of live in the sibling modules."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from .account import stream_config
from .faults import (
    DEFAULT_HTML,
    Fault,
    Faults,
    error_reply,
    html_reply,
    times_at_least_one,
)
from .limits import DELIVERY_TYPES
from .records import RecordedMessage, RecordedRequest
from .replies import Reply, error, submitted_at
from .routing import dispatch
from .server import Server, shutdown_socket

#: The token the fake expects when none is given.
#: (A fake's well-known test token, not a secret.)
DEFAULT_SERVER_TOKEN = "fake-server-token"  # noqa: S105  # nosec B105


class FakePostmark:
    """A Postmark look-alike on a loopback port (:attr:`url` once started).

    - ``server_token``: the ``X-Postmark-Server-Token`` every request must carry.
    - ``host``: the address to listen on (loopback by default; an IPv6 one is bracketed in
      :attr:`url`).
    - ``port``: the port; ``0`` picks a free one.
    - ``delay``: seconds every request waits before its answer (also settable later).
    - ``server_name``: ``Name`` in ``GET /server``.
    - ``delivery_type``: ``"Live"`` or ``"Sandbox"``, ``DeliveryType`` in ``GET /server``;
      anything else raises :class:`ValueError`.
    - ``confirmed_senders``: the From addresses that have a confirmed Sender Signature:
      addresses, or ``"@domain"`` for a verified domain; ``None`` (the default) confirms all.
    - ``streams``: Message Streams by ID, each a mapping with ``MessageStreamType``
      (``"Transactional"``, ``"Broadcasts"`` or ``"Inbound"``) and optionally ``Name``,
      ``Description`` and ``ArchivedAt`` (an ISO date: the stream is archived). The default
      is the one ``"outbound"`` Transactional stream.
    - ``templates``: the templates that exist, ints for ``TemplateId`` and strings for
      ``TemplateAlias``; ``None`` (the default) means any template exists.

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
            sid: stream_config(sid, cfg) for sid, cfg in streams.items()
        }
        self.templates: set[str | int] | None = None if templates is None else set(templates)
        self.messages: list[RecordedMessage] = []
        self.requests: list[RecordedRequest] = []
        self.inactive_recipients: set[str] = set()

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._faults = Faults()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connection_count = 0
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port = 0

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> FakePostmark:
        """Listen and serve in a background thread; returns self. Starting twice is a no-op."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = Server((self.host, self.port), self)
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
            shutdown_socket(sock)
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
        reply = error_reply(status, error_code, message)
        self._add_fault(Fault(times_at_least_one(times), path, reply))

    def fail_html(
        self,
        status: int = 403,
        body: str = DEFAULT_HTML,
        *,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``path`` only, if given, matched as by
        :meth:`fail`) with HTTP ``status`` and ``body``, a non-JSON ``text/html`` page (by
        default a proxy's 403 page), as a proxy or web application firewall in front of the
        API would."""
        reply = html_reply(status, body)
        self._add_fault(Fault(times_at_least_one(times), path, reply))

    def drop_connection(self, *, times: int = 1, path: str | None = None) -> None:
        """Close the connection of the next ``times`` requests (to ``path`` only, if given,
        matched as by :meth:`fail`) without answering."""
        self._add_fault(Fault(times_at_least_one(times), path, None))

    def slow(self, seconds: float, *, times: int | None = None) -> None:
        """Make requests wait ``seconds`` before their answer: the next ``times`` requests, or
        with ``times=None`` every request from now on (the same as setting ``delay``)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        if times is None:
            self.delay = float(seconds)
            return
        with self._lock:
            self._faults.add_slow(float(seconds), times_at_least_one(times))

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

    # -- used by the server -----------------------------------------------------------------

    def _register(self, sock: socket.socket) -> None:
        with self._lock:
            self._connection_count += 1
            if self._stopping.is_set():
                shutdown_socket(sock)
                return
            self._connections[sock] = threading.current_thread()

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    def _answer(self, request: RecordedRequest, headers: Mapping[str, str]) -> Reply | None:
        """Record ``request``, wait out any slowness, then answer with the first matching
        fault (None: drop the connection) or as Postmark would."""
        self._record_request(request)
        delay = self._next_delay()
        if delay > 0:
            self._stopping.wait(delay)
        found, reply = self._take_fault(request.path)
        if found:
            return reply
        try:
            return dispatch(
                self, self._accept, request.method, request.path, headers, request.body
            )
        except Exception as exc:  # a bug in the fake: say so instead of hanging up
            return error(500, 101, f"FakePostmark failed: {exc!r}")

    def _record_request(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_delay(self) -> float:
        with self._lock:
            return self._faults.next_delay(self.delay)

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.add(fault)

    def _take_fault(self, path: str) -> tuple[bool, Reply | None]:
        """(True, answer or None to drop) for the first queued fault matching ``path``."""
        with self._lock:
            return self._faults.take(path)

    def _accept(self, endpoint: str, item: dict[str, Any]) -> dict[str, Any]:
        message_id = str(uuid.uuid4())
        record = RecordedMessage.from_payload(endpoint, item, message_id)
        with self._changed:
            self.messages.append(record)
            self._changed.notify_all()
        return {
            "To": item.get("To"),
            "SubmittedAt": submitted_at(),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }
