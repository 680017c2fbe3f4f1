"""PostmarkAuth's init_app: state, defaults, connectors built from config, and the errors a
wrong configuration gives at start-up."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from flask_postmark_auth import ConfigurationError, PostmarkAuth, PostmarkConnector
from flask_postmark_auth.settings import DEFAULTS, RESOLVED
from flask_postmark_auth.state import AuthState

TOKEN = "server-token-0123456789abcdef"


def make_app(testing: bool = False, debug: bool = False, **config: Any) -> Flask:
    """An app as deployed: a strong key and a canonical URL unless the test says otherwise."""
    config.setdefault("BASE_URL", "https://app.acme.example")
    app = Flask(__name__)
    app.config.update(SECRET_KEY="extension-tests-0123456789abcdef", TESTING=testing)
    app.debug = debug
    app.config.update({f"POSTMARK_AUTH_{k}": v for k, v in config.items()})
    return app


def configured(**config: Any) -> Flask:
    base: dict[str, Any] = {"SERVER_TOKEN": TOKEN, "FROM_EMAIL": "Acme <login@acme.example>"}
    base.update(config)
    return make_app(**base)


def test_init_app_keeps_state_in_app_extensions_and_not_on_the_extension() -> None:
    auth = PostmarkAuth()
    app = configured()
    auth.init_app(app)
    assert isinstance(app.extensions["postmark_auth"], AuthState)
    assert not hasattr(auth, "app")


def test_constructor_with_app_calls_init_app() -> None:
    app = configured()
    PostmarkAuth(app)
    assert "postmark_auth" in app.extensions


def test_second_init_app_on_the_same_app_raises() -> None:
    auth = PostmarkAuth()
    app = configured()
    auth.init_app(app)
    with pytest.raises(RuntimeError, match="already registered"):
        auth.init_app(app)
    with pytest.raises(RuntimeError, match="already registered"):
        PostmarkAuth().init_app(app)


def test_one_extension_serves_several_apps_with_their_own_connectors() -> None:
    auth = PostmarkAuth()
    one = configured(FROM_EMAIL="one@acme.example")
    two = configured(FROM_EMAIL="two@acme.example", MESSAGE_STREAM="signin")
    auth.init_app(one)
    auth.init_app(two)
    with one.app_context():
        assert auth.connector().from_email == "one@acme.example"
    with two.app_context():
        assert auth.connector().from_email == "two@acme.example"
        assert auth.connector().message_stream == "signin"


def test_every_default_is_set_without_overriding_the_apps_values() -> None:
    app = configured(OTP_TTL=120)
    PostmarkAuth(app)
    assert app.config["POSTMARK_AUTH_OTP_TTL"] == 120
    for name, default in DEFAULTS.items():
        if name not in ("OTP_TTL", "SERVER_TOKEN", "FROM_EMAIL", "BASE_URL", *RESOLVED):
            assert app.config[f"POSTMARK_AUTH_{name}"] == default


def test_default_connector_uses_token_from_stream_and_api_url() -> None:
    app = configured(MESSAGE_STREAM="signin", API_URL="http://127.0.0.1:9/")
    auth = PostmarkAuth(app)
    with app.app_context():
        connector = auth.connector("default")
    assert connector.name == "default"
    assert connector.message_stream == "signin"
    assert connector.api_url == "http://127.0.0.1:9"
    assert connector.interceptor is None


def test_more_connectors_from_config_dicts_and_instances() -> None:
    ready = PostmarkConnector("billing", server_token="t-billing", from_email="b@acme.example")
    app = configured(
        CONNECTORS={
            "marketing": {
                "server_token": "t-marketing",
                "from_email": "News <news@acme.example>",
                "message_stream": "broadcast",
                "description": "Newsletters",
            },
            "billing": ready,
        }
    )
    auth = PostmarkAuth(app)
    with app.app_context():
        marketing = auth.connector("marketing")
        assert marketing.message_stream == "broadcast"
        assert marketing.description == "Newsletters"
        assert auth.connector("billing") is ready
        with pytest.raises(LookupError, match="nope"):
            auth.connector("nope")


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({"SERVER_TOKEN": None, "FROM_EMAIL": None}, ["POSTMARK_AUTH_SERVER_TOKEN"]),
        ({"FROM_EMAIL": None}, ["POSTMARK_AUTH_FROM_EMAIL"]),
        ({"SERVER_TOKEN": None}, ["POSTMARK_AUTH_SERVER_TOKEN"]),
        ({"FROM_EMAIL": "not an address"}, ["POSTMARK_AUTH_FROM_EMAIL", "Acme <"]),
        ({"FROM_EMAIL": "a@acme.example, b@acme.example"}, ["POSTMARK_AUTH_FROM_EMAIL"]),
        ({"OTP_CONNECTOR": "marketing"}, ["POSTMARK_AUTH_OTP_CONNECTOR", "marketing"]),
        ({"MAGIC_LINK_CONNECTOR": "x"}, ["POSTMARK_AUTH_MAGIC_LINK_CONNECTOR"]),
        (
            {"CONNECTORS": {"m": {"server_token": "t"}}},
            ["POSTMARK_AUTH_CONNECTORS['m']", "from_email"],
        ),
        ({"CONNECTORS": {"m": {"from_email": "m@acme.example"}}}, ["server_token"]),
        (
            {
                "CONNECTORS": {
                    "m": {"server_token": "t", "from_email": "m@a.example", "token": "x"}
                }
            },
            ["unknown keys", "token"],
        ),
        ({"CONNECTORS": {"m": "t"}}, ["POSTMARK_AUTH_CONNECTORS['m']"]),
        (
            {"CONNECTORS": {"default": {"server_token": "t", "from_email": "d@a.example"}}},
            ["clashes"],
        ),
        ({"SERVER_TOKN": "x"}, ["POSTMARK_AUTH_SERVER_TOKN", "POSTMARK_AUTH_SERVER_TOKEN"]),
        ({"OTP_LENGTH": 4}, ["POSTMARK_AUTH_OTP_LENGTH", "6 to 10"]),
        ({"OTP_LENGTH": "6"}, ["POSTMARK_AUTH_OTP_LENGTH"]),
        ({"METHODS": ["otp", "sms"]}, ["POSTMARK_AUTH_METHODS"]),
        ({"METHODS": []}, ["POSTMARK_AUTH_METHODS"]),
        ({"DELIVERY": "celery"}, ["POSTMARK_AUTH_DELIVERY"]),
        ({"URL_PREFIX": "auth"}, ["POSTMARK_AUTH_URL_PREFIX"]),
        ({"STORE": "postgres"}, ["POSTMARK_AUTH_STORE"]),
        ({"MAGIC_LINK_CONFIRM": "yes"}, ["POSTMARK_AUTH_MAGIC_LINK_CONFIRM"]),
    ],
)
def test_bad_configuration_fails_at_init_app_naming_the_key(
    config: dict[str, Any], names: list[str]
) -> None:
    app = configured(**config)
    with pytest.raises(ConfigurationError) as info:
        PostmarkAuth(app)
    for name in names:
        assert name in str(info.value)
    assert "postmark_auth" not in app.extensions


def test_missing_token_outside_debug_and_testing_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigurationError, match="Server API Token"):
        PostmarkAuth(make_app())


@pytest.mark.parametrize(("testing", "debug"), [(True, False), (False, True)])
def test_no_token_in_debug_or_testing_turns_the_dev_outbox_on(testing: bool, debug: bool) -> None:
    app = make_app(testing=testing, debug=debug, STORE="memory://")
    auth = PostmarkAuth(app)
    assert app.extensions["postmark_auth"].settings.dev_outbox
    with app.app_context():
        result = auth.connector().send("a@example.com", "Hi", text_body="hello")
    assert result.message_id
    [raw] = app.extensions["postmark_auth"].outbox.messages()
    record = json.loads(raw)
    assert (record["to"], record["subject"], record["text"]) == ("a@example.com", "Hi", "hello")


def test_dev_outbox_is_refused_outside_debug_and_testing() -> None:
    with pytest.raises(ConfigurationError, match="POSTMARK_AUTH_DEV_OUTBOX"):
        PostmarkAuth(configured(DEV_OUTBOX=True))


def test_a_token_in_testing_mode_sends_for_real_unless_the_outbox_is_asked_for() -> None:
    app = configured(testing=True)
    PostmarkAuth(app)
    assert not app.extensions["postmark_auth"].settings.dev_outbox
    assert app.extensions["postmark_auth"].settings.store == "memory://"


def test_token_is_not_in_the_state_repr() -> None:
    app = configured()
    PostmarkAuth(app)
    assert TOKEN not in repr(app.extensions["postmark_auth"].connectors)


def test_resolved_settings_are_written_back_to_the_config() -> None:
    app = configured(testing=True)
    PostmarkAuth(app)
    assert app.config["POSTMARK_AUTH_STORE"] == "memory://"
    assert app.config["POSTMARK_AUTH_DELIVERY"] == "sync"
    assert app.config["POSTMARK_AUTH_DEV_OUTBOX"] is False  # a token is configured


def test_every_key_is_one_row_with_a_default_a_check_and_a_doc_line() -> None:
    from dataclasses import fields

    from flask_postmark_auth.settings import Settings

    rows = fields(Settings)
    assert [row.name.upper() for row in rows] == list(DEFAULTS)
    for row in rows:
        assert callable(row.metadata["check"]), row.name
        assert row.metadata["doc"].strip(), row.name
