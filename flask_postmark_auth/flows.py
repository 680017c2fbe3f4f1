"""Flows: named lists of email steps whose recipient, subject and body are Jinja strings
rendered in a sandbox from earlier data (``{{ form.email }}``, ``{{ user.email }}``).

Declared as data (``POSTMARK_AUTH_FLOWS``) or in Python (:class:`Flow`, :class:`EmailStep`),
checked when the app starts, and run by ``auth.run_flow(name, **context)`` or by a trigger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from flask import Flask
from jinja2 import StrictUndefined, Template, TemplateError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from . import signals
from .addresses import normalize_email, scrub_addresses
from .connector import SendResult
from .delivery import SendJob
from .errors import (
    DeliveryFailedError,
    InvalidEmailError,
    MessageValidationError,
    PostmarkError,
)
from .settings import Settings, key
from .store import Store
from .throttles import HOUR, ceil_seconds, ip_bucket, mailbox_key

log = logging.getLogger("flask_postmark_auth")

#: A flow's ``rate_limit``: ``"default"`` (``FLOW_EMAILS_PER_HOUR`` and
#: ``FLOW_IP_REQUESTS_PER_HOUR``), a dict overriding either, or ``None`` (no limit).
RateLimit = Mapping[str, "int | None"] | Literal["default"] | None
#: What happened to a flow step (see :class:`StepOutcome`).
StepStatus = Literal["sent", "queued", "skipped", "rate_limited", "failed"]


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
    status: StepStatus
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


PLAIN_ENV, HTML_ENV = _environments()


@lru_cache(maxsize=1024)
def compiled_template(source: str, html: bool) -> Template:
    """``source`` compiled once per process (``init_app`` compiles every flow's strings
    when it checks them, so runs never pay for it)."""
    return (HTML_ENV if html else PLAIN_ENV).from_string(source)


@lru_cache(maxsize=256)
def compiled_expression(source: str) -> Callable[..., Any]:
    """A step's ``when``, compiled once per process."""
    return PLAIN_ENV.compile_expression(source, undefined_to_none=False)


def step_location(flow: str, index: int | None) -> str:
    step = f" step {index + 1}" if index is not None else ""
    return f"{key('FLOWS')}[{flow!r}]{step}"


def _render(
    source: str, context: Mapping[str, Any], name: str, at: str, *, html: bool = False
) -> str:
    try:
        return str(compiled_template(source, html).render(context))
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
    at = step_location(flow.name, index)
    if step.when is not None:
        try:
            go = compiled_expression(step.when)(**context)
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
    except (PostmarkError, MessageValidationError, DeliveryFailedError) as exc:
        # DeliveryFailedError: a task queue's broker refused the step.
        return StepOutcome(step.index, "failed", to=step.to, error=exc)
    status: StepStatus = "sent" if message_id else "queued"
    return StepOutcome(step.index, status, to=step.to, message_id=message_id)


class FlowRunner:
    """Runs one app's flows through its dispatcher: on demand (rate-limited when a request
    asked) or by a trigger."""

    def __init__(
        self,
        *,
        app: Flask,
        settings: Settings,
        store: Store,
        flows: Mapping[str, Flow],
        deliver: Callable[[SendJob], SendResult | None],
    ) -> None:
        self.app = app
        self.settings = settings
        self.store = store
        self.flows = flows
        self._deliver = deliver

    def limits(self, flow: Flow) -> tuple[int | None, int | None]:
        """``(per_recipient, per_ip)`` hourly limits of ``flow`` run from a request;
        ``None`` for no limit."""
        if flow.rate_limit is None:
            return None, None
        own = {} if flow.rate_limit == "default" else dict(flow.rate_limit)
        return (
            own.get("per_recipient", self.settings.flow_emails_per_hour),
            own.get("per_ip", self.settings.flow_ip_requests_per_hour),
        )

    def run(
        self, flow: Flow, context: Mapping[str, Any], *, client_ip: str | None = None
    ) -> FlowResult:
        """Run ``flow`` through ``DELIVERY``; fires ``flow_finished``.

        ``client_ip`` is given for a run asked for by a request: the run then counts
        against the flow's per-IP limit and each message against its per-recipient limit
        (``FLOW_*_PER_HOUR`` or the flow's own ``rate_limit``), so a public form that runs a
        flow cannot be used to mail anyone anything. Over a limit, steps are
        ``rate_limited`` and the result's ``retry_after`` says when to try again.
        """
        per_recipient, per_ip = self.limits(flow) if client_ip is not None else (None, None)
        if per_ip is not None and client_ip is not None:
            bucket = ip_bucket(client_ip) if client_ip else "unknown"
            count, left = self.store.hit(f"flow-ip:{flow.name}:{bucket}", HOUR)
            if count > per_ip:
                log.warning("flow %r: per-IP limit reached", flow.name)
                result = FlowResult.rate_limited(flow, ceil_seconds(left))
                signals.flow_finished.send(self.app, flow=flow.name, result=result)
                return result

        def send(step: RenderedStep) -> str | None:
            to = step.to or ""
            if per_recipient is not None:
                count, left = self.store.hit(f"flow-to:{flow.name}:{mailbox_key(to)}", HOUR)
                if count > per_recipient:
                    raise StepRateLimitedError(ceil_seconds(left))
            job = SendJob(
                connector=step.connector,
                purpose=f"flow {flow.name!r} step {step.index + 1}",
                recipient=to,
                message=dict(step.message),
            )
            sent = self._deliver(job)
            return None if sent is None else sent.message_id

        result = run_flow(flow, context, send)
        for outcome in result.steps:
            if outcome.status == "failed":
                log.warning(
                    "flow %r step %d failed: %s",
                    flow.name,
                    outcome.index + 1,
                    scrub_addresses(str(outcome.error)),
                )
            elif outcome.status == "rate_limited":
                log.warning(
                    "flow %r step %d: per-recipient limit reached", flow.name, outcome.index + 1
                )
        signals.flow_finished.send(self.app, flow=flow.name, result=result)
        return result

    def run_triggered(self, trigger: str, context: Mapping[str, Any]) -> None:
        """Run the flows of ``trigger``; a failing flow is logged, never raised. (Their
        mail goes to the person signing in, whose sign-in emails are throttled already.)"""
        for flow in self.flows.values():
            if flow.trigger != trigger:
                continue
            try:
                self.run(flow, context)
            except Exception:
                log.exception("flow %r (trigger %s) failed", flow.name, trigger)
