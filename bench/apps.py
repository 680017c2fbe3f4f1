"""The apps the benchmarks drive, all sending to one FakePostmark over kept-alive HTTP.

* :func:`floor_app`: bare Flask + Flask-Login doing the least a code sign-in needs;
* :func:`security_app`: Flask-Security-Too's unified sign-in, email method;
* :func:`package_app`: this package, default settings with the throttles raised.

Each comes with a :class:`Flow`: the URLs and JSON bodies of one login cycle, so one driver
(:mod:`bench.cycle`) runs them all the same way through Flask's test client.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, login_user, logout_user

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.store.base import Clock
from flask_postmark_auth.testing import FakePostmark

SECRET_KEY = "bench-0123456789abcdefghijklmn"
FROM_EMAIL = "Bench <bench@example.com>"
#: Throttle limits no benchmark reaches.
HUGE = 10**12
#: Every login cycle of every contestant signs in one of these addresses, in turn.
POOL_SIZE = 100
#: Lifetime of the floor's codes (the package's default OTP_TTL).
CODE_TTL = 600


@dataclass(frozen=True)
class Flow:
    """One contestant's login cycle: where to POST, with what, and what a success answers."""

    name: str
    app: Flask
    send_url: str
    send_body: Callable[[str], dict[str, Any]]
    send_status: int
    verify_url: str
    verify_body: Callable[[str, str], dict[str, Any]]
    logout_url: str


def pool(prefix: str, size: int = POOL_SIZE) -> list[str]:
    """The addresses a contestant signs in, in turn."""
    return [f"{prefix}{i:03d}@example.net" for i in range(size)]


def postmark_session(fake: FakePostmark) -> requests.Session:
    """One kept-alive session with the headers Postmark wants (no proxies from the
    environment, as the package's connector does)."""
    session = requests.Session()
    session.trust_env = False
    session.headers.update(
        {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-Postmark-Server-Token": fake.server_token,
        }
    )
    return session


def post_email(session: requests.Session, url: str, payload: dict[str, Any]) -> None:
    """POST one message to ``url`` (``.../email``) and insist Postmark accepted it."""
    answer = session.post(url, data=json.dumps(payload, separators=(",", ":"))).json()
    if not isinstance(answer, dict) or answer.get("ErrorCode") != 0:
        raise RuntimeError(f"FakePostmark refused the message: {answer!r}")


def code_message(email: str, code: str) -> dict[str, Any]:
    """The floor apps' code email, as Postmark's JSON."""
    return {
        "From": FROM_EMAIL,
        "To": email,
        "Subject": f"Your sign-in code: {code}",
        "TextBody": f"Your sign-in code is {code}.",
        "HtmlBody": f"<p>Your sign-in code is <b>{code}</b>.</p>",
        "Tag": "otp",
        "TrackOpens": False,
        "TrackLinks": "None",
        "MessageStream": "outbound",
    }


def _sqlite_tuning(conn: sqlite3.Connection) -> None:
    """The journal settings the package's SQLite store uses, for an even comparison."""
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.execute("PRAGMA synchronous = NORMAL")


# -- (a) the floor ------------------------------------------------------------------------


