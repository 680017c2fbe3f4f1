"""Flow templates render in Jinja's ``ImmutableSandboxedEnvironment`` and are compiled once,
at ``init_app`` (SPEC section 11, "Flows are not an open relay"; docs/flows.md, "Rendering").

A template may read the data a flow is given, even through methods that change nothing, but
never change it: the step fails with a :class:`FlowError` caused by Jinja's
:class:`SecurityError`, nothing is sent and the caller's objects are as they were."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import jinja2
import pytest
from flask import Flask
from jinja2.exceptions import SecurityError

from flask_postmark_auth import ConfigurationError, PostmarkAuth
from flask_postmark_auth.flows import EmailStep, Flow, FlowError
from flask_postmark_auth.testing import FakeClock, record_messages
from tests.helpers import AppFactory

TO = "ann@example.com"


def data() -> dict[str, Any]:
    """A fresh context with a list, a dict, a set and nested containers."""
    return {
        "items": [1, 2],
        "d": {"a": 1},
        "tags": {"t"},
        "form": {"email": TO, "tags": ["t"], "extra": {"k": "v"}},
    }


def one_step_app(make_app: AppFactory, **step: Any) -> Flask:
    """An app with the flow ``x``: one email step, ``step`` over a plain one (a ``None``
    drops a field)."""
    fields = {
        k: v for k, v in {"to": TO, "subject": "s", "text": "t", **step}.items() if v is not None
    }
    return make_app(FLOWS={"x": {"steps": [fields], "rate_limit": None}})


def run(app: Flask, name: str, context: dict[str, Any]) -> Any:
    auth = PostmarkAuth()  # any instance: run_flow reads the current app
    with app.test_request_context():
        return auth.run_flow(name, **context)


def assert_refused(result: Any, outbox: list[Any]) -> None:
    [step] = result.steps
    assert step.status == "failed"
    assert isinstance(step.error, FlowError)
    assert isinstance(step.error.__cause__, SecurityError)
    assert "POSTMARK_AUTH_FLOWS['x'] step 1" in str(step.error)
    assert not result.ok
    assert outbox == []


# -- the sandbox is immutable ---------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ items.append(3) }}",
        "{{ items.extend([3]) }}",
        "{{ items.insert(0, 3) }}",
        "{{ items.pop() }}",
        "{{ items.remove(1) }}",
        "{{ items.sort(reverse=true) }}",
        "{{ items.reverse() }}",
        "{{ items.clear() }}",
        "{{ d.clear() }}",
        "{{ d.update(x=1) }}",
        "{{ d.pop('a') }}",
        "{{ d.popitem() }}",
        "{{ d.setdefault('z', 1) }}",
        "{{ tags.add('x') }}",
        "{{ tags.discard('t') }}",
        "{{ form.tags.append('x') }}",
        "{{ form.extra.update(k='w') }}",
        "{% set _ = items.append(3) %}done",
        "{% for i in [1] %}{{ d.update(x=i) }}{% endfor %}",
    ],
)
def test_a_template_cannot_mutate_the_flow_data(make_app: AppFactory, source: str) -> None:
    app = one_step_app(make_app, text=source)  # compiles: the sandbox refuses on render
    context = data()
    before = copy.deepcopy(context)
    with record_messages(app) as outbox:
        result = run(app, "x", context)
    assert_refused(result, outbox)
    assert "refused by the sandbox" in str(result.steps[0].error)
    assert context == before


@pytest.mark.parametrize(
    "step",
    [
        {"to": "{{ items.append(3) or 'ann@example.com' }}"},
        {"subject": "{{ d.update(x=1) }}"},
        {"html": "<p>{{ items.append(3) }}</p>"},
        {"tag": "{{ d.clear() }}"},
        {"metadata": {"k": "{{ tags.add('x') }}"}},
        {"when": "d.update(x=1)"},
        {"when": "items.append(3) or true"},
        {
            "subject": None,
            "text": None,
            "template": "welcome",
            "model": {"list": ["{{ form.tags.append('x') }}"]},
        },
    ],
    ids=["to", "subject", "html", "tag", "metadata", "when", "when-true", "model"],
)
def test_no_field_of_a_step_can_mutate_the_flow_data(
    make_app: AppFactory, step: dict[str, Any]
) -> None:
    app = one_step_app(make_app, **step)
    context = data()
    before = copy.deepcopy(context)
    with record_messages(app) as outbox:
        result = run(app, "x", context)
    assert_refused(result, outbox)
    assert context == before


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ items.index(2) }}", "1"),
        ("{{ items.count(1) }}", "1"),
        ("{{ items[0] }} {{ items | length }} {{ items | last }}", "1 2 2"),
        ("{{ items | sort(reverse=true) | join(',') }}", "2,1"),
        ("{{ (items + [3]) | join(',') }}", "1,2,3"),
        ("{{ d.get('a') }} {{ d['a'] }} {{ d.a }}", "1 1 1"),
        ("{{ d.keys() | list }} {{ d.items() | list }}", "['a'] [('a', 1)]"),
        ("{{ d.copy() }} {{ dict(d, x=1) }}", "{'a': 1} {'a': 1, 'x': 1}"),
        ("{{ 't' in tags }} {{ tags | length }}", "True 1"),
        ("{{ form.tags | join(',') }} {{ form.extra.k }}", "t v"),
        ("{% set mine = items | list %}{{ mine | length }}", "2"),
        ("{% for k, v in d | dictsort %}{{ k }}={{ v }}{% endfor %}", "a=1"),
    ],
)
def test_the_same_data_can_be_read(make_app: AppFactory, source: str, expected: str) -> None:
    app = one_step_app(make_app, subject=source, text=source, when="items.count(1) == 1")
    context = data()
    before = copy.deepcopy(context)
    with record_messages(app) as outbox:
        result = run(app, "x", context)
    assert result.ok, result.steps[0].error
    assert [s.status for s in result.steps] == ["sent"]
    [message] = outbox
    assert message.subject == expected
    assert message.text_body == expected
    assert context == before


@pytest.mark.parametrize(
    "step",
    [
        {"text": "{{ ''.__class__.__mro__ }}"},
        {"text": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
        {"text": "{{ items.__class__ }}"},
        {"text": "{{ d.__init__.__globals__ }}"},
        {"text": "{{ lipsum.__globals__ }}"},
        {"text": "{{ items.append.__self__ }}"},
        {"html": "{{ form.__class__.__base__ }}"},
        {"subject": "{{ ''.__class__.__mro__ }}"},
        {"when": "''.__class__.__mro__"},
    ],
    ids=["mro", "subclasses", "class", "globals", "lipsum", "self", "html", "subject", "when"],
)
def test_attribute_escapes_are_refused(make_app: AppFactory, step: dict[str, Any]) -> None:
    app = one_step_app(make_app, **step)
    context = data()
    with record_messages(app) as outbox:
        result = run(app, "x", context)
    assert_refused(result, outbox)


# -- compiled once, at init_app -------------------------------------------------------------


def count_compiles(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A list that gets the source of every Jinja compilation from now on, by any
    environment (``from_string`` and ``compile_expression`` both go through ``compile``)."""
    compiled: list[Any] = []
    original: Any = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(source)
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return compiled


