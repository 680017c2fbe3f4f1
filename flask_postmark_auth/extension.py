"""The Flask extension: reads the configuration, builds connectors, keeps per-app state."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, current_app, has_request_context, request
from flask_login import LoginManager

from .checklist import run_checks, secret_key_problems
from .connector import PostmarkConnector
from .delivery import BackgroundPool
from .errors import ConfigurationError, MessageValidationError
from .flow_config import parse_flows
from .flows import Flow, FlowResult
from .i18n import EXTENSION_KEY as I18N_KEY
from .i18n import N_, Catalogs, gettext
from .outbox import DevOutbox
from .service import SignInService
from .settings import DEFAULTS, DEV_OUTBOX_FROM, RESOLVED, Settings, key, load, refuse_unknown_keys
from .state import EXTENSION_KEY, AuthState, state
from .store import StoreUnavailableError, open_store
from .store.base import Clock
from .users import EmailUser, UserDirectory

log = logging.getLogger("flask_postmark_auth")

_CONNECTOR_FIELDS = frozenset({"server_token", "from_email", "message_stream", "description"})


class PostmarkAuth:
    """Passwordless sign-in through Postmark for one or more Flask apps.

    With ``app``, :meth:`init_app` is called at once; without it, call :meth:`init_app` for
    each app an application factory makes. ``clock`` is where the stores take the time from,
    in seconds like :func:`time.time` (the default); tests pass a
    :class:`~flask_postmark_auth.testing.FakeClock` so that codes, links and throttles
    expire without sleeping.
    """

    def __init__(self, app: Flask | None = None, *, clock: Clock | None = None) -> None:
        #: Where time comes from (seconds); tests pass a fake clock to skip through expiry.
        self.clock = clock
        self._find_user: Callable[[str], Any] | None = None
        self._create_user: Callable[[str], Any] | None = None
        self._background = BackgroundPool()
        self._flows: list[Flow] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Check the configuration and set the extension up on ``app``."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "PostmarkAuth is already registered on this app; call init_app once per app."
            )
        for name, default in DEFAULTS.items():
            app.config.setdefault(key(name), default)
        settings = load(app.config, debug=app.debug, testing=app.testing)
        for name in RESOLVED:  # app.config shows what is in use, not None
            app.config[key(name)] = getattr(settings, name.lower())
        if not (app.debug or app.testing):
            problems = list(secret_key_problems(app.config))
            if problems:
                raise ConfigurationError(
                    f"{'; '.join(problems)}: anyone who knows or guesses it can forge a "
                    "session and sign in as anyone. Set SECRET_KEY from the environment to "
                    "a long random value, such as the output of "
                    "`python -c 'import secrets; print(secrets.token_hex(32))'`."
                )
        connectors = build_connectors(settings)
        try:
            store = open_store(
                settings.store, instance_path=app.instance_path, clock=self.clock, app=app
            )
            store.check()
        except ValueError as exc:  # StoreMisconfiguredError included
            raise ConfigurationError(f"{key('STORE')}: {exc}") from exc
        outbox = DevOutbox(store) if settings.dev_outbox else None
        if outbox is not None:
            for connector in connectors.values():
                connector.interceptor = outbox.intercept
        app.extensions[I18N_KEY] = translation_catalogs(app, settings)
        flows = parse_flows(settings.flows, self._flows, connectors)
        users = UserDirectory(store, self._callbacks, settings.allow_signup)
        service = SignInService(
            app=app,
            settings=settings,
            store=store,
            connectors=connectors,
            users=users,
            secret_keys=_secret_keys,
            background=self._background if settings.delivery == "background" else None,
            flows=flows,
        )
        app.extensions[EXTENSION_KEY] = AuthState(
            settings=settings,
            connectors=connectors,
            store=store,
            users=users,
            service=service,
            outbox=outbox,
        )
        if not hasattr(app, "login_manager"):
            self._set_up_login_manager(app, users)
        elif app.login_manager.login_view is None and not app.login_manager.blueprint_login_views:
            # Without a login view, Flask-Login answers 401 to a signed-out visitor: send
            # people to the sign-in page instead (the app may still set its own later).
            app.login_manager.login_view = "postmark_auth.login"
            log.info(
                "the app's LoginManager has no login_view: using postmark_auth.login, so "
                "signed-out visitors of @login_required pages are sent to the sign-in page"
            )

        from .edge import limit_body
        from .pages import unauthorized_handler
        from .views import bp

        manager = app.login_manager if hasattr(app, "login_manager") else None
        if manager is not None and manager.unauthorized_callback is None:
            manager.unauthorized_callback = unauthorized_handler(manager)  # JSON: 401 JSON

        app.register_blueprint(bp, url_prefix=settings.url_prefix)
        if outbox is not None:
            from .outbox_views import outbox_bp

            app.register_blueprint(outbox_bp, url_prefix=settings.url_prefix)
        # First of the app's hooks, so no other one (CSRFProtect's) reads a huge body.
        app.before_request_funcs.setdefault(None, []).insert(0, limit_body)
        if not (app.debug or app.testing):
            warnings = [
                c.name for c in run_checks(app, settings, startup=True) if c.verdict != "PASS"
            ]
            if warnings:
                log.warning(
                    "deployment check: %d warning%s (%s); run `flask postmark-auth check`",
                    len(warnings),
                    "" if len(warnings) == 1 else "s",
                    ", ".join(warnings),
                )

    @staticmethod
    def _set_up_login_manager(app: Flask, users: UserDirectory) -> None:
        """Flask-Login for apps that have none: built-in users load from the store."""
        manager = LoginManager()
        manager.init_app(app)
        manager.login_view = "postmark_auth.login"
        manager.login_message = N_("Sign in to see that page.")
        manager.localize_callback = gettext

        def load_user(user_id: str) -> EmailUser | None:
            try:
                return users.load(user_id)
            except StoreUnavailableError:
                log.warning("store unavailable: treating the visitor as signed out")
                return None

        manager.user_loader(load_user)

    def _callbacks(self) -> tuple[Callable[[str], Any] | None, Callable[[str], Any] | None]:
        return self._find_user, self._create_user

    def connectors(self) -> dict[str, PostmarkConnector]:
        """The current app's connectors by name."""
        return dict(state().connectors)

    def dev_outbox_enabled(self) -> bool:
        """Whether the current app records mail in the dev outbox instead of sending it."""
        return state().outbox is not None

    # -- flows ------------------------------------------------------------------------------

    def add_flow(self, flow: Flow) -> Flow:
        """Declare ``flow`` (a :class:`~flask_postmark_auth.flows.Flow`) in Python and return
        it. Declare it before ``init_app``: it is checked there, like the flows of
        ``POSTMARK_AUTH_FLOWS``, and an app set up earlier never sees it."""
        self._flows.append(flow)
        return flow

    def run_flow(self, name: str, **context: Any) -> FlowResult:
        """Run the flow ``name`` of the current app with ``context`` (``form=``, ``user=``,
        ``request=``, or anything the templates use); each step's outcome is returned."""
        st = state()
        try:
            flow = st.service.flows[name]
        except KeyError:
            raise LookupError(
                f"No flow named {name!r}; configured: {sorted(st.service.flows)}."
            ) from None
        # A run asked for by a request (a public form, say) counts against the flow's
        # rate limits; one from code outside a request (a job, the CLI) does not.
        client_ip = (request.remote_addr or "") if has_request_context() else None
        return st.service.run_flow(flow, context, client_ip=client_ip)

    def sign_out_everywhere(self, email: str) -> bool:
        """End every session and remember-me cookie of the built-in user ``email`` (for a
        lost device, say). False when there is no such user. Apps with their own user
        model rotate the alternative id their ``get_id()`` returns instead (for them this
        raises :class:`RuntimeError`)."""
        return state().service.users.sign_out_everywhere(email)

    # -- services ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the sends queued on the background pool (``DELIVERY = "background"``)
        are done, ``timeout`` seconds at most (``None``: as long as it takes); True when none
        is left. Tests and shutdown hooks use it."""
        return self._background.flush(timeout)

    # -- user callbacks ---------------------------------------------------------------------

    def find_user(self, func: Callable[[str], Any]) -> Callable[[str], Any]:
        """Register ``func``, the app's user lookup, and return it (a decorator).

        It is called as ``func(email)`` with the normalized address and returns the app's
        Flask-Login user or ``None``; a user whose ``email`` does not normalize to that
        address (a case- or accent-folding collation) counts as unknown. Without it and
        :meth:`create_user`, the built-in users are used: email-only, kept in the store."""
        self._find_user = func
        return func

    def create_user(self, func: Callable[[str], Any]) -> Callable[[str], Any]:
        """Register ``func``, which makes the app's user on a first sign-in, and return it
        (a decorator); needed with :meth:`find_user` unless ``ALLOW_SIGNUP`` is False.

        It is called as ``func(email)`` with the normalized address and returns the new
        user, or ``None`` when the address was taken meanwhile (two first sign-ins racing):
        :meth:`find_user`'s callback then gives the user."""
        self._create_user = func
        return func

    # -- connectors -------------------------------------------------------------------------

    def connector(self, name: str = "default") -> PostmarkConnector:
        """The configured connector ``name`` of the current app."""
        connectors = state().connectors
        try:
            return connectors[name]
        except KeyError:
            raise LookupError(
                f"No connector named {name!r}; configured: {sorted(connectors)}."
            ) from None


