"""The two apps :mod:`bench.http_load` serves under gunicorn, configured from the environment.

* ``bench.http_apps:create_package_app()``: this package with its default user model (any
  address signs in), ``SECRET_KEY`` from the environment and every ``POSTMARK_AUTH_*``
  variable as a config value (see :func:`bench.timing_app.env_config`).
* ``bench.http_apps:create_floor_app()``: bare Flask + Flask-Login doing the least a correct
  code sign-in must: a code from :mod:`secrets`, its HMAC stored (with expiry) in the store
  named by ``BENCH_FLOOR_KIND``/``BENCH_FLOOR_TARGET``/``BENCH_FLOOR_NAME``, one POST to
  Postmark (``POSTMARK_AUTH_API_URL``, ``POSTMARK_AUTH_SERVER_TOKEN``) over a kept-alive
  ``requests.Session`` per thread; then look-up, ``compare_digest``, delete, ``login_user``;
  and logout. Its users are the addresses themselves, as the package's default ones are.

Floor stores (each connection per thread, every write committed on its own):

* ``sqlite``: TARGET a file path, WAL and ``synchronous = NORMAL`` as the package's store;
* ``redis``: TARGET a redis-py URL, NAME a key prefix; ``SET ... EX`` and ``GETDEL``;
* ``postgresql``: TARGET a libpq conninfo, NAME a table (made by :func:`floor_schema`);
  psycopg in autocommit mode, so each statement commits as the package's store does.

Both apps answer ``GET /ping`` (readiness) and CSRF is off: the benchmark posts bare JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, login_user, logout_user

from flask_postmark_auth import PostmarkAuth

from .apps import CODE_TTL, _sqlite_tuning, code_message
from .timing_app import env_config

KIND_ENV = "BENCH_FLOOR_KIND"
TARGET_ENV = "BENCH_FLOOR_TARGET"
NAME_ENV = "BENCH_FLOOR_NAME"


def create_package_app() -> Flask:
    """This package, configured from the environment."""
    app = Flask("bench_http_package")
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.config["WTF_CSRF_ENABLED"] = False
    app.config.update(env_config(os.environ))
    PostmarkAuth().init_app(app)

    @app.get("/ping")
    def ping() -> str:
        return "ok"

    return app


# -- the floor ----------------------------------------------------------------------------


class FloorUser(UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
    def __init__(self, email: str) -> None:
        self.id = email
        self.email = email


class CodeStore:
    """Where the floor keeps one code's HMAC per address."""

    def put(self, email: str, digest: str, ttl: float) -> None:
        raise NotImplementedError

    def take(self, email: str, digest: str) -> bool:
        """True once if ``digest`` is the unexpired one stored for ``email`` (then gone)."""
        raise NotImplementedError


def floor_schema(kind: str, target: str, name: str) -> None:
    """Create the floor's table (SQL kinds), once, before the workers start."""
    if kind == "sqlite":
        db = sqlite3.connect(target, isolation_level=None)
        _sqlite_tuning(db)
        db.execute(
            "CREATE TABLE IF NOT EXISTS codes "
            "(email TEXT PRIMARY KEY, hash TEXT NOT NULL, expires REAL NOT NULL)"
        )
        db.close()
    elif kind == "postgresql":
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} "
                "(email TEXT PRIMARY KEY, hash TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)"
            )


