"""The HTTP plumbing: a threaded loopback server speaking HTTP/1.1 with keep-alive, which
reads each request (plain or chunked body, within Postmark's size limits), hands it to the
fake and writes the answer back."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from .limits import MAX_BATCH_BODY, MAX_BODY
from .records import RecordedRequest
from .replies import Reply, error


class Backend(Protocol):
    """What the server needs from the fake: connection book-keeping and the answers."""

    def _register(self, sock: socket.socket) -> None: ...

    def _unregister(self, sock: socket.socket) -> None: ...

    def _answer(self, request: RecordedRequest, headers: Mapping[str, str]) -> Reply | None:
        """Record ``request`` and answer it (``headers`` has lower-case names); None drops
        the connection."""
        ...


def shutdown_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: Backend) -> None:
        self.fake = fake
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakePostmark/1.0"
    sys_version = ""
    disable_nagle_algorithm = True

    @property
    def fake(self) -> Backend:
        return cast(Server, self.server).fake

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
        split = urlsplit(self.path)
        path = split.path
        limit = MAX_BATCH_BODY if path.startswith("/email/batch") else MAX_BODY
        raw_headers = self.headers.items()
        headers = {name.lower(): value for name, value in raw_headers}
        try:
            body = self._read_body(limit, headers)
        except ValueError:
            self._write(error(400, 0, "The request body could not be read.", close=True))
            return
        if body is None:
            self._write(error(413, 0, "The request exceeded Postmark's size limit.", close=True))
            return
        decoded: Any = None
        if body:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None
        request = RecordedRequest(
            method=self.command,
            path=path,
            headers=dict(raw_headers),
            body=body,
            json=decoded,
            query=split.query,
        )
        reply = self.fake._answer(request, headers)
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

    def _write(self, reply: Reply) -> None:
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
