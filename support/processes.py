"""Helpers: the example app under gunicorn on a loopback port, a visitor that keeps its cookies
and CSRF token, and finding sign-in mail among what FakePostmark received."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import pytest
import requests

from flask_postmark_auth.testing import FakePostmark, RecordedMessage
from support.redis_server import free_port

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SECRET_KEY = "reliability-tests-0123456789abcdef"
FROM = "Acme <login@acme.example>"
JSON = {"Accept": "application/json"}
#: Every HTTP request of these tests gives up after this many seconds: a hang fails a test,
#: it never blocks the run.
TIMEOUT = 30
#: Environment variables of the test process that must not reach an app process.
_FOREIGN = ("POSTMARK_AUTH_", "FLASK_", "GUNICORN", "SECRET_KEY")


def missing(tool: str, hint: str) -> NoReturn:
    """Fail under CI (CI=true), where nothing may skip; skip elsewhere, saying what is missing."""
    message = f"{tool} is needed for this test: {hint}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def gunicorn_command() -> list[str]:
    """``python -m gunicorn`` with this interpreter (skips, or fails in CI, without it)."""
    if importlib.util.find_spec("gunicorn") is None:
        missing("gunicorn", "pip install 'gunicorn>=23.0' into the virtualenv")
    argv = [sys.executable, "-m", "gunicorn"]
    release = re.match(r"(\d+)\.(\d+)", version("gunicorn"))
    if release is None or (int(release[1]), int(release[2])) >= (25, 1):
        # Since 25.1 gunicorn opens a control socket under $HOME unless told not to.
        argv.append("--no-control-socket")
    return argv


def app_env(
    fake: FakePostmark | None,
    settings: Mapping[str, object],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of an example-app process: this one's less anything that configures
    Flask, the app or gunicorn; then ``SECRET_KEY``, the connector pointing at ``fake``, and
    ``settings`` (names without the ``POSTMARK_AUTH_`` prefix; non-strings JSON-encoded, as
    ``create_app()`` JSON-decodes them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env["SECRET_KEY"] = SECRET_KEY
    if fake is not None:
        env["POSTMARK_AUTH_SERVER_TOKEN"] = fake.server_token
        env["POSTMARK_AUTH_FROM_EMAIL"] = FROM
        env["POSTMARK_AUTH_API_URL"] = fake.url
    # A deployment names its canonical URL; these tests read link paths only. They
    # deliver inline unless they say otherwise, so a sent message is there on the answer.
    settings = {"BASE_URL": f"http://{HOST}", "DELIVERY": "sync", **settings}
    for name, value in settings.items():
        env[f"POSTMARK_AUTH_{name}"] = value if isinstance(value, str) else json.dumps(value)
    env.update(extra or {})
    return env


def stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM ``process`` (a graceful shutdown); after ``timeout`` s, SIGKILL its process
    group (it was started with ``start_new_session=True``), then reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


ServerT = TypeVar("ServerT", bound="GunicornApp")


class GunicornApp:
    """``gunicorn -w N -b 127.0.0.1:PORT "example_app:create_app()"`` as a subprocess in a
    session of its own; :meth:`stop` ends it (SIGTERM, then SIGKILL to the whole group)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *, workers: int = 1):
        self.name = name
        self.env = env
        self.workers = workers
        self.log_path = log_dir / f"{name}.log"
        self.access_path = log_dir / f"{name}-access.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        """gunicorn's own log (and the app's stderr) so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    #: What gunicorn serves.
    target = "example_app:create_app()"

    def argv(self) -> list[str]:
        """The gunicorn command line for :attr:`port`."""
        return [
            *gunicorn_command(),
            "--workers",
            str(self.workers),
            *self.worker_options(),
            "--bind",
            f"{HOST}:{self.port}",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            *self.log_options(),
            self.target,
        ]

    def worker_options(self) -> list[str]:
        return ["--worker-class", "sync"]

    def log_options(self) -> list[str]:
        """An access log of method, path, status and query (the tests read it), and
        gunicorn's own log to :meth:`log`."""
        return [
            "--access-logfile",
            str(self.access_path),
            "--access-logformat",
            "%(p)s %(m)s %(U)s %(s)s %(q)s",
            "--error-logfile",
            "-",
            "--log-level",
            "info",
        ]

    def start(self: ServerT, timeout: float = 60.0) -> ServerT:
        """Start and wait until every worker has booted and ``/auth/login`` answers."""
        for _ in range(3):  # a free port can be taken between choosing and binding it
            self.port = free_port()
            argv = self.argv()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    argv,
                    cwd=REPO,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                ready = self._wait_ready(timeout)
            except BaseException:
                self.stop()
                raise
            if ready:
                return self
            in_use = "Address already in use" in self.log()
            self.stop()
            if not in_use:
                break
        raise RuntimeError(
            f"gunicorn {self.name!r} did not come up; its log:\n{self.log()[-4000:]}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.log().count("Booting worker with pid") >= self.workers:
                try:
                    with requests.get(f"{self.url}/auth/login", headers=JSON, timeout=2) as r:
                        if r.status_code == 200:
                            return True
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop gracefully (SIGTERM); after 15 s, SIGKILL the master and its workers."""
        process, self.process = self.process, None
        if process is not None:
            stop_group(process, 15.0)

    def access_log(self) -> list[list[str]]:
        """Requests served so far: ``[pid, method, path, status, query]`` each."""
        try:
            lines = self.access_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        # gunicorn writes the pid as "<1234>".
        return [line.strip("<").replace(">", "", 1).split(" ", 4) for line in lines if line]

    def worker_pids(self, query: str | None = None) -> set[int]:
        """The worker processes that served requests (whose query string is ``query``)."""
        return {
            int(entry[0])
            for entry in self.access_log()
            if query is None or (len(entry) > 4 and entry[4] == query)
        }

    def __enter__(self: ServerT) -> ServerT:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Visitor:
    """One browser: its own cookies (a ``requests.Session``) and the CSRF token of its
    session, taken from ``GET /auth/login`` as JSON; every request asks for JSON."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.csrf_token = ""

    def start(self) -> Visitor:
        response = self.get("/auth/login")
        assert response.status_code == 200, (response.status_code, response.text[:500])
        self.csrf_token = response.json()["csrf_token"]
        return self

    def get(self, path: str) -> requests.Response:
        return self.http.get(
            self.base_url + path, headers=JSON, timeout=TIMEOUT, allow_redirects=False
        )

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> requests.Response:
        """POST JSON with the session's CSRF token; a sign-in starts a new session and
        answers with its token, which later posts use (as an SPA would)."""
        response = self.http.post(
            self.base_url + path,
            json=dict(body or {}),
            headers={**JSON, "X-CSRFToken": self.csrf_token},
            timeout=TIMEOUT,
            allow_redirects=False,
        )
        if response.status_code == 200 and "json" in response.headers.get("Content-Type", ""):
            fresh = response.json().get("csrf_token")
            if isinstance(fresh, str):
                self.csrf_token = fresh
        return response

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Visitor:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def mail_to(fake: FakePostmark, address: str, tag: str) -> RecordedMessage:
    """The newest message with ``tag`` that FakePostmark accepted for ``address``."""
    for message in reversed(list(fake.messages)):
        if message.to == address and message.tag == tag:
            return message
    raise AssertionError(f"FakePostmark has no {tag!r} mail for {address}")


def count_mail(fake: FakePostmark, addresses: set[str], tag: str | None = None) -> int:
    """How many accepted messages went to one of ``addresses`` (with ``tag``, if given)."""
    return sum(
        1 for m in list(fake.messages) if m.to in addresses and (tag is None or m.tag == tag)
    )


def as_mail(record: Mapping[str, Any]) -> RecordedMessage:
    """A dev-outbox record (JSON) as a :class:`RecordedMessage`, for ``code_in``/``link_in``."""
    return RecordedMessage(
        message_id=record["id"],
        endpoint="/email",
        to=record["to"],
        from_=record["from"] or "",
        subject=record["subject"],
        text_body=record["text"],
        html_body=record["html"],
        tag=record["tag"],
    )
