"""The app's own Flask-Login set-up and user model: a LoginManager without a login view, a
forgotten ``user_loader``, and two first sign-ins of one address racing (issue 12)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import LoginManager, UserMixin, login_required
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_postmark_auth import PostmarkAuth, signals
from flask_postmark_auth.errors import ConfigurationError
from flask_postmark_auth.testing import FakeClock, code_in, link_in, record_messages

EMAIL = "ann@example.com"


class AppUser(UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
    def __init__(self, email: str) -> None:
        self.id = f"user-{email}"
        self.email = email


def app_with_login_manager(
    manager: LoginManager, users: dict[str, AppUser] | None = None, **config: Any
) -> Flask:
    """An app that set up Flask-Login itself before the extension, with app users."""
    known = {EMAIL: AppUser(EMAIL)} if users is None else users
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", TESTING=True, WTF_CSRF_ENABLED=False)
    app.config.update(config)
    manager.init_app(app)
    auth = PostmarkAuth(clock=FakeClock())
    auth.find_user(known.get)
    auth.create_user(lambda email: known.setdefault(email, AppUser(email)))

    @app.get("/private")
    @login_required  # type: ignore[untyped-decorator]
    def private() -> str:
        return "private"

    auth.init_app(app)
    return app


def sign_in(client: FlaskClient, app: Flask, email: str = EMAIL) -> Any:
    with record_messages(app) as outbox:
        client.post("/auth/otp", json={"email": email})
    return client.post("/auth/otp/verify", json={"email": email, "code": code_in(outbox[0])})


# -- the app's own LoginManager ---------------------------------------------------------------


def test_a_login_manager_without_login_view_sends_visitors_to_the_sign_in_page(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = LoginManager()
    manager.user_loader(lambda user_id: None)
    with caplog.at_level(logging.INFO, logger="flask_postmark_auth"):
        app = app_with_login_manager(manager)
    assert manager.login_view == "postmark_auth.login"
    assert any("has no login_view" in r.getMessage() for r in caplog.records)
    response = app.test_client().get("/private")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")


def test_the_apps_own_login_view_is_kept() -> None:
    manager = LoginManager()
    manager.login_view = "somewhere.else"
    app_with_login_manager(manager)
    assert manager.login_view == "somewhere.else"


def test_a_login_manager_with_blueprint_login_views_is_left_alone() -> None:
    manager = LoginManager()
    manager.blueprint_login_views = {"admin": "admin.login"}
    app_with_login_manager(manager)
    assert manager.login_view is None


def test_no_user_loader_is_a_clear_error_and_signs_nobody_in() -> None:
    app = app_with_login_manager(LoginManager())
    client = app.test_client()
    with pytest.raises(ConfigurationError, match="no user_loader"):
        sign_in(client, app)
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_a_user_loader_that_cannot_load_the_user_is_a_clear_error() -> None:
    manager = LoginManager()
    manager.user_loader(lambda user_id: None)
    app = app_with_login_manager(manager)
    client = app.test_client()
    with pytest.raises(ConfigurationError, match="user_loader returned None"):
        sign_in(client, app)
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_a_working_user_loader_signs_in_and_keeps_the_visitor_signed_in() -> None:
    users = {EMAIL: AppUser(EMAIL)}
    manager = LoginManager()
    manager.user_loader(lambda user_id: next((u for u in users.values() if u.id == user_id), None))
    app = app_with_login_manager(manager, users)
    client = app.test_client()
    assert sign_in(client, app).status_code == 200
    assert client.get("/private").get_data(as_text=True) == "private"


def test_a_request_loader_is_the_apps_own_business() -> None:
    manager = LoginManager()
    manager.request_loader(lambda request: None)
    app = app_with_login_manager(manager)
    assert sign_in(app.test_client(), app).status_code == 200


# -- two first sign-ins of one address race: the README's create_user pattern ----------------


class Base(DeclarativeBase):
    pass


def sqlalchemy_app(path: Path, pause: Callable[[], None]) -> tuple[Flask, SQLAlchemy, Any]:
    """The README's user model on Flask-SQLAlchemy, the address unique; ``pause`` runs after
    a lookup that found nobody (to line two first sign-ins up)."""
    db = SQLAlchemy(model_class=Base)

    class User(db.Model, UserMixin):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(String(254), unique=True)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test-secret",
        TESTING=True,
        WTF_CSRF_ENABLED=False,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}",
        POSTMARK_AUTH_ALLOW_SIGNUP=True,
    )
    db.init_app(app)
    manager = LoginManager(app)
    auth = PostmarkAuth(clock=FakeClock())

    @manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(user_id: str) -> Any:
        return db.session.get(User, int(user_id))

    @auth.find_user
    def find_user(email: str) -> Any:
        user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()
        if user is None:
            pause()
        return user

    # The README's pattern, word for word.
    @auth.create_user
    def create_user(email: str) -> Any:
        user = User(email=email)
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:  # another first sign-in of this address won: use its user
            db.session.rollback()
            return None
        return user

    auth.init_app(app)
    with app.app_context():
        db.create_all()
    return app, db, User


def test_two_first_sign_ins_of_one_address_race_and_both_sign_in_one_user(
    tmp_path: Path,
) -> None:
    lined_up = threading.Barrier(2, timeout=10)
    racing = threading.Event()

    def pause() -> None:
        if racing.is_set():
            lined_up.wait()  # both lookups found nobody before either creates the user

    app, db, user_model = sqlalchemy_app(tmp_path / "users.db", pause)
    try:
        race_first_sign_ins(app, db, user_model, racing)
    finally:
        with app.app_context():
            db.engine.dispose()  # the threads' pooled connections (Python 3.13 warns)


def race_first_sign_ins(
    app: Flask, db: SQLAlchemy, user_model: Any, racing: threading.Event
) -> None:
    code_client, link_client = app.test_client(), app.test_client()
    with record_messages(app) as outbox:
        code_client.post("/auth/otp", json={"email": EMAIL})
        link_client.post("/auth/magic-link", json={"email": EMAIL})
    code, link = code_in(outbox[0]), link_in(outbox[1])
    signed_up: list[Any] = []
    answers: dict[str, Any] = {}

    def by_code() -> None:
        answers["code"] = code_client.post("/auth/otp/verify", json={"email": EMAIL, "code": code})

    def by_link() -> None:
        answers["link"] = link_client.post(link, headers={"Accept": "application/json"})

    racing.set()
    with signals.user_signed_up.connected_to(
        lambda sender, user, **kw: signed_up.append(user.email), app
    ):
        threads = [threading.Thread(target=by_code), threading.Thread(target=by_link)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "code": 200,
        "link": 200,
    }
    assert answers["code"].json["user"]["id"] == answers["link"].json["user"]["id"]
    assert signed_up == [EMAIL]  # one sign-up: the loser of the race is a sign-in
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(user_model)).scalar() == 1


def test_create_user_returning_none_with_no_user_to_find_is_a_clear_error(
    tmp_path: Path,
) -> None:
    manager = LoginManager()
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", TESTING=True, WTF_CSRF_ENABLED=False)
    manager.init_app(app)
    auth = PostmarkAuth(clock=FakeClock())
    auth.find_user(lambda email: None)
    auth.create_user(lambda email: None)
    auth.init_app(app)
    with pytest.raises(ConfigurationError, match="create_user returned None"):
        sign_in(app.test_client(), app)