class SQLiteCodes(CodeStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()

    def db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            _sqlite_tuning(conn)
            self.local.conn = conn
        return conn

    def put(self, email: str, digest: str, ttl: float) -> None:
        self.db().execute(
            "INSERT INTO codes (email, hash, expires) VALUES (?, ?, ?) ON CONFLICT (email)"
            " DO UPDATE SET hash = excluded.hash, expires = excluded.expires",
            (email, digest, time.time() + ttl),
        )

    def take(self, email: str, digest: str) -> bool:
        db = self.db()
        row = db.execute("SELECT hash, expires FROM codes WHERE email = ?", (email,)).fetchone()
        if row is None or row[1] < time.time() or not hmac.compare_digest(row[0], digest):
            return False
        gone = db.execute("DELETE FROM codes WHERE email = ? AND hash = ?", (email, digest))
        return gone.rowcount == 1


class PostgresCodes(CodeStore):
    def __init__(self, conninfo: str, table: str) -> None:
        self.conninfo = conninfo
        self.table = table
        self.local = threading.local()

    def db(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            import psycopg

            conn = psycopg.connect(self.conninfo, autocommit=True)
            self.local.conn = conn
        return conn

    def put(self, email: str, digest: str, ttl: float) -> None:
        self.db().execute(
            f"INSERT INTO {self.table} (email, hash, expires) VALUES (%s, %s, %s) "  # noqa: S608
            "ON CONFLICT (email) DO UPDATE SET hash = excluded.hash, expires = excluded.expires",
            (email, digest, time.time() + ttl),
        )

    def take(self, email: str, digest: str) -> bool:
        db = self.db()
        row = db.execute(
            f"SELECT hash, expires FROM {self.table} WHERE email = %s",  # noqa: S608
            (email,),
        ).fetchone()
        if row is None or row[1] < time.time() or not hmac.compare_digest(row[0], digest):
            return False
        gone = db.execute(
            f"DELETE FROM {self.table} WHERE email = %s AND hash = %s",  # noqa: S608
            (email, digest),
        )
        return bool(gone.rowcount == 1)


class RedisCodes(CodeStore):
    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def put(self, email: str, digest: str, ttl: float) -> None:
        self.client.set(self.prefix + email, digest, ex=int(ttl))

    def take(self, email: str, digest: str) -> bool:
        stored = self.client.getdel(self.prefix + email)
        return isinstance(stored, bytes) and hmac.compare_digest(stored, digest.encode())


def open_codes(kind: str, target: str, name: str) -> CodeStore:
    if kind == "sqlite":
        return SQLiteCodes(target)
    if kind == "redis":
        return RedisCodes(target, name)
    if kind == "postgresql":
        return PostgresCodes(target, name)
    raise ValueError(f"unknown floor store kind {kind!r}")


def postmark_sender(api_url: str, token: str) -> Callable[[dict[str, Any]], None]:
    """POST one message to Postmark over this thread's kept-alive session."""
    local = threading.local()
    url = api_url.rstrip("/") + "/email"

    def send(payload: dict[str, Any]) -> None:
        session: requests.Session | None = getattr(local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.headers.update(
                {
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                    "X-Postmark-Server-Token": token,
                }
            )
            local.session = session
        data = json.dumps(payload, separators=(",", ":"))
        answer = session.post(url, data=data, timeout=10).json()
        if not isinstance(answer, dict) or answer.get("ErrorCode") != 0:
            raise RuntimeError(f"Postmark refused the message: {answer!r}")

    return send


def create_floor_app() -> Flask:
    """The floor, configured from the environment."""
    app = Flask("bench_http_floor")
    secret = os.environ["SECRET_KEY"]
    app.config.update(SECRET_KEY=secret, WTF_CSRF_ENABLED=False)
    codes = open_codes(os.environ[KIND_ENV], os.environ[TARGET_ENV], os.environ.get(NAME_ENV, ""))
    send = postmark_sender(
        os.environ["POSTMARK_AUTH_API_URL"], os.environ["POSTMARK_AUTH_SERVER_TOKEN"]
    )
    key = hmac.new(secret.encode(), b"floor-otp", hashlib.sha256).digest()

    def digest(email: str, code: str) -> str:
        return hmac.new(key, f"{email}\x00{code}".encode(), hashlib.sha256).hexdigest()

    manager = LoginManager(app)

    @manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(user_id: str) -> FloorUser:
        return FloorUser(user_id)

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    @app.get("/ping")
    def ping() -> str:
        return "ok"

    @app.post("/auth/otp")
    def request_code() -> ResponseReturnValue:
        email = str(body().get("email", "")).strip().lower()
        if "@" not in email:
            return jsonify(error="invalid_email"), 400
        code = f"{secrets.randbelow(10**6):06d}"
        codes.put(email, digest(email, code), CODE_TTL)
        send(code_message(email, code))
        return jsonify(status="sent"), 202

    @app.post("/auth/otp/verify")
    def verify_code() -> ResponseReturnValue:
        data = body()
        email = str(data.get("email", "")).strip().lower()
        code = str(data.get("code", ""))
        if not codes.take(email, digest(email, code)):
            return jsonify(error="invalid_code"), 400
        login_user(FloorUser(email))
        return jsonify(status="signed_in")

    @app.post("/auth/logout")
    def logout() -> ResponseReturnValue:
        logout_user()
        return jsonify(status="signed_out")

    return app
