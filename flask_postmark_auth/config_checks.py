"""The checks behind the settings table (:mod:`.settings`): each takes a key's short name,
its configured value and the app's :class:`Env`, and returns the checked (or resolved)
value, or raises :class:`ConfigurationError` naming the key and the fix."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from os import PathLike, fspath
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

PREFIX = "POSTMARK_AUTH_"

#: Sign-in methods this package offers.
METHODS = ("otp", "magic_link")
#: The delivery modes besides a callable.
DELIVERY_MODES = ("sync", "background")


def key(name: str) -> str:
    """The full config key for a short name: ``key("STORE") == "POSTMARK_AUTH_STORE"``."""
    return PREFIX + name


@dataclass(frozen=True)
class Env:
    """What a check may look at besides its own value: the whole config and the app's mode."""

    config: Mapping[str, Any]
    debug: bool
    testing: bool

    def raw(self, name: str) -> Any:
        """The configured value of another key (short name)."""
        return self.config[key(name)]


Check = Callable[[str, Any, Env], Any]


def fail(name: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{key(name)} {problem}")


def refuse_unknown_keys(where: str, given: Iterable[object], allowed: Iterable[str]) -> None:
    """Raise :class:`ConfigurationError` naming ``where`` when ``given`` has keys outside
    ``allowed`` (a typo in a dict of settings should never pass silently)."""
    unknown = {str(name) for name in given} - set(allowed)
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}."
        )


# -- general checks -------------------------------------------------------------------------


def whole(low: int, high: int | None = None) -> Check:
    """A whole number from ``low`` (to ``high``)."""

    def check(name: str, value: Any, env: Env) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(name, f"must be a whole number, not {type(value).__name__} {value!r}.")
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise fail(name, f"must be {span}; it is {value}.")
        return value

    return check


def flag(name: str, value: Any, env: Env) -> bool:
    if not isinstance(value, bool):
        raise fail(name, f"must be True or False, not {value!r}.")
    return value


def text(name: str, value: Any, env: Env) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(name, f"must be a non-empty string, not {value!r}.")
    return value


def optional_text(name: str, value: Any, env: Env) -> str | None:
    return None if value is None else text(name, value, env)


def mapping(what: str) -> Check:
    """A dict (of ``what``)."""

    def check(name: str, value: Any, env: Env) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise fail(name, f"must be a dict of {what}.")
        return value

    return check


def template_ref(name: str, value: Any, env: Env) -> str | int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.strip():
        return value
    raise fail(name, "must be a Postmark template alias (str), id (int) or None.")


# -- checks of one key ----------------------------------------------------------------------


def server_token(name: str, value: Any, env: Env) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise fail(name, "must be your Server API Token (a string) or None.")
    return value


def dev_outbox(name: str, value: Any, env: Env) -> bool:
    """``None``: on in debug or testing when no token and no connectors are configured."""
    local = env.debug or env.testing
    if value is None:
        value = local and not env.raw("SERVER_TOKEN") and not env.raw("CONNECTORS")
    elif not isinstance(value, bool):
        raise fail(name, f"must be True, False or None, not {value!r}.")
    if value and not local:
        raise fail(
            name,
            "is only allowed when the app runs in debug or testing mode: it shows every "
            "sign-in code to whoever opens the outbox page. Turn it off in production.",
        )
    return bool(value)


def methods(name: str, value: Any, env: Env) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not value
        or any(m not in METHODS for m in value)
    ):
        raise fail(name, f"must be a non-empty list drawn from {list(METHODS)}.")
    return tuple(value)


def url_prefix(name: str, value: Any, env: Env) -> str:
    prefix = text(name, value, env)
    if not prefix.startswith("/") or (prefix != "/" and prefix.endswith("/")):
        raise fail(name, "must start with '/' and not end with one, like '/auth'.")
    return prefix


def store(name: str, value: Any, env: Env) -> str:
    """``None``: ``memory://`` when testing, else a SQLite file in the instance folder."""
    if value is None:
        return "memory://" if env.testing else "sqlite:///postmark_auth.db"
    if not isinstance(value, str) or ("://" not in value and value.lower() != "sqlalchemy"):
        raise fail(
            name,
            "must be a URI (memory://, sqlite:///file.db, redis://host:6379/0, "
            "postgresql://user@host/db) or 'sqlalchemy'.",
        )
    return value


def hosts(name: str, value: Any, env: Env) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(h, str) for h in value):
        raise fail(name, "must be a list of host names.")
    return tuple(h.lower() for h in value)


def directories(name: str, value: Any, env: Env) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not all(isinstance(d, str | PathLike) for d in value):
        raise fail(name, "must be a list of directories (str or pathlib.Path).")
    return tuple(fspath(d) for d in value)


def delivery(name: str, value: Any, env: Env) -> Any:
    """``None``: ``sync`` when testing, else ``background``."""
    if value is None:
        return "sync" if env.testing else "background"
    if not callable(value) and value not in DELIVERY_MODES:
        raise fail(name, f"must be 'sync', 'background' or a callable, not {value!r}.")
    return value


def base_url(name: str, value: Any, env: Env) -> str | None:
    """The app's public URL: ``BASE_URL``, else ``PREFERRED_URL_SCHEME://SERVER_NAME`` (with
    ``APPLICATION_ROOT``), else ``None`` in debug or testing (the request's host serves).
    Outside debug and testing a missing one is an error: the ``Host`` header is the
    client's to choose, and a link built from it goes wherever an attacker says."""
    config = env.config
    if value is None:
        server_name = config.get("SERVER_NAME")
        if not server_name:
            if env.debug or env.testing:
                return None
            raise fail(
                name,
                "is not set: set it to the app's public URL, such as "
                "'https://app.acme.example' (or set SERVER_NAME). Sign-in links are built "
                "from it; without it they would follow the Host header of each request, "
                "which anyone can forge.",
            )
        scheme = config.get("PREFERRED_URL_SCHEME") or "http"
        root = (config.get("APPLICATION_ROOT") or "/").rstrip("/")
        value = f"{scheme}://{server_name}{root}"
    elif not isinstance(value, str):
        raise fail(name, f"must be a URL such as 'https://app.acme.example', not {value!r}.")
    parts = urlsplit(value.strip())
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = parts._replace(scheme="")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or has_unsafe_chars(value)
    ):
        raise fail(
            name,
            f"must be an http(s) URL with a host and at most a path, such as "
            f"'https://app.acme.example' or 'https://acme.example/app'; it is {value!r}.",
        )
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def has_unsafe_chars(value: str) -> bool:
    """Whitespace, control characters or backslashes: never in a canonical URL."""
    return any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in value)
