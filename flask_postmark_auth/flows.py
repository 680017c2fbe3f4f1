"""Flows: named lists of email steps whose recipient, subject and body are Jinja strings
rendered in a sandbox from earlier data (``{{ form.email }}``, ``{{ user.email }}``).

Declared as data (``POSTMARK_AUTH_FLOWS``) or in Python (:class:`Flow`, :class:`EmailStep`),
checked when the app starts, and run by ``auth.run_flow(name, **context)`` or by a trigger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .addresses import normalize_email
from .errors import ConfigurationError, InvalidEmailError, MessageValidationError, PostmarkError
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

#: A flow's ``rate_limit``: ``"default"`` (``FLOW_EMAILS_PER_HOUR`` and
#: ``FLOW_IP_REQUESTS_PER_HOUR``), a dict overriding either, or ``None`` (no limit).
RateLimit = Mapping[str, "int | None"] | Literal["default"] | None


class FlowError(Exception):
    """A flow step could not be rendered: an undefined variable, a sandbox refusal, or a
    recipient that is not exactly one valid address. The message names flow and step."""


class StepRateLimitedError(Exception):
    """A step's recipient had its share of this flow's mail this hour."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class EmailStep:
    """One email: Jinja strings for ``to``, ``subject`` and ``text``/``html``, or a Postmark
    ``template`` with a ``model`` whose strings are rendered too."""

    to: str
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    template: str | int | None = None
    model: Mapping[str, Any] | None = None
    connector: str = "default"
    when: str | None = None
    tag: str | None = None
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Flow:
    """A named list of steps, run on demand or by a trigger (``signed_in``, ``signed_up``)."""

    name: str
    steps: tuple[EmailStep, ...]
    trigger: str | None = None
    description: str = ""
    rate_limit: RateLimit = "default"

    def __init__(
        self,
        name: str,
        steps: Iterable[EmailStep],
        trigger: str | None = None,
        description: str = "",
        rate_limit: RateLimit = "default",
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "steps", tuple(steps))
        object.__setattr__(self, "trigger", trigger)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "rate_limit", rate_limit)


@dataclass(frozen=True)
class RenderedStep:
    """A step rendered from its context: what would be sent, or why it is skipped."""

    index: int
    connector: str
    skipped: bool
    to: str | None = None
    message: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepOutcome:
    """What happened to one step: ``sent`` (with ``message_id``), ``queued`` (handed to
    background delivery), ``skipped`` (its ``when`` was false), ``rate_limited`` (its
    recipient or the client had their share this hour; ``retry_after`` seconds) or
    ``failed`` (``error``)."""

    index: int
    status: str
    to: str | None = None
    message_id: str | None = None
    error: Exception | None = None
    retry_after: int | None = None


@dataclass
class FlowResult:
    """Each step's outcome, in order."""

    flow: str
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no step failed or was rate limited."""
        return all(step.status not in ("failed", "rate_limited") for step in self.steps)

    @property
    def retry_after(self) -> int | None:
        """Seconds until a rate-limited step could go, or ``None`` when none was."""
        waits = [step.retry_after for step in self.steps if step.retry_after is not None]
        return max(waits) if waits else None

    @classmethod
    def rate_limited(cls, flow: Flow, retry_after: int) -> FlowResult:
        """Every step of ``flow`` held back by a limit on the whole run."""
        return cls(
            flow.name,
            [
                StepOutcome(index, "rate_limited", retry_after=retry_after)
                for index in range(len(flow.steps))
            ],
        )


def _environments() -> tuple[ImmutableSandboxedEnvironment, ImmutableSandboxedEnvironment]:
    # Immutable: a template can read the context but not change a list or dict in it.
    plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    html = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
    return plain, html


_PLAIN, _HTML = _environments()


@lru_cache(maxsize=1024)
def _template(source: str, html: bool) -> Template:
    """``source`` compiled once per process (``init_app`` compiles every flow's strings
    when it checks them, so runs never pay for it)."""
    return (_HTML if html else _PLAIN).from_string(source)


def _where(flow: str, index: int | None) -> str:
    step = f" step {index + 1}" if index is not None else ""
    return f"{key('FLOWS')}[{flow!r}]{step}"


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
    where = _where(name, None)
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{where} must be a dict with 'steps' (and 'trigger').")
    refuse_unknown_keys(where, spec, FLOW_KEYS)
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigurationError(f"{where} needs 'steps': a non-empty list of email steps.")
    parsed = []
    for index, step in enumerate(steps):
        at = _where(name, index)
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
    where = _where(flow.name, None)
    if flow.trigger is not None and flow.trigger not in TRIGGERS:
        raise ConfigurationError(
            f"{where} has unknown trigger {flow.trigger!r}; use one of {list(TRIGGERS)} or none."
        )
    if not flow.steps:
        raise ConfigurationError(f"{where} has no steps.")
    _check_rate_limit(flow.rate_limit, where)
    for index, step in enumerate(flow.steps):
        at = _where(flow.name, index)
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
                _PLAIN.compile_expression(step.when)
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


@lru_cache(maxsize=256)
def _expression(source: str) -> Callable[..., Any]:
    """A step's ``when``, compiled once per process."""
    return _PLAIN.compile_expression(source, undefined_to_none=False)


