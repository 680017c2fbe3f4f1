"""Store outages (issue 7, item 4): Redis stopped in the middle of a run and started again,
a SQLite file locked by another connection, and one that cannot be written. While the store
is down sign-in answers 503 ``store_unavailable`` (JSON or HTML, never a traceback) and sends
nothing; afterwards it works again, and no code is valid that should not be."""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import flask_postmark_auth.extension
from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.errors import ConfigurationError
from flask_postmark_auth.state import state
from flask_postmark_auth.store import SQLiteStore, Store
from flask_postmark_auth.testing import RecordedMessage, code_in, record_messages
from support.redis_server import (
    DEFAULT_HOST,
    RedisServer,
    RedisUnavailableError,
    ping,
    unavailable,
    unique_prefix,
)
from tests.helpers import AppFactory

pytestmark = pytest.mark.reliability

JSON = {"Accept": "application/json"}
MANY = {"IP_REQUESTS_PER_HOUR": 1_000_000, "RESEND_INTERVAL": 0, "EMAILS_PER_HOUR": 1000}


class DurableRedis(RedisServer):
    """``redis-server`` with an append-only file fsynced before every reply, in a folder of
    the test's: a restart keeps what was acknowledged, as a production Redis does."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailableError("redis-server is not on PATH")
        argv = [binary, "--port", str(self.port), "--bind", DEFAULT_HOST, "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ping(DEFAULT_HOST, self.port, timeout=0.2):  # PONG only once the file is loaded
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RedisUnavailableError(f"redis-server did not come up on port {self.port}")


def assert_store_unavailable(response: TestResponse, *, as_json: bool) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == 503, (response.status_code, text[:300])
    assert "Traceback" not in text
    if as_json:
        assert response.json is not None
        assert response.json["error"] == "store_unavailable"
        assert set(response.json) == {"error", "message"}
    else:
        assert response.mimetype == "text/html"
        assert "unavailable" in text.lower()
        assert "<form" in text


def mail_for(outbox: list[RecordedMessage], address: str) -> RecordedMessage:
    return next(m for m in reversed(outbox) if m.to == address)


def verify(client: FlaskClient, address: str, code: str) -> TestResponse:
    return client.post("/auth/otp/verify", json={"email": address, "code": code})


class Load:
    """Threads signing fresh addresses in by code until stopped; every answer recorded."""

    def __init__(self, app: Flask, outbox: list[RecordedMessage], threads: int = 3) -> None:
        self.app = app
        self.outbox = outbox
        self.answers: list[tuple[float, str, str, int, Any]] = []
        self._stop = threading.Event()
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _record(self, address: str, step: str, status: int, body: Any) -> None:
        with self._lock:
            self.answers.append((time.monotonic(), address, step, status, body))

    def _run(self) -> None:
        client = self.app.test_client()
        while not self._stop.is_set():
            address = f"load-{next(self._numbers)}@example.com"
            try:
                sent = client.post("/auth/otp", json={"email": address})
                self._record(address, "request", sent.status_code, sent.json)
                if sent.status_code != 202:
                    continue
                answer = verify(client, address, code_in(mail_for(self.outbox, address)))
                self._record(address, "verify", answer.status_code, answer.json)
            except Exception as exc:  # an exception escaping the app (TESTING propagates it)
                self._record(address, "crash", 0, repr(exc))
            time.sleep(0.002)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@pytest.mark.redis
def test_redis_stopped_mid_run_answers_503_then_serves_again_with_no_code_revived(
    make_app: AppFactory, tmp_path: Path, report: Callable[[str], None]
) -> None:
    server = DurableRedis(tmp_path)
    try:
        server.start()
    except RedisUnavailableError as exc:
        unavailable(str(exc))
    app: Flask | None = None
    try:
        app = make_app(STORE=f"{server.url}?prefix={quote(unique_prefix(), safe='')}", **MANY)
        store = state(app).store
        client = app.test_client()
        with record_messages(app) as outbox:
            # Before the outage: a code used, a code pending.
            assert client.post("/auth/otp", json={"email": "used@example.com"}).status_code == 202
            used_code = code_in(mail_for(outbox, "used@example.com"))
            assert verify(client, "used@example.com", used_code).status_code == 200
            assert client.post("/auth/otp", json={"email": "kept@example.com"}).status_code == 202
            kept_code = code_in(mail_for(outbox, "kept@example.com"))

            with Load(app, outbox) as load:
                time.sleep(0.5)
                server.stop()
                down_at = time.monotonic()
                time.sleep(0.2)  # a send whose store work was done before the stop may finish
                mail_before = len(outbox)
                slowest = 0.0
                answers: list[tuple[TestResponse, bool]] = []
                for path, fields in [
                    ("/auth/otp", {"email": "during@example.com"}),
                    ("/auth/otp/verify", {"email": "kept@example.com", "code": kept_code}),
                    ("/auth/magic-link", {"email": "during@example.com"}),
                ]:
                    for as_json in (True, False):
                        started = time.monotonic()
                        if as_json:
                            response = client.post(path, json=fields)
                        else:
                            response = client.post(path, data=fields)
                        slowest = max(slowest, time.monotonic() - started)
                        answers.append((response, as_json))
                for response, as_json in answers:
                    assert_store_unavailable(response, as_json=as_json)
                assert client.get("/auth/login").status_code == 200
                time.sleep(1.0)
                assert len(outbox) == mail_before  # nothing was sent while the store was down
                server.start()
                up_at = time.monotonic()
                time.sleep(1.5)

            # After the restart.
            assert verify(client, "used@example.com", used_code).status_code == 400
            assert store.get("otp:during@example.com") is None
            never = verify(client, "during@example.com", "123456")
            assert never.status_code == 400
            assert never.json is not None
            assert never.json["error"] == "invalid_code"
            assert never.json["attempts_left"] == 0  # no code pending at all
            assert verify(client, "kept@example.com", kept_code).status_code == 200
            again = client.post("/auth/otp", json={"email": "during@example.com"})
            assert again.status_code == 202
            new_code = code_in(mail_for(outbox, "during@example.com"))
            assert verify(client, "during@example.com", new_code).status_code == 200

            # The load: 503 only while down; mail only for requests answered 202; every code
            # that signed someone in is refused now.
            statuses = Counter((step, status) for _, _, step, status, _ in load.answers)
            assert set(statuses) <= {
                ("request", 202),
                ("request", 503),
                ("verify", 200),
                ("verify", 503),
            }, statuses
            assert statuses[("request", 503)] > 0
            assert all(
                body == {"error": "store_unavailable", "message": body["message"]}
                for _, _, _, status, body in load.answers
                if status == 503
            )
            late = [a for a in load.answers if a[0] > up_at + 0.5]
            assert late
            assert all(status in (200, 202) for _, _, _, status, _ in late), late[:5]
            refused = {
                a for _, a, step, status, _ in load.answers if step == "request" and status != 202
            }
            assert not refused & {m.to for m in outbox}
            signed_in = [
                a for _, a, step, status, _ in load.answers if step == "verify" and status == 200
            ]
            for address in signed_in:
                replay = verify(client, address, code_in(mail_for(outbox, address)))
                assert replay.status_code == 400, address
    finally:
        if app is not None:
            state(app).store.close()
        server.stop()
    report(
        f"store outages: Redis down {up_at - down_at:.1f} s mid-run under 3 signing-in threads: "
        f"{sum(1 for a in load.answers if a[3] == 503)} answers 503 store_unavailable "
        f"(slowest {slowest * 1000:.0f} ms), {statuses[('verify', 200)]} sign-ins; "
        f"after restart all served, {len(signed_in)} used codes still refused, no code "
        "from the outage exists"
    )


def test_a_locked_sqlite_database_answers_503_within_the_busy_timeout(
    make_app: AppFactory, tmp_path: Path, report: Callable[[str], None]
) -> None:
    path = tmp_path / "auth.db"
    app = make_app(STORE=f"sqlite:///{path}", **MANY)
    client = app.test_client()
    try:
        with record_messages(app) as outbox:
            assert client.post("/auth/otp", json={"email": "ann@example.com"}).status_code == 202
            code = code_in(outbox[0])
            locker = sqlite3.connect(path, isolation_level=None, timeout=0)
            try:
                locker.execute("BEGIN EXCLUSIVE")

                def timed(as_json: bool) -> tuple[TestResponse, float]:
                    other = app.test_client()
                    fields = {"email": "bob@example.com"}
                    started = time.monotonic()
                    if as_json:
                        response = other.post("/auth/otp", json=fields)
                    else:
                        response = other.post("/auth/otp", data=fields)
                    return response, time.monotonic() - started

                with ThreadPoolExecutor(2) as pool:
                    results = list(pool.map(timed, [True, False]))
                assert client.get("/auth/login").status_code == 200
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            for (response, elapsed), as_json in zip(results, [True, False], strict=True):
                assert_store_unavailable(response, as_json=as_json)
                assert elapsed < 10, elapsed  # SQLiteStore's busy timeout is 5 s
            assert len(outbox) == 1
            assert verify(client, "ann@example.com", code).status_code == 200
            assert client.post("/auth/otp", json={"email": "bob@example.com"}).status_code == 202
    finally:
        state(app).store.close()
    report(
        "store outages: SQLite held by BEGIN EXCLUSIVE: JSON and HTML answered 503 "
        f"store_unavailable in {', '.join(f'{e:.1f} s' for _, e in results)}; "
        "served again once the lock went"
    )


def test_a_read_only_sqlite_database_answers_503(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "auth.db"
    writable = make_app(STORE=f"sqlite:///{path}", **MANY)
    with record_messages(writable) as outbox:
        assert (
            writable.test_client().post("/auth/otp", json={"email": "ann@example.com"}).status_code
            == 202
        )
    code = code_in(outbox[0])
    state(writable).store.close()

    # Root ignores file modes, so the file is opened read-only the way SQLite offers: a
    # ``file:...?mode=ro`` URI (SQLiteStore takes one; POSTMARK_AUTH_STORE cannot spell it).
    def read_only(uri: str, *, instance_path: str, clock: Any = None, app: object = None) -> Store:
        assert uri == f"sqlite:///{path}"
        return SQLiteStore(f"file:{path}?mode=ro", clock)

    monkeypatch.setattr(flask_postmark_auth.extension, "open_store", read_only)
    app = make_app(STORE=f"sqlite:///{path}", **MANY)
    client = app.test_client()
    try:
        assert state(app).store.get("user:ann@example.com") is None  # reads work
        with record_messages(app) as sent:
            for as_json in (True, False):
                fields = {"email": "bob@example.com", "code": code}
                for route in ("/auth/otp", "/auth/magic-link", "/auth/otp/verify"):
                    started = time.monotonic()
                    if as_json:
                        response = client.post(route, json=fields)
                    else:
                        response = client.post(route, data=fields)
                    assert_store_unavailable(response, as_json=as_json)
                    assert time.monotonic() - started < 2
            assert verify(client, "ann@example.com", code).status_code == 503
            assert client.get("/auth/login").status_code == 200
        assert sent == []
    finally:
        state(app).store.close()


def test_a_sqlite_uri_in_the_store_setting_is_honoured_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    made = SQLiteStore(str(path))
    made.set("k", "v", None)
    made.close()
    instance = tmp_path / "instance"
    app = Flask(__name__, instance_path=str(instance))
    app.config.update(
        SECRET_KEY="test-secret",
        TESTING=True,
        WTF_CSRF_ENABLED=False,
        POSTMARK_AUTH_STORE=f"sqlite:///file:{path}?mode=ro&uri=true",
    )
    try:
        PostmarkAuth().init_app(app)
    except ConfigurationError:
        return  # refused, naming the key: as good as honouring it
    try:
        response = app.test_client().post("/auth/otp", json={"email": "ann@example.com"})
    finally:
        state(app).store.close()
    assert response.status_code == 503  # the file really is read-only
    assert not instance.exists()  # and no other database was made