class FloorUser(UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
    def __init__(self, user_id: int, email: str) -> None:
        self.id = user_id
        self.email = email


def floor_app(fake: FakePostmark, directory: str, emails: list[str]) -> Flow:
    """Bare Flask + Flask-Login: a code from :mod:`secrets`, its HMAC in SQLite, one POST to
    Postmark, then look-up, ``compare_digest``, delete, ``login_user``; and logout."""
    app = Flask("bench_floor")
    app.config.update(SECRET_KEY=SECRET_KEY, WTF_CSRF_ENABLED=False)
    db = sqlite3.connect(
        os.path.join(directory, "floor.db"), isolation_level=None, check_same_thread=False
    )
    _sqlite_tuning(db)
    db.executescript(
        """
        CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);
        CREATE TABLE codes (email TEXT PRIMARY KEY, hash TEXT NOT NULL, expires REAL NOT NULL);
        """
    )
    db.executemany("INSERT INTO users (email) VALUES (?)", [(e,) for e in emails])
    key = hmac.new(SECRET_KEY.encode(), b"floor-otp", hashlib.sha256).digest()
    mail = postmark_session(fake)
    email_url = fake.url + "/email"

    def digest(email: str, code: str) -> str:
        return hmac.new(key, f"{email}\x00{code}".encode(), hashlib.sha256).hexdigest()

    def find(email: str) -> FloorUser | None:
        row = db.execute("SELECT id, email FROM users WHERE email = ?", (email,)).fetchone()
        return None if row is None else FloorUser(row[0], row[1])

    manager = LoginManager(app)

    @manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(user_id: str) -> FloorUser | None:
        row = db.execute("SELECT id, email FROM users WHERE id = ?", (int(user_id),)).fetchone()
        return None if row is None else FloorUser(row[0], row[1])

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    @app.post("/auth/otp")
    def request_code() -> ResponseReturnValue:
        email = str(body().get("email", "")).strip().lower()
        if find(email) is not None:
            code = f"{secrets.randbelow(10**6):06d}"
            db.execute(
                "INSERT INTO codes (email, hash, expires) VALUES (?, ?, ?) ON CONFLICT (email)"
                " DO UPDATE SET hash = excluded.hash, expires = excluded.expires",
                (email, digest(email, code), time.time() + CODE_TTL),
            )
            post_email(
                mail,
                email_url,
                code_message(email, code),
            )
        return jsonify(status="sent"), 202

    @app.post("/auth/otp/verify")
    def verify_code() -> ResponseReturnValue:
        data = body()
        email = str(data.get("email", "")).strip().lower()
        code = str(data.get("code", ""))
        row = db.execute("SELECT hash, expires FROM codes WHERE email = ?", (email,)).fetchone()
        if (
            row is None
            or row[1] < time.time()
            or not hmac.compare_digest(row[0], digest(email, code))
        ):
            return jsonify(error="invalid_code"), 400
        db.execute("DELETE FROM codes WHERE email = ?", (email,))
        user = find(email)
        if user is None:
            abort(400)
        login_user(user)
        return jsonify(status="signed_in")

    @app.post("/auth/logout")
    def logout() -> ResponseReturnValue:
        logout_user()
        return jsonify(status="signed_out")

    return Flow(
        name="floor: Flask + Flask-Login",
        app=app,
        send_url="/auth/otp",
        send_body=lambda email: {"email": email},
        send_status=202,
        verify_url="/auth/otp/verify",
        verify_body=lambda email, code: {"email": email, "code": code},
        logout_url="/auth/logout",
    )


# -- (b) Flask-Security-Too ---------------------------------------------------------------

_SECURITY_BUILT = False


def security_app(fake: FakePostmark, directory: str, emails: list[str]) -> Flow:
    """Flask-Security-Too's unified sign-in by email code, users in SQLite through
    Flask-SQLAlchemy (its ``fsqla_v3`` models), created beforehand with the email method set
    up; its mail goes to FakePostmark through a ``MailUtil`` with one kept-alive session.

    Flask-Security-Too 5.x takes the mail class as ``Security(mail_util_cls=...)``; it needs
    ``cryptography`` for unified sign-in and ``TOTP_SECRETS``/``TOTP_ISSUER`` for its codes.
    One such app per process: ``FsModels`` keeps its ``db`` in a class attribute.
    """
    global _SECURITY_BUILT
    if _SECURITY_BUILT:
        raise RuntimeError("security_app() builds one app per process")
    _SECURITY_BUILT = True

    from flask_security import MailUtil, Security, SQLAlchemyUserDatastore
    from flask_security.models import fsqla_v3 as fsqla
    from flask_security.models.fsqla import FsModels
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy import event

    session = postmark_session(fake)
    email_url = fake.url + "/email"

    class PostmarkMailUtil(MailUtil):
        def send_mail(
            self,
            template: str,
            subject: str,
            recipient: str | tuple[str, str],
            sender: str | tuple[str, str],
            body: str | None,
            html: str | None,
            **kwargs: Any,
        ) -> None:
            if isinstance(sender, tuple):
                sender = f"{sender[0]} <{sender[1]}>"
            if isinstance(recipient, tuple):
                recipient = f"{recipient[0]} <{recipient[1]}>"
            payload: dict[str, Any] = {
                "From": str(sender),
                "To": recipient,
                "Subject": str(subject),
                "Tag": "otp",
                "TrackOpens": False,
                "TrackLinks": "None",
                "MessageStream": "outbound",
            }
            if body:
                payload["TextBody"] = body
            if html:
                payload["HtmlBody"] = html
            post_email(session, email_url, payload)

    app = Flask("bench_security")
    app.config.update(
        SECRET_KEY=SECRET_KEY,
        WTF_CSRF_ENABLED=False,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{os.path.join(directory, 'security.db')}",
        SECURITY_PASSWORD_SALT="bench-salt",
        SECURITY_UNIFIED_SIGNIN=True,
        SECURITY_US_ENABLED_METHODS=["email"],
        SECURITY_PASSWORD_REQUIRED=False,
        SECURITY_TOTP_SECRETS={"1": "bench-totp-secret-0123456789"},
        SECURITY_TOTP_ISSUER="bench",
        SECURITY_EMAIL_SENDER=FROM_EMAIL,
    )
    db = SQLAlchemy(app)
    FsModels.set_db_info(db)  # type: ignore[no-untyped-call]

    class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined,misc]
        pass

    class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined,misc]
        pass

    datastore = SQLAlchemyUserDatastore(db, User, Role)
    security = Security(app, datastore, mail_util_cls=PostmarkMailUtil)
    with app.app_context():
        event.listen(db.engine, "connect", lambda conn, _record: _sqlite_tuning(conn))
        db.create_all()
        for email in emails:
            user = datastore.create_user(email=email, active=True)
            datastore.us_set(
                user, "email", totp_secret=security.totp_factory.generate_totp_secret()
            )
        db.session.commit()

    return Flow(
        name="Flask-Security-Too unified sign-in",
        app=app,
        send_url="/us-signin/send-code",
        send_body=lambda email: {"identity": email, "chosen_method": "email"},
        send_status=200,
        verify_url="/us-signin",
        verify_body=lambda email, code: {"identity": email, "passcode": code},
        logout_url="/logout",
    )


