"""``flask postmark-auth ...``: check connectors and the deployment, run flows and tidy
the store. Registered through the ``flask.commands`` entry point only."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .checklist import run_checks
from .flows import FlowError, RenderedStep, render_step
from .state import EXTENSION_KEY, state


@click.group("postmark-auth", cls=AppGroup)
@with_appcontext
def postmark_auth_cli() -> None:
    """Passwordless sign-in through Postmark."""
    if EXTENSION_KEY not in current_app.extensions:
        raise click.UsageError(
            f"The app {current_app.name!r} has no PostmarkAuth: call auth.init_app(app) "
            "in create_app(), or point --app at the app that does."
        )


@postmark_auth_cli.command("test")
@click.argument("connector", default="default")
@click.option("--send-to", metavar="EMAIL", help="Also send a real test email to this address.")
def test_command(connector: str, send_to: str | None) -> None:
    """Check a connector's token, stream and sender; print the Test Results panel.

    Exits 0 only when every check passed.
    """
    st = state()
    connectors = st.connectors
    if connector not in connectors:
        raise click.UsageError(
            f"No connector named {connector!r}; configured: {', '.join(sorted(connectors))}."
        )
    if st.outbox is not None:
        click.echo("Note: the dev outbox is on; a test email is recorded there, not sent.\n")
    report = connectors[connector].test(send_to=send_to)
    click.echo(str(report))
    if not report.ok:
        raise SystemExit(1)


@postmark_auth_cli.command("connectors")
def connectors_command() -> None:
    """List the configured connectors (tokens masked)."""
    st = state()
    for name, connector in sorted(st.connectors.items()):
        mode = "  [dev outbox: recorded, not sent]" if connector.interceptor is not None else ""
        click.echo(
            f"{name}: from {connector.from_email}, stream {connector.message_stream!r}, "
            f"token {connector.masked_token}, {connector.api_url}{mode}"
        )
        if connector.description:
            click.echo(f"    {connector.description}")


@postmark_auth_cli.command("check")
def check_command() -> None:
    """Print the deployment checklist (canonical URL, SECRET_KEY, cookies, delivery, store,
    dev outbox, proxies). Exits 1 when any line fails."""
    checks = run_checks(current_app, state().settings)
    click.echo("Deployment checklist\n")
    for line in checks:
        click.echo(str(line))
    failed = sum(line.verdict == "FAIL" for line in checks)
    warned = sum(line.verdict == "WARN" for line in checks)
    click.echo(f"\n{failed} failed, {warned} warnings, {len(checks) - failed - warned} passed.")
    if failed:
        raise SystemExit(1)


@postmark_auth_cli.command("purge")
def purge_command() -> None:
    """Drop expired entries from the sign-in store (codes, links, counters)."""
    dropped = state().store.purge()
    click.echo(f"Dropped {dropped} expired entries.")


@postmark_auth_cli.group("flows")
def flows_group() -> None:
    """List and run flows."""


@flows_group.command("list")
def flows_list_command() -> None:
    """List the flows with their triggers and steps."""
    flows = state().service.flows
    if not flows:
        click.echo("No flows configured (POSTMARK_AUTH_FLOWS).")
    for name, flow in sorted(flows.items()):
        trigger = f"on {flow.trigger}" if flow.trigger else "run on demand"
        count = len(flow.steps)
        click.echo(f"{name}: {trigger}, {count} step{'s' if count != 1 else ''}")
        if flow.description:
            click.echo(f"    {flow.description}")


@flows_group.command("run")
@click.argument("name")
@click.option("--context", "context_json", default="{}", help="The context as a JSON object.")
@click.option("--dry-run", is_flag=True, help="Render and print every message; send nothing.")
def flows_run_command(name: str, context_json: str, dry_run: bool) -> None:
    """Run flow NAME with a JSON context, or render it only with --dry-run."""
    service = state().service
    if name not in service.flows:
        raise click.UsageError(f"No flow named {name!r}; configured: {sorted(service.flows)}.")
    try:
        context = json.loads(context_json)
    except ValueError as exc:
        raise click.UsageError(f"--context is not valid JSON: {exc}") from exc
    if not isinstance(context, dict):
        raise click.UsageError("--context must be a JSON object, like '{\"form\": {...}}'.")
    flow = service.flows[name]
    if dry_run:
        failed = False
        for index in range(len(flow.steps)):
            try:
                step = render_step(flow, index, context)
            except FlowError as exc:
                click.echo(f"Step {index + 1}: cannot render: {exc}")
                failed = True
                continue
            click.echo(_describe(step))
        raise SystemExit(1 if failed else 0)
    result = service.run_flow(flow, context)
    for outcome in result.steps:
        detail = {
            "sent": f"sent to {outcome.to}, MessageID {outcome.message_id}",
            "queued": f"queued for {outcome.to}",
            "skipped": "skipped ('when' was false)",
            "failed": f"failed: {outcome.error}",
        }[outcome.status]
        click.echo(f"Step {outcome.index + 1}: {detail}")
    raise SystemExit(0 if result.ok else 1)


def _describe(step: RenderedStep) -> str:
    if step.skipped:
        return f"Step {step.index + 1}: skipped ('when' is false)"
    message = step.message
    lines = [f"Step {step.index + 1}: via connector {step.connector!r}", f"  To: {step.to}"]
    if "template" in message:
        lines.append(f"  Template: {message['template']}")
        lines.append(f"  Model: {json.dumps(message['model'], indent=2, default=str)}")
    else:
        lines.append(f"  Subject: {message['subject']}")
        if "text_body" in message:
            lines.append("  Text:\n" + _indent(message["text_body"]))
        if "html_body" in message:
            lines.append("  HTML:\n" + _indent(message["html_body"]))
    for field in ("tag", "metadata"):
        if field in message:
            lines.append(f"  {field.capitalize()}: {message[field]}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
