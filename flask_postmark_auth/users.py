"""Who may sign in: the app's own users through callbacks, or built-in email-only users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_login import UserMixin

from .errors import ConfigurationError
from .settings import key
from .store import Store

FindUser = Callable[[str], Any]
CreateUser = Callable[[str], Any]

_USER_KEY = "user:"


class EmailUser(UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
    """The built-in user: nothing but a normalized address, which is also its id."""

    def __init__(self, email: str) -> None:
        self.id = email
        self.email = email

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmailUser) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<EmailUser {self.id!r}>"


class UserDirectory:
    """Finds and creates users, with callbacks looked up at call time (they may be
    registered after ``init_app``)."""

    def __init__(
        self,
        store: Store,
        callbacks: Callable[[], tuple[FindUser | None, CreateUser | None]],
        allow_signup: bool,
    ) -> None:
        self._store = store
        self._callbacks = callbacks
        self._allow_signup = allow_signup

    @property
    def builtin(self) -> bool:
        find, create = self._callbacks()
        return find is None and create is None

    def _checked(self) -> tuple[FindUser | None, CreateUser | None]:
        find, create = self._callbacks()
        if find is None and create is None:
            if not self._allow_signup:
                raise ConfigurationError(
                    f"{key('ALLOW_SIGNUP')} is False but no @auth.find_user is registered: "
                    "built-in users only exist once they sign up. Register @auth.find_user "
                    "and @auth.create_user, or allow sign-up."
                )
        elif find is None:
            raise ConfigurationError(
                "@auth.create_user is registered without @auth.find_user: register both."
            )
        elif create is None and self._allow_signup:
            raise ConfigurationError(
                f"@auth.find_user is registered and {key('ALLOW_SIGNUP')} is True, so "
                "@auth.create_user is needed too: register @auth.create_user, or set "
                f"{key('ALLOW_SIGNUP')} = False."
            )
        return find, create

    def find(self, email: str) -> Any:
        """The user for ``email``, or ``None``."""
        find, _ = self._checked()
        if find is not None:
            return find(email)
        return EmailUser(email) if self._store.get(_USER_KEY + email) is not None else None

    def create(self, email: str) -> tuple[Any, bool]:
        """Make the user for a first sign-in; ``(user, created)``. Built-in users are
        recorded with an atomic add, so two workers never both report a sign-up."""
        _, create = self._checked()
        if create is not None:
            return create(email), True
        created = self._store.add(_USER_KEY + email, "1", None)
        return EmailUser(email), created

    def may_sign_up(self) -> bool:
        return self._allow_signup

    def load(self, user_id: str) -> EmailUser | None:
        """Flask-Login's loader for built-in users."""
        if not self.builtin:
            return None
        return EmailUser(user_id) if self._store.get(_USER_KEY + user_id) is not None else None