# -- (c) this package ---------------------------------------------------------------------


def package_app(
    fake: FakePostmark,
    store: str,
    *,
    clock: Clock | None = None,
    name: str = "flask_postmark_auth",
    **settings: Any,
) -> tuple[Flow, PostmarkAuth]:
    """This package with default settings except: throttles out of reach, ``store``, and
    the connector pointed at FakePostmark; ``settings`` (short keys) override more."""
    app = Flask("bench_package")
    app.config.update(SECRET_KEY=SECRET_KEY, WTF_CSRF_ENABLED=False)
    config: dict[str, Any] = {
        "STORE": store,
        "RESEND_INTERVAL": 0,
        "EMAILS_PER_HOUR": HUGE,
        "IP_REQUESTS_PER_HOUR": HUGE,
        "SERVER_TOKEN": fake.server_token,
        "FROM_EMAIL": FROM_EMAIL,
        "API_URL": fake.url,
        # A deployment names its canonical URL. The cycle reads each code off FakePostmark
        # right after the answer, as the floor (which sends inline) allows: sync delivery.
        "BASE_URL": "http://localhost",
        "DELIVERY": "sync",
        **settings,
    }
    app.config.update({f"POSTMARK_AUTH_{key}": value for key, value in config.items()})
    auth = PostmarkAuth(clock=clock)
    auth.init_app(app)
    flow = Flow(
        name=name,
        app=app,
        send_url="/auth/otp",
        send_body=lambda email: {"email": email},
        send_status=202,
        verify_url="/auth/otp/verify",
        verify_body=lambda email, code: {"email": email, "code": code},
        logout_url="/auth/logout",
    )
    return flow, auth
