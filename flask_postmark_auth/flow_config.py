"""Checking flows when the app starts: declared as data (``POSTMARK_AUTH_FLOWS``) or in
Python, each error naming ``POSTMARK_AUTH_FLOWS``, the flow, the step and the fix; every
template string is compiled here, once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError

from .errors import ConfigurationError
from .flows import EmailStep, Flow, compiled_expression, compiled_template, step_location
from .settings import TRIGGERS, key, refuse_unknown_keys

#: Keys an email step may have.
STEP_KEYS = frozenset(
    {
        "type",
        "connector",
        "to",
        "subject",
        "text",
        "html",
        "template",
        "model",
        "when",
        "tag",
        "metadata",
    }
)
FLOW_KEYS = frozenset({"description", "trigger", "steps", "rate_limit"})
#: Keys of a flow's ``rate_limit``: messages per rendered recipient and runs per client IP,
#: per hour, when the flow is run from a request.
RATE_LIMIT_KEYS = frozenset({"per_recipient", "per_ip"})


def parse_flows(
    raw: Mapping[str, Any], extra: Iterable[Flow], connectors: Iterable[str]
) -> dict[str, Flow]:
    """Check the configured flows and the Python ones; raise :class:`ConfigurationError`
    naming ``POSTMARK_AUTH_FLOWS``, the flow, the step and the fix."""
    names = set(connectors)
    flows: dict[str, Flow] = {}
    for name, spec in raw.items():
        flows[name] = _flow_from_data(name, spec)
    for flow in extra:
        if flow.name in flows:
            raise ConfigurationError(
                f"Flow {flow.name!r} is both in {key('FLOWS')} and added in Python: keep one."
            )
        flows[flow.name] = flow
    for flow in flows.values():
        check_flow(flow, names)
    return flows


def _flow_from_data(name: object, spec: object) -> Flow:
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{key('FLOWS')} names must be non-empty strings.")
    where = step_location(name, None)
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{where} must be a dict with 'steps' (and 'trigger').")
    refuse_unknown_keys(where, spec, FLOW_KEYS)
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigurationError(f"{where} needs 'steps': a non-empty list of email steps.")
    parsed = []
    for index, step in enumerate(steps):
        at = step_location(name, index)
        if not isinstance(step, Mapping):
            raise ConfigurationError(f"{at} must be a dict such as {{'to': ..., 'subject': ...}}.")
        refuse_unknown_keys(at, step, STEP_KEYS)
        if step.get("type", "email") != "email":
            raise ConfigurationError(f"{at}: the only step type is 'email'.")
        options = {k: v for k, v in step.items() if k != "type"}
        if "to" not in options:
            raise ConfigurationError(f"{at} needs 'to', such as '{{{{ form.email }}}}'.")
        parsed.append(EmailStep(**options))
    description = spec.get("description", "")
    return Flow(
        name,
        parsed,
        trigger=spec.get("trigger"),
        description=str(description),
        rate_limit=spec.get("rate_limit", "default"),
    )


def check_flow(flow: Flow, connectors: set[str]) -> None:
    """Syntax, fields, connectors and trigger of one flow."""
    where = step_location(flow.name, None)
    if flow.trigger is not None and flow.trigger not in TRIGGERS:
        raise ConfigurationError(
            f"{where} has unknown trigger {flow.trigger!r}; use one of {list(TRIGGERS)} or none."
        )
    if not flow.steps:
        raise ConfigurationError(f"{where} has no steps.")
    _check_rate_limit(flow.rate_limit, where)
    for index, step in enumerate(flow.steps):
        at = step_location(flow.name, index)
        if not isinstance(step, EmailStep):
            raise ConfigurationError(f"{at} must be an EmailStep.")
        if step.connector not in connectors:
            raise ConfigurationError(
                f"{at} names connector {step.connector!r}, which is not configured; "
                f"configured: {sorted(connectors)}."
            )
        if step.template is not None:
            if step.subject is not None or step.text is not None or step.html is not None:
                raise ConfigurationError(
                    f"{at}: a template step takes its subject and body from the Postmark "
                    "template; drop 'subject', 'text' and 'html'."
                )
            if not isinstance(step.model, Mapping):
                raise ConfigurationError(f"{at}: a template step needs 'model', a dict.")
        else:
            if not step.subject:
                raise ConfigurationError(f"{at} needs 'subject' (or a Postmark 'template').")
            if not step.text and not step.html:
                raise ConfigurationError(f"{at} needs 'text', 'html' or both.")
        for name, source in _sources(step):
            _compile(source, name, at, html=name == "html")
        if step.when is not None:
            try:
                compiled_expression(step.when)
            except TemplateSyntaxError as exc:
                raise ConfigurationError(
                    f"{at} 'when': {exc.message}; fix the expression."
                ) from exc


def _check_rate_limit(value: object, where: str) -> None:
    if value is None or value == "default":
        return
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{where} 'rate_limit' must be a dict such as {{'per_recipient': 5, 'per_ip': 20}}"
            ", or None for no limit."
        )
    refuse_unknown_keys(f"{where} 'rate_limit'", value, RATE_LIMIT_KEYS)
    for name, limit in value.items():
        whole = isinstance(limit, int) and not isinstance(limit, bool)
        if limit is not None and (not whole or limit < 1):
            raise ConfigurationError(
                f"{where} 'rate_limit' {name!r} must be a whole number of at least 1, or None."
            )


def _sources(step: EmailStep) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in ("to", "subject", "text", "html", "tag"):
        value = getattr(step, name)
        if value is not None:
            if not isinstance(value, str):
                raise ConfigurationError(f"'{name}' must be a string, not {value!r}.")
            found.append((name, value))
    for k, v in (step.metadata or {}).items():
        found.append((f"metadata[{k!r}]", str(v)))
    found.extend(_model_strings(step.model or {}, "model"))
    return found


def _model_strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in _model_strings(v, f"{path}[{k!r}]")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _model_strings(v, f"{path}[{i}]")]
    return []


def _compile(source: str, name: str, at: str, *, html: bool) -> Any:
    try:
        return compiled_template(source, html)
    except TemplateSyntaxError as exc:
        raise ConfigurationError(
            f"{at} '{name}': {exc.message} (line {exc.lineno}); fix the Jinja syntax."
        ) from exc