def test_flow_templates_are_compiled_at_init_app_and_never_on_a_run(
    make_app: AppFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = "{# " + uuid.uuid4().hex + " #}"  # sources no earlier test compiled
    data_step = {
        "to": mark + "{{ user.email }}",
        "subject": mark + "Hi {{ user.name }}",
        "text": mark + "Hello {{ user.name }}",
        "html": mark + "<p>Hello {{ user.name }}</p>",
        "tag": mark + "t",
        "metadata": {"k": mark + "{{ user.name }}"},
        "when": f"user.name != {mark!r}",
    }
    model_step = {
        "to": mark + "{{ user.email }}",
        "template": "welcome",
        "model": {"name": mark + "{{ user.name }}"},
    }
    python_step = EmailStep(to=mark + "{{ user.email }}", subject=mark + "py", text=mark + "py")
    auth = PostmarkAuth(clock=clock)
    auth.add_flow(Flow("python", [python_step], rate_limit=None))
    compiled = count_compiles(monkeypatch)

    app = make_app(
        auth=auth, FLOWS={"data": {"steps": [data_step, model_step], "rate_limit": None}}
    )

    sources = {s for s in compiled if isinstance(s, str)}
    template_fields = [v for k, v in data_step.items() if k not in ("metadata", "when")]
    for source in [*template_fields, mark + "{{ user.name }}", mark + "py"]:
        assert source in sources, f"{source!r} was not compiled at init_app"
    assert any(not isinstance(s, str) for s in compiled)  # the 'when' expression
    compiled.clear()

    user = {"email": TO, "name": "Ann"}
    with record_messages(app) as outbox:
        for _ in range(20):
            assert run(app, "data", {"user": user}).ok
            assert run(app, "python", {"user": user}).ok
        with app.app_context():  # a run outside a request (a job, the CLI)
            assert auth.run_flow("data", user=user).ok
    assert len(outbox) == 21 * 2 + 20
    assert outbox[0].subject == "Hi Ann"
    assert outbox[0].html_body == "<p>Hello Ann</p>"
    assert compiled == [], f"a run compiled {len(compiled)} Jinja sources"


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"to": "{{ user.email "}, "'to'"),
        ({"subject": "{{ user.name"}, "'subject'"),
        ({"text": "{% if %}"}, "'text'"),
        ({"html": "<p>{% for %}</p>"}, "'html'"),
        ({"tag": "{{ }}"}, "'tag'"),
        ({"metadata": {"k": "{{ user.name"}}, "metadata['k']"),
        ({"when": "user.name ==="}, "'when'"),
        (
            {"subject": None, "text": None, "template": "w", "model": {"n": ["{% endif %}"]}},
            "model['n'][0]",
        ),
    ],
    ids=["to", "subject", "text", "html", "tag", "metadata", "when", "model"],
)
def test_a_syntax_error_in_any_field_stops_init_app(
    make_app: AppFactory, clock: FakeClock, step: dict[str, Any], field: str
) -> None:
    fields: dict[str, Any] = {"to": "{{ user.email }}", "subject": "s", "text": "t", **step}
    auth = PostmarkAuth(clock=clock)
    auth.add_flow(Flow("x", [EmailStep(**fields)]))
    with pytest.raises(ConfigurationError) as info:
        make_app(auth=auth)
    message = str(info.value)
    assert "POSTMARK_AUTH_FLOWS['x'] step 1" in message
    assert field in message
