"""The connector's **Test** action: token, Message Stream and From address checked against
Postmark, and a real test email on request, reported as a printable Test Results panel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from .errors import MessageValidationError, PostmarkError

if TYPE_CHECKING:
    from .connector import PostmarkConnector


@dataclass
class TestReport:
    """What :meth:`PostmarkConnector.test` found; ``str()`` gives the Test Results panel.

    ``connector`` is the name of the connector tested; ``checks`` the checks in the order
    they ran, each ``(name, passed, detail)``: ``"Server API Token"``, ``"Message stream"``,
    ``"From address"`` and, when a test email was asked for, ``"Test email"``.
    """

    __test__ = False  # not a pytest test class

    connector: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed (False for a report with no checks)."""
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> None:
        """Record the check ``name`` as the last one: whether it ``passed``, and ``detail``,
        one line saying what was found or why it failed."""
        self.checks.append((name, passed, detail))

    def __str__(self) -> str:
        width = max((len(name) for name, _, _ in self.checks), default=0)
        lines = [f"Test Results: connector {self.connector!r}", ""]
        for name, passed, detail in self.checks:
            lines.append(f"  {'PASS' if passed else 'FAIL'}  {name.ljust(width)}  {detail}")
        failed = sum(1 for _, passed, _ in self.checks if not passed)
        lines.append("")
        if failed:
            lines.append(f"{failed} of {len(self.checks)} checks failed.")
        else:
            lines.append(f"All {len(self.checks)} checks passed.")
        return "\n".join(lines)


def run_test(connector: PostmarkConnector, send_to: str | None = None) -> TestReport:
    """What :meth:`PostmarkConnector.test` does."""
    report = TestReport(connector.name)
    token_ok = False
    try:
        server = connector._request("GET", "/server")
        kind = server.get("DeliveryType", "Live") if isinstance(server, dict) else "Live"
        name = server.get("Name", "?") if isinstance(server, dict) else "?"
        report.add("Server API Token", True, f"valid for server {name!r} ({kind})")
        token_ok = True
    except PostmarkError as exc:
        report.add("Server API Token", False, connector._explain(exc))

    stream = connector.message_stream
    if not token_ok:
        report.add("Message stream", False, f"{stream!r} not checked: no valid token")
    else:
        try:
            info = connector._request("GET", f"/message-streams/{quote(stream, safe='')}")
            kind = info.get("MessageStreamType") if isinstance(info, dict) else None
            archived = info.get("ArchivedAt") if isinstance(info, dict) else None
            if archived:
                report.add("Message stream", False, f"{stream!r} is archived ({archived})")
            elif kind != "Transactional":
                report.add(
                    "Message stream",
                    False,
                    f"{stream!r} is {kind}; sign-in mail needs a Transactional stream",
                )
            else:
                report.add("Message stream", True, f"{stream!r} exists, Transactional")
        except PostmarkError as exc:
            detail = (
                f"{stream!r} does not exist on this server"
                if exc.error_code == 1226
                else connector._explain(exc)
            )
            report.add("Message stream", False, detail)

    report.add("From address", True, f"{connector.from_email} parses")

    if send_to is not None:
        if not report.ok:
            report.add("Test email", False, "not sent: an earlier check failed")
        else:
            try:
                result = connector.send(
                    send_to,
                    f"Test email from connector {connector.name!r}",
                    text_body=(
                        f"This is a test email from the Postmark connector {connector.name!r}.\n"
                        "If you can read it, the connector can deliver sign-in mail.\n"
                    ),
                    tag="connector-test",
                    track_opens=False,
                    track_links="None",
                )
                report.add("Test email", True, f"sent, MessageID {result.message_id}")
            except (PostmarkError, MessageValidationError) as exc:
                report.add("Test email", False, f"not sent: {connector._explain(exc)}")
    return report
