"""``flask postmark-auth ...`` through Flask's CLI runner."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from flask import Flask

from flask_postmark_auth import PostmarkAuth, PostmarkConnector
from flask_postmark_auth.cli import postmark_auth_cli
from flask_postmark_auth.testing import FakeClock, FakePostmark


def cli_app(fake: FakePostmark, clock: FakeClock | None = None, **config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="x",
        TESTING=True,
        POSTMARK_AUTH_SERVER_TOKEN=fake.server_token,
        POSTMARK_AUTH_FROM_EMAIL="Acme <login@acme.example>",
        POSTMARK_AUTH_API_URL=fake.url,
    )
    app.config.update({f"POSTMARK_AUTH_{k}": v for k, v in config.items()})
    PostmarkAuth(app, clock=clock)
    return app


def test_test_command_prints_the_panel_and_exits_0(fake_postmark: FakePostmark) -> None:
    result = cli_app(fake_postmark).test_cli_runner().invoke(postmark_auth_cli, ["test"])
    assert result.exit_code == 0, result.output
    assert "Test Results: connector 'default'" in result.output
    assert "All 3 checks passed." in result.output
    assert fake_postmark.server_token not in result.output


def test_test_command_with_send_to_sends_a_real_test_email(fake_postmark: FakePostmark) -> None:
    runner = cli_app(fake_postmark).test_cli_runner()
    result = runner.invoke(postmark_auth_cli, ["test", "--send-to", "me@example.com"])
    assert result.exit_code == 0, result.output
    [message] = fake_postmark.messages
    assert message.to == "me@example.com"
    assert message.message_id in result.output


def test_test_command_exits_1_when_a_check_fails(fake_postmark: FakePostmark) -> None:
    app = cli_app(fake_postmark, MESSAGE_STREAM="missing-stream")
    result = app.test_cli_runner().invoke(postmark_auth_cli, ["test"])
    assert result.exit_code == 1
    assert "FAIL" in result.output
    assert "does not exist" in result.output


def test_test_command_exits_1_on_a_bad_token(fake_postmark: FakePostmark) -> None:
    app = cli_app(fake_postmark, SERVER_TOKEN="wrong-token-123456789")
    result = app.test_cli_runner().invoke(postmark_auth_cli, ["test"])
    assert result.exit_code == 1
    assert "wrong-token-123456789" not in result.output


def test_test_command_names_a_connector(fake_postmark: FakePostmark) -> None:
    other = PostmarkConnector(
        "billing",
        server_token=fake_postmark.server_token,
        from_email="billing@acme.example",
        api_url=fake_postmark.url,
    )
    app = cli_app(fake_postmark, CONNECTORS={"billing": other})
    runner = app.test_cli_runner()
    assert runner.invoke(postmark_auth_cli, ["test", "billing"]).exit_code == 0
    unknown = runner.invoke(postmark_auth_cli, ["test", "nope"])
    assert unknown.exit_code == 2
    assert "billing" in unknown.output


def test_connectors_lists_them_with_masked_tokens(fake_postmark: FakePostmark) -> None:
    app = cli_app(
        fake_postmark,
        CONNECTORS={
            "marketing": {
                "server_token": "marketing-token-abcdef",
                "from_email": "news@acme.example",
                "message_stream": "broadcast",
                "description": "Newsletters",
            }
        },
    )
    result = app.test_cli_runner().invoke(postmark_auth_cli, ["connectors"])
    assert result.exit_code == 0
    assert "default: from Acme <login@acme.example>, stream 'outbound'" in result.output
    assert "marketing: from news@acme.example, stream 'broadcast', token ****cdef" in result.output
    assert "Newsletters" in result.output
    assert "marketing-token-abcdef" not in result.output
    assert fake_postmark.server_token not in result.output


def test_purge_drops_expired_entries(fake_postmark: FakePostmark, clock: FakeClock) -> None:
    app = cli_app(fake_postmark, clock)
    store = app.extensions["postmark_auth"].store
    store.set("short", "1", 10)
    store.set("long", "1", 1000)
    clock.advance(11)
    result = app.test_cli_runner().invoke(postmark_auth_cli, ["purge"])
    assert result.exit_code == 0
    assert "Dropped 1 expired entries." in result.output
    assert store.get("long") == "1"


@pytest.mark.parametrize("command", ["test", "connectors", "purge", "check"])
def test_commands_need_the_extension(command: str) -> None:
    result = Flask(__name__).test_cli_runner().invoke(postmark_auth_cli, [command])
    assert result.exit_code == 2
    assert "has no PostmarkAuth: call auth.init_app(app)" in result.output
    assert "Traceback" not in result.output


def test_the_command_comes_from_the_entry_point_only(tmp_path: Path) -> None:
    """``flask`` finds ``postmark-auth`` through the ``flask.commands`` entry point; the
    extension adds nothing to ``app.cli`` (no command registered twice), and an app
    without the extension gets a usage error, not a traceback."""
    [entry] = [e for e in entry_points(group="flask.commands") if e.name == "postmark-auth"]
    assert entry.value == "flask_postmark_auth.cli:postmark_auth_cli"
    app = Flask(__name__)
    app.config.update(SECRET_KEY="x", TESTING=True)
    PostmarkAuth(app)
    assert "postmark-auth" not in app.cli.commands
    (tmp_path / "bare.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    bare = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "bare", "postmark-auth", "connectors"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bare.returncode == 2, bare.stderr
    assert "has no PostmarkAuth: call auth.init_app(app)" in bare.stderr
    assert "Traceback" not in bare.stderr
