"""Flows: custom emails whose recipient, subject and body are rendered in Jinja's sandbox
from earlier data; checks at init_app; triggers; the CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from flask_postmark_auth import ConfigurationError, PostmarkAuth, signals
from flask_postmark_auth.cli import postmark_auth_cli
from flask_postmark_auth.errors import InactiveRecipientError
from flask_postmark_auth.flows import EmailStep, Flow, FlowError
from flask_postmark_auth.testing import FakeClock, code_in, record_messages
from tests.helpers import AppFactory

CONTACT = {
    "description": "Thank people who write to us",
    "steps": [
        {
            "to": "{{ form.email }}",
            "subject": "Thanks, {{ form.name }}",
            "text": "Hi {{ form.name }},\nYou wrote: {{ form.message }}\n",
            "html": "<p>Hi {{ form.name }}, you wrote: {{ form.message }}</p>",
            "tag": "contact",
            "metadata": {"source": "{{ form.source | default('web') }}"},
        }
    ],
}


def flows_app(make_app: AppFactory, flows: dict[str, Any], **settings: Any) -> Flask:
    return make_app(FLOWS=flows, **settings)


def run(app: Flask, name: str, **context: Any) -> Any:
    auth: PostmarkAuth = PostmarkAuth()  # any instance: run_flow reads the current app
    with app.test_request_context():
        return auth.run_flow(name, **context)


def test_contact_flow_sends_to_the_form_address(make_app: AppFactory) -> None:
    app = flows_app(make_app, {"contact": CONTACT})
    form = {"email": "Ann@Example.com", "name": "Ann", "message": "Hello"}
    with record_messages(app) as outbox:
        result = run(app, "contact", form=form)
    assert result.ok
    [step] = result.steps
    assert step.status == "sent"
    [message] = outbox
    assert step.message_id == message.message_id
    assert message.to == "ann@example.com"
    assert message.subject == "Thanks, Ann"
    assert message.text_body == "Hi Ann,\nYou wrote: Hello"
    assert message.tag == "contact"
    assert message.metadata == {"source": "web"}


def test_html_is_autoescaped_and_text_is_not(make_app: AppFactory) -> None:
    app = flows_app(make_app, {"contact": CONTACT})
    form = {"email": "a@example.com", "name": "A & B", "message": "<script>x</script>"}
    with record_messages(app) as outbox:
        run(app, "contact", form=form)
    [message] = outbox
    assert "&lt;script&gt;" in (message.html_body or "")
    assert "<script>" not in (message.html_body or "")
    assert "A &amp; B" in (message.html_body or "")
    assert "<script>x</script>" in (message.text_body or "")
    assert message.subject == "Thanks, A & B"


def test_template_expressions_in_form_values_are_not_evaluated(make_app: AppFactory) -> None:
    app = flows_app(make_app, {"contact": CONTACT})
    form = {"email": "a@example.com", "name": "{{ 7 * 7 }}", "message": "{% print 1 %}"}
    with record_messages(app) as outbox:
        run(app, "contact", form=form)
    assert outbox[0].subject == "Thanks, {{ 7 * 7 }}"
    assert "{% print 1 %}" in (outbox[0].text_body or "")


@pytest.mark.parametrize(
    "email",
    [
        "a@example.com\r\nBcc: evil@example.com",
        "a@example.com, evil@example.com",
        "a@example.com;evil@example.com",
        "Evil <evil@example.com>",
        '"a@example.com" <evil@example.com>',
        "",
        "not-an-address",
        "a@example.com\n",
    ],
)
def test_recipient_must_render_to_exactly_one_valid_address(
    make_app: AppFactory, email: str
) -> None:
    app = flows_app(make_app, {"contact": CONTACT})
    with record_messages(app) as outbox:
        result = run(app, "contact", form={"email": email, "name": "x", "message": "y"})
    assert outbox == []
    [step] = result.steps
    assert step.status == "failed"
    assert isinstance(step.error, FlowError)
    assert "'contact'" in str(step.error)
    assert "step 1" in str(step.error)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ form.__class__.__init__.__globals__ }}",
        "{{ form.email.__class__.__base__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ ''.format.__self__ }}",
    ],
)
def test_sandbox_refuses_attribute_escapes(make_app: AppFactory, source: str) -> None:
    flows = {"evil": {"steps": [{"to": "a@example.com", "subject": "x", "text": source}]}}
    app = flows_app(make_app, flows)
    with record_messages(app) as outbox:
        result = run(app, "evil", form={"email": "a@example.com"})
    assert outbox == []
    [step] = result.steps
    assert step.status == "failed"
    assert "flows" in str(step.error).lower()


def test_undefined_variable_names_flow_step_and_variable(make_app: AppFactory) -> None:
    flows = {
        "x": {"steps": [{"to": "{{ form.email }}", "subject": "s", "text": "{{ usr.name }}"}]}
    }
    app = flows_app(make_app, flows)
    result = run(app, "x", form={"email": "a@example.com"})
    [step] = result.steps
    assert step.status == "failed"
    message = str(step.error)
    assert "POSTMARK_AUTH_FLOWS['x'] step 1" in message
    assert "'text'" in message
    assert "usr" in message


def test_when_skips_a_step(make_app: AppFactory) -> None:
    flows = {
        "x": {
            "steps": [
                {"to": "{{ form.email }}", "subject": "a", "text": "a", "when": "form.vip"},
                {"to": "{{ form.email }}", "subject": "b", "text": "b", "when": "not form.vip"},
            ]
        }
    }
    app = flows_app(make_app, flows)
    with record_messages(app) as outbox:
        result = run(app, "x", form={"email": "a@example.com", "vip": False})
    assert [s.status for s in result.steps] == ["skipped", "sent"]
    assert [m.subject for m in outbox] == ["b"]


def test_template_step_renders_its_model(make_app: AppFactory) -> None:
    flows = {
        "x": {
            "steps": [
                {
                    "to": "{{ user.email }}",
                    "template": "welcome",
                    "model": {"name": "{{ user.name }}", "items": ["{{ user.plan }}", 3]},
                }
            ]
        }
    }
    app = flows_app(make_app, flows)
    user = {"email": "a@example.com", "name": "Ann", "plan": "pro"}
    with record_messages(app) as outbox:
        run(app, "x", user=user)
    [message] = outbox
    assert message.template == "welcome"
    assert message.template_model == {"name": "Ann", "items": ["pro", 3]}


def test_python_api_flows(make_app: AppFactory, clock: FakeClock) -> None:
    auth = PostmarkAuth(clock=clock)
    auth.add_flow(
        Flow(
            "invite",
            [EmailStep(to="{{ friend }}", subject="{{ user.email }} invited you", text="Join!")],
            description="Invite a friend",
        )
    )
    app = make_app(auth=auth)
    with app.test_request_context(), record_messages(app) as outbox:
        result = auth.run_flow("invite", friend="bob@example.com", user={"email": "a@x.com"})
    assert result.ok
    assert outbox[0].subject == "a@x.com invited you"


def test_unknown_flow_is_a_lookup_error(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(LookupError, match="nope"):
        run(app, "nope")


def test_send_failures_are_reported_per_step_with_the_postmark_error(
    make_app: AppFactory,
) -> None:
    flows = {
        "x": {
            "steps": [
                {"to": "gone@example.com", "subject": "a", "text": "a"},
                {"to": "ok@example.com", "subject": "b", "text": "b"},
            ]
        }
    }
    app = flows_app(make_app, flows)
    connector = app.extensions["postmark_auth"].connectors["default"]
    sent: list[str] = []

    def postmark(path: str, payload: Any) -> Any:
        if payload["To"] == "gone@example.com":
            raise InactiveRecipientError(422, 406, "Inactive recipient.")
        sent.append(payload["To"])
        return {"To": payload["To"], "MessageID": "m-1", "ErrorCode": 0, "Message": "OK"}

    connector.interceptor = postmark
    failures: list[Any] = []
    finished: list[Any] = []
    with (
        signals.delivery_failed.connected_to(lambda s, **kw: failures.append(kw), app),
        signals.flow_finished.connected_to(lambda s, **kw: finished.append(kw), app),
    ):
        result = run(app, "x")
    assert [s.status for s in result.steps] == ["failed", "sent"]
    assert isinstance(result.steps[0].error, InactiveRecipientError)
    assert not result.ok
    assert sent == ["ok@example.com"]
    assert failures[0]["email"] == "gone@example.com"
    assert finished[0]["flow"] == "x"
    assert finished[0]["result"] is result


def test_steps_honour_background_delivery(make_app: AppFactory, clock: FakeClock) -> None:
    auth = PostmarkAuth(clock=clock)
    app = make_app(auth=auth, DELIVERY="background", FLOWS={"contact": CONTACT})
    with app.test_request_context(), record_messages(app) as outbox:
        result = auth.run_flow(
            "contact", form={"email": "a@example.com", "name": "A", "message": "m"}
        )
        assert auth.flush(5)
    assert [s.status for s in result.steps] == ["queued"]
    assert len(outbox) == 1


# -- checks at init_app ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        (
            {"x": {"steps": [{"to": "{{ form.email", "subject": "s", "text": "t"}]}},
            ["POSTMARK_AUTH_FLOWS['x'] step 1", "'to'", "Jinja syntax"],
        ),
        (
            {"x": {"steps": [{"to": "a@x.com", "subject": "s", "text": "{% if %}"}]}},
            ["POSTMARK_AUTH_FLOWS['x'] step 1", "'text'"],
        ),
        (
            {
                "x": {
                    "steps": [{"to": "a@x.com", "subject": "s", "text": "t", "connector": "nope"}]
                }
            },
            ["step 1", "connector 'nope'", "configured: ['default']"],
        ),
        ({"x": {"steps": [{"to": "a@x.com", "text": "t"}]}}, ["step 1", "'subject'"]),
        ({"x": {"steps": [{"to": "a@x.com", "subject": "s"}]}}, ["step 1", "'text', 'html'"]),
        ({"x": {"steps": [{"subject": "s", "text": "t"}]}}, ["step 1", "'to'"]),
        ({"x": {"steps": [{"to": "a@x.com", "template": "w"}]}}, ["step 1", "'model'"]),
        (
            {"x": {"steps": [{"to": "a@x.com", "template": "w", "model": {}, "subject": "s"}]}},
            ["step 1", "template"],
        ),
        (
            {
                "x": {
                    "trigger": "signed_out",
                    "steps": [{"to": "a@x.com", "subject": "s", "text": "t"}],
                }
            },
            ["POSTMARK_AUTH_FLOWS['x']", "trigger 'signed_out'", "signed_in"],
        ),
        ({"x": {"steps": []}}, ["POSTMARK_AUTH_FLOWS['x']", "steps"]),
        ({"x": {"stepz": []}}, ["POSTMARK_AUTH_FLOWS['x']", "unknown keys", "stepz"]),
        (
            {"x": {"steps": [{"to": "a@x.com", "subject": "s", "text": "t", "bcc": "e@x.com"}]}},
            ["step 1", "unknown keys", "bcc"],
        ),
        (
            {"x": {"steps": [{"to": "a@x.com", "subject": "s", "text": "t", "when": "a b"}]}},
            ["step 1", "'when'"],
        ),
        ({"x": {"steps": ["email"]}}, ["step 1"]),
    ],
)
def test_bad_flows_fail_at_init_app(
    make_app: AppFactory, flows: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(FLOWS=flows)
    for text in expected:
        assert text in str(info.value)


# -- triggers -------------------------------------------------------------------------------

WELCOME = {
    "trigger": "signed_up",
    "steps": [{"to": "{{ user.email }}", "subject": "Welcome!", "text": "Glad you came."}],
}
NOTICE = {
    "trigger": "signed_in",
    "steps": [{"to": "{{ email }}", "subject": "New sign-in", "text": "By {{ method }}."}],
}


def sign_in(app: Flask, email: str) -> Any:
    client = app.test_client()
    with record_messages(app) as outbox:
        client.post("/auth/otp", json={"email": email})
        response = client.post(
            "/auth/otp/verify", json={"email": email, "code": code_in(outbox[0])}
        )
    return response, outbox[1:]


def test_signed_up_fires_once_per_address_and_signed_in_every_time(
    make_app: AppFactory,
) -> None:
    app = make_app(FLOWS={"welcome": WELCOME, "notice": NOTICE}, RESEND_INTERVAL=0)
    response, mail = sign_in(app, "ann@example.com")
    assert response.status_code == 200
    assert [m.subject for m in mail] == ["Welcome!", "New sign-in"]
    assert mail[1].text_body == "By otp."
    response, mail = sign_in(app, "ann@example.com")
    assert [m.subject for m in mail] == ["New sign-in"]


def test_a_failing_flow_never_breaks_the_sign_in(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    broken = {
        "trigger": "signed_in",
        "steps": [{"to": "{{ user.nickname }}", "subject": "s", "text": "t"}],
    }
    app = make_app(FLOWS={"broken": broken})
    response, mail = sign_in(app, "ann@example.com")
    assert response.status_code == 200
    assert response.json["status"] == "signed_in"
    assert mail == []
    assert "broken" in caplog.text


def test_a_raising_flow_is_logged_not_raised(make_app: AppFactory) -> None:
    app = make_app(FLOWS={"notice": NOTICE})

    def explode(path: str, payload: Any) -> Any:
        if payload.get("Subject") == "New sign-in":
            raise RuntimeError("boom")
        from flask_postmark_auth.messages import accepted_answer

        return accepted_answer(path, payload)

    client = app.test_client()
    with record_messages(app) as outbox:
        client.post("/auth/otp", json={"email": "ann@example.com"})
    app.extensions["postmark_auth"].connectors["default"].interceptor = explode
    response = client.post(
        "/auth/otp/verify", json={"email": "ann@example.com", "code": code_in(outbox[0])}
    )
    assert response.status_code == 200


# -- CLI ------------------------------------------------------------------------------------


def test_cli_flows_list(make_app: AppFactory) -> None:
    app = make_app(FLOWS={"contact": CONTACT, "welcome": WELCOME})
    result = app.test_cli_runner().invoke(postmark_auth_cli, ["flows", "list"])
    assert result.exit_code == 0
    assert "contact: run on demand, 1 step" in result.output
    assert "Thank people who write to us" in result.output
    assert "welcome: on signed_up, 1 step" in result.output


def test_cli_dry_run_renders_and_sends_nothing(make_app: AppFactory) -> None:
    app = make_app(FLOWS={"contact": CONTACT})
    context = {"form": {"email": "ann@example.com", "name": "Ann", "message": "<b>hi</b>"}}
    with record_messages(app) as outbox:
        result = app.test_cli_runner().invoke(
            postmark_auth_cli,
            [
                "flows",
                "run",
                "contact",
                "--context",
                json.dumps(context),
                "--dry-run",
            ],
        )
    assert result.exit_code == 0, result.output
    assert outbox == []
    assert "To: ann@example.com" in result.output
    assert "Subject: Thanks, Ann" in result.output
    assert "You wrote: <b>hi</b>" in result.output
    assert "&lt;b&gt;hi&lt;/b&gt;" in result.output


def test_cli_dry_run_exits_1_when_a_step_cannot_render(make_app: AppFactory) -> None:
    app = make_app(FLOWS={"contact": CONTACT})
    result = app.test_cli_runner().invoke(
        postmark_auth_cli, ["flows", "run", "contact", "--context", "{}", "--dry-run"]
    )
    assert result.exit_code == 1
    assert "cannot render" in result.output
    assert "form" in result.output


def test_cli_run_sends(make_app: AppFactory) -> None:
    app = make_app(FLOWS={"contact": CONTACT})
    context = {"form": {"email": "ann@example.com", "name": "Ann", "message": "m"}}
    with record_messages(app) as outbox:
        result = app.test_cli_runner().invoke(
            postmark_auth_cli, ["flows", "run", "contact", "--context", json.dumps(context)]
        )
    assert result.exit_code == 0, result.output
    assert f"MessageID {outbox[0].message_id}" in result.output


@pytest.mark.parametrize("context", ["not json", "[1, 2]"])
def test_cli_run_refuses_a_bad_context(make_app: AppFactory, context: str) -> None:
    app = make_app(FLOWS={"contact": CONTACT})
    result = app.test_cli_runner().invoke(
        postmark_auth_cli, ["flows", "run", "contact", "--context", context]
    )
    assert result.exit_code == 2
