"""Who may sign in: the app's own users through callbacks, or built-in email-only users."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from flask import g, has_app_context
from flask_login import UserMixin

from .addresses import normalize_email
from .errors import ConfigurationError, InvalidEmailError
from .settings import key
from .store import Store

log = logging.getLogger("flask_postmark_auth")

FindUser = Callable[[str], Any]
CreateUser = Callable[[str], Any]

_USER_KEY = "user:"
_MEMO = "_postmark_auth_users"
#: Separates the address from the session token in a built-in user's Flask-Login id (no
#: address this package accepts holds one).
_ID_SEP = ":"


def _memo() -> dict[tuple[str, str], Any] | None:
    """This app context's answers read ahead for built-in users (see
    :meth:`UserDirectory.read_ahead`); ``None`` outside an app context."""
    if not has_app_context():
        return None
    memo: dict[tuple[str, str], Any] | None = g.get(_MEMO)
    if memo is None:
        memo = {}
        setattr(g, _MEMO, memo)
    return memo


class AddressMismatchError(Exception):
    """The app's callback returned a user whose ``email`` is not the requested address."""


class EmailUser(UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
    """The built-in user: nothing but a normalized address, which is also its id.

    Flask-Login keeps ``get_id()`` in the session and the remember cookie: the address and
    a random token that signing out replaces, so every cookie issued before stops working.
    """

    def __init__(self, email: str, session_token: str) -> None:
        self.id = email
        self.email = email
        #: Random, replaced on sign-out: part of ``get_id()``, never an address's secret.
        self.session_token = session_token

    def get_id(self) -> str:
        return f"{self.id}{_ID_SEP}{self.session_token}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmailUser) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<EmailUser {self.id!r}>"


def public_id(user: Any) -> Any:
    """The id the JSON API shows: a built-in user's address, else ``get_id()``."""
    return user.id if isinstance(user, EmailUser) else user.get_id()


def matches(user: Any, address: str) -> bool:
    """Whether ``user.email`` normalizes to ``address``: a database collation that folds
    ``straße`` into ``strasse`` must not hand one person's account to another."""
    email = getattr(user, "email", None)
    try:
        return normalize_email(email) == address
    except InvalidEmailError:
        return False


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

    def check(self) -> tuple[FindUser | None, CreateUser | None]:
        """The callbacks, or :class:`ConfigurationError` when they do not fit the settings
        (the same for every address, so the request path may call it)."""
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
        """The user for ``email``, or ``None``; :class:`AddressMismatchError` when the app's
        callback answers with someone else's account. A built-in user read ahead in this
        request (:meth:`read_ahead`) costs no store call."""
        find, _ = self.check()
        if find is not None:
            return self._own(find(email), email, "find_user")
        memo = _memo()
        if memo is not None and ("seen", email) in memo:
            token = memo.pop(("seen", email))
        else:
            token = self._store.get(_USER_KEY + email)
        return EmailUser(email, token) if token is not None else None

    # A request that is about to look a built-in user up (and maybe make it) sends the store
    # operations for it in a batch of its own (Store.many) and hands over the answers: the
    # next find() or create() of that address in the same request (app context) uses them
    # once instead of a round trip of its own.

    def read_ahead(self, email: str) -> list[tuple[Any, ...]]:
        """The store operations that read the built-in user ``email`` (none for the app's
        own users, or outside an app context); their answers go to :meth:`was_read`."""
        if not self.builtin or _memo() is None:
            return []
        return [("get", _USER_KEY + email)]

    def was_read(self, email: str, answers: Sequence[Any]) -> None:
        """Keep the answers of :meth:`read_ahead`'s operations for the next :meth:`find`."""
        memo = _memo()
        if answers and memo is not None:
            memo[("seen", email)] = answers[0]

    def make_ahead(self, email: str) -> list[tuple[Any, ...]]:
        """The store operations that make the built-in user ``email`` when what was read
        ahead says it does not exist and sign-up is open; their answers go to
        :meth:`was_made`, for the next :meth:`create`."""
        memo = _memo()
        if memo is None or not self.builtin or not self._allow_signup:
            return []
        if memo.get(("seen", email), "") is not None:
            return []  # it exists, or nothing was read ahead
        token = secrets.token_urlsafe(12)
        memo[("made", email)] = token
        return [("add", _USER_KEY + email, token, None)]

    def was_made(self, email: str, answers: Sequence[Any]) -> None:
        """Keep whether :meth:`make_ahead`'s atomic add made the user."""
        memo = _memo()
        if answers and memo is not None and isinstance(memo.get(("made", email)), str):
            memo[("made", email)] = (memo[("made", email)], bool(answers[0]))

    def create(self, email: str) -> tuple[Any, bool]:
        """Make the user for a first sign-in; ``(user, created)``. Built-in users are
        recorded with an atomic add, so two workers never both report a sign-up."""
        _, create = self.check()
        if create is not None:
            user = self._own(create(email), email, "create_user")
            if user is not None:
                return user, True
            # None: the address was taken meanwhile (two first sign-ins raced): use the
            # winner's user, and it is not a sign-up of this request.
            user = self.find(email)
            if user is None:
                raise ConfigurationError(
                    "@auth.create_user returned None (the address exists already) but "
                    "@auth.find_user still finds no user for it"
                )
            return user, False
        memo = _memo()
        made = memo.pop(("made", email), None) if memo is not None else None
        if isinstance(made, tuple):
            token, created = made
        else:
            token = secrets.token_urlsafe(12)
            created = self._store.add(_USER_KEY + email, token, None)
        if not created:
            token = self._store.get(_USER_KEY + email) or token
        return EmailUser(email, token), created

    @staticmethod
    def _own(user: Any, email: str, callback: str) -> Any:
        if user is not None and not matches(user, email):
            log.warning(
                "@auth.%s returned a user whose email is not the requested address "
                "(a case- or accent-insensitive collation?); treating the address as "
                "unknown",
                callback,
            )
            raise AddressMismatchError(callback)
        return user

    def may_sign_up(self) -> bool:
        return self._allow_signup

    def load(self, user_id: str) -> EmailUser | None:
        """Flask-Login's loader for built-in users: the address and its current token."""
        if not self.builtin:
            return None
        email, sep, token = user_id.rpartition(_ID_SEP)
        if not sep or not token:
            return None  # an id from before tokens, or not ours: signed out
        current = self._store.get(_USER_KEY + email)
        if current is None or not hmac.compare_digest(current.encode(), token.encode()):
            return None
        return EmailUser(email, current)

    def revoke(self, email: str) -> bool:
        """Give a built-in user a new token: every session and remember cookie issued
        before stops working. False when there is no such user."""
        if self._store.get(_USER_KEY + email) is None:
            return False
        self.rotate(email)
        return True

    def rotate(self, email: str) -> None:
        """:meth:`revoke` for a user known to exist (one who just signed out)."""
        memo = _memo()
        if memo is not None:
            memo.pop(("seen", email), None)
        self._store.set(_USER_KEY + email, secrets.token_urlsafe(12), None)

    def signed_out(self, user: Any) -> None:
        """After Flask-Login signed ``user`` out: a built-in user's every other session and
        remember cookie stop working too."""
        if isinstance(user, EmailUser):
            self.rotate(user.email)

    def sign_out_everywhere(self, email: object) -> bool:
        """End every session and remember cookie of the built-in user ``email``; False
        when there is no such user."""
        if not self.builtin:
            raise RuntimeError(
                "auth.sign_out_everywhere() ends sessions of built-in users only; with your "
                "own user model, rotate the alternative id your get_id() returns (see the "
                "README's 'Revocable remember-me')."
            )
        return self.revoke(normalize_email(email))
