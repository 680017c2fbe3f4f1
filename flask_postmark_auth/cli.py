"""``flask postmark-auth ...``: check connectors from the command line."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from .extension import state

postmark_auth_cli = AppGroup("postmark-auth", help="Passwordless sign-in through Postmark.")


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


@postmark_auth_cli.command("purge")
def purge_command() -> None:
    """Drop expired entries from the sign-in store (codes, links, counters)."""
    dropped = state().store.purge()
    click.echo(f"Dropped {dropped} expired entries.")