def _secret_keys() -> list[str | bytes]:
    """The app's SECRET_KEY, then its SECRET_KEY_FALLBACKS, read at request time."""
    config = current_app.config
    if not config.get("SECRET_KEY"):
        raise RuntimeError("Sign-in needs app.config['SECRET_KEY'] to sign and hash secrets.")
    return [config["SECRET_KEY"], *(config.get("SECRET_KEY_FALLBACKS") or [])]


def build_connectors(settings: Settings) -> dict[str, PostmarkConnector]:
    """Connectors from ``SERVER_TOKEN``/``FROM_EMAIL``/``MESSAGE_STREAM`` and ``CONNECTORS``."""
    connectors: dict[str, PostmarkConnector] = {}
    token, from_email = settings.server_token, settings.from_email
    if token or from_email:
        if not token:
            raise ConfigurationError(
                f"{key('FROM_EMAIL')} is set but {key('SERVER_TOKEN')} is not: set it to the "
                "Server API Token from your Postmark server's API Tokens tab."
            )
        if not from_email:
            raise ConfigurationError(
                f"{key('FROM_EMAIL')} is missing: set it to a confirmed Sender Signature, "
                "such as 'Acme <login@acme.example>'."
            )
        connectors["default"] = _make(
            "default",
            key("SERVER_TOKEN"),
            {
                "server_token": token,
                "from_email": from_email,
                "message_stream": settings.message_stream,
            },
            settings,
            from_key=key("FROM_EMAIL"),
        )
    for name, spec in settings.connectors.items():
        where = f"{key('CONNECTORS')}[{name!r}]"
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{key('CONNECTORS')} names must be non-empty strings.")
        if name in connectors:
            raise ConfigurationError(
                f"{where} clashes with the connector built from {key('SERVER_TOKEN')}; "
                "configure 'default' in one place only."
            )
        if isinstance(spec, PostmarkConnector):
            connectors[name] = spec
        elif isinstance(spec, Mapping):
            connectors[name] = _make(
                name, where, spec, settings, from_key=f"{where}['from_email']"
            )
        else:
            raise ConfigurationError(f"{where} must be a dict of settings or a PostmarkConnector.")
    if "default" not in connectors:
        if not settings.dev_outbox:
            raise ConfigurationError(
                f"{key('SERVER_TOKEN')} is not set: set it to your Postmark Server API Token "
                f"(and {key('FROM_EMAIL')} to a confirmed sender), or add a 'default' entry "
                f"to {key('CONNECTORS')}. In debug or testing mode the dev outbox records "
                "mail instead."
            )
        connectors["default"] = PostmarkConnector(
            "default",
            # A placeholder, never sent: the outbox intercepts every message.
            server_token="dev-outbox",  # noqa: S106  # nosec B106
            from_email=from_email or DEV_OUTBOX_FROM,
            message_stream=settings.message_stream,
            description="Dev outbox: mail is recorded, not sent",
            api_url=settings.api_url,
        )
    for method_key, name in (
        ("OTP_CONNECTOR", settings.otp_connector),
        ("MAGIC_LINK_CONNECTOR", settings.magic_link_connector),
    ):
        if name not in connectors:
            raise ConfigurationError(
                f"{key(method_key)} names connector {name!r}, which is not configured; "
                f"configured: {sorted(connectors)}."
            )
    return connectors