def _compile(source: str, name: str, at: str, *, html: bool) -> Any:
    try:
        return _template(source, html)
    except TemplateSyntaxError as exc:
        raise ConfigurationError(
            f"{at} '{name}': {exc.message} (line {exc.lineno}); fix the Jinja syntax."
        ) from exc


def _render(
    source: str, context: Mapping[str, Any], name: str, at: str, *, html: bool = False
) -> str:
    try:
        return str(_template(source, html).render(context))
    except SecurityError as exc:
        raise FlowError(f"{at} '{name}': refused by the sandbox ({exc}).") from exc
    except UndefinedError as exc:
        raise FlowError(f"{at} '{name}': {exc.message}; pass it in the context.") from exc
    except TemplateError as exc:
        raise FlowError(f"{at} '{name}': {exc}") from exc


def _render_model(value: Any, context: Mapping[str, Any], path: str, at: str) -> Any:
    if isinstance(value, str):
        return _render(value, context, path, at)
    if isinstance(value, Mapping):
        return {k: _render_model(v, context, f"{path}[{k!r}]", at) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_model(v, context, f"{path}[{i}]", at) for i, v in enumerate(value)]
    return value


def render_step(flow: Flow, index: int, context: Mapping[str, Any]) -> RenderedStep:
    """Render one step; raise :class:`FlowError` naming the flow, step and field."""
    step = flow.steps[index]
    at = _where(flow.name, index)
    if step.when is not None:
        try:
            go = _expression(step.when)(**context)
        except (SecurityError, UndefinedError, TemplateError) as exc:
            raise FlowError(f"{at} 'when': {exc}") from exc
        if not go:
            return RenderedStep(index, step.connector, skipped=True)
    raw_to = _render(step.to, context, "to", at)
    try:
        to = normalize_email(raw_to)
    except InvalidEmailError as exc:
        raise FlowError(
            f"{at} 'to' rendered to {raw_to!r}, which is not exactly one valid address."
        ) from exc
    message: dict[str, Any] = {"to": to}
    if step.template is not None:
        message["template"] = step.template
        message["model"] = _render_model(step.model or {}, context, "model", at)
    else:
        message["subject"] = _render(step.subject or "", context, "subject", at).strip()
        if step.text:
            message["text_body"] = _render(step.text, context, "text", at)
        if step.html:
            message["html_body"] = _render(step.html, context, "html", at, html=True)
    if step.tag is not None:
        message["tag"] = _render(step.tag, context, "tag", at)
    if step.metadata:
        message["metadata"] = {
            k: _render(str(v), context, f"metadata[{k!r}]", at) for k, v in step.metadata.items()
        }
    return RenderedStep(index, step.connector, skipped=False, to=to, message=message)


Sender = Callable[[RenderedStep], "str | None"]


def run_flow(flow: Flow, context: Mapping[str, Any], send: Sender) -> FlowResult:
    """Render and send each step in turn; ``send`` returns a MessageID, or ``None`` when the
    step was queued. A step that fails to render or to send fails alone: the next still run."""
    result = FlowResult(flow.name)
    for index in range(len(flow.steps)):
        try:
            step = render_step(flow, index, context)
        except FlowError as exc:
            result.steps.append(StepOutcome(index, "failed", error=exc))
            continue
        result.steps.append(_send_one(step, send))
    return result


def _send_one(step: RenderedStep, send: Sender) -> StepOutcome:
    if step.skipped:
        return StepOutcome(step.index, "skipped")
    try:
        message_id = send(step)
    except StepRateLimitedError as exc:
        return StepOutcome(step.index, "rate_limited", to=step.to, retry_after=exc.retry_after)
    except (PostmarkError, MessageValidationError) as exc:
        return StepOutcome(step.index, "failed", to=step.to, error=exc)
    status = "sent" if message_id else "queued"
    return StepOutcome(step.index, status, to=step.to, message_id=message_id)