def _make(
    name: str, where: str, spec: Mapping[str, Any], settings: Settings, *, from_key: str
) -> PostmarkConnector:
    refuse_unknown_keys(where, spec, _CONNECTOR_FIELDS)
    if not spec.get("server_token"):
        raise ConfigurationError(f"{where} needs 'server_token', your Postmark Server API Token.")
    if not spec.get("from_email"):
        raise ConfigurationError(f"{where} needs 'from_email', a confirmed sender address.")
    try:
        return PostmarkConnector(
            name,
            server_token=spec["server_token"],
            from_email=spec["from_email"],
            message_stream=spec.get("message_stream") or "outbound",
            description=spec.get("description", ""),
            api_url=settings.api_url,
        )
    except MessageValidationError as exc:
        raise ConfigurationError(
            f"{from_key} is not a valid From address: use 'login@acme.example' or "
            f"'Acme <login@acme.example>'."
        ) from exc
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc


def translation_catalogs(app: Flask, settings: Settings) -> Catalogs:
    """The package's catalogs behind the app's own (``TRANSLATION_DIRECTORIES``)."""
    found = []
    for directory in settings.translation_directories:
        path = os.path.join(app.root_path, directory)
        if not os.path.isdir(path):
            raise ConfigurationError(
                f"{key('TRANSLATION_DIRECTORIES')}: {path} is not a directory."
            )
        found.append(path)
    return Catalogs(found)
