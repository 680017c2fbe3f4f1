"""The connector over real HTTP against FakePostmark on loopback: retries through dropped
and refused connections, timeouts, keep-alive, batches and the Test action."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from flask_postmark_auth import (
    InactiveRecipientError,
    InvalidTokenError,
    PostmarkConnector,
    ServerError,
    TransportError,
)
from flask_postmark_auth.testing import FakePostmark


def connector_for(fake: FakePostmark, **kwargs: Any) -> PostmarkConnector:
    options: dict[str, Any] = {
        "server_token": fake.server_token,
        "from_email": "Acme <login@acme.example>",
        "api_url": fake.url,
        "backoff": 0,
    }
    options.update(kwargs)
    return PostmarkConnector("default", **options)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_send_reaches_postmark_and_is_recorded(fake_postmark: FakePostmark) -> None:
    connector = connector_for(fake_postmark)
    result = connector.send("a@example.com", "Hi", text_body="hello", tag="otp")
    [message] = fake_postmark.messages
    assert message.message_id == result.message_id
    assert (message.to, message.subject, message.tag) == ("a@example.com", "Hi", "otp")
    assert message.message_stream == "outbound"
    connector.close()


def test_sends_reuse_one_kept_alive_connection(fake_postmark: FakePostmark) -> None:
    connector = connector_for(fake_postmark)
    for _ in range(5):
        connector.send("a@example.com", "Hi", text_body="hello")
    assert fake_postmark.connection_count == 1
    connector.close()


def test_dropped_connection_is_retried(fake_postmark: FakePostmark) -> None:
    fake_postmark.drop_connection(times=2, path="/email")
    connector = connector_for(fake_postmark, max_retries=3)
    connector.send("a@example.com", "Hi", text_body="hello")
    assert len(fake_postmark.messages) == 1
    connector.close()


def test_dropped_connections_beyond_retries_are_a_transport_error(
    fake_postmark: FakePostmark,
) -> None:
    fake_postmark.drop_connection(times=5, path="/email")
    connector = connector_for(fake_postmark, max_retries=2)
    with pytest.raises(TransportError):
        connector.send("a@example.com", "Hi", text_body="hello")
    assert len([r for r in fake_postmark.requests if r.path == "/email"]) == 3
    connector.close()


def test_refused_connection_is_a_transport_error() -> None:
    connector = PostmarkConnector(
        "default",
        server_token="t",
        from_email="a@acme.example",
        api_url=f"http://127.0.0.1:{closed_port()}",
        backoff=0,
    )
    with pytest.raises(TransportError) as info:
        connector.send("a@example.com", "Hi", text_body="hello")
    assert info.value.status is None
    connector.close()


def test_read_timeout_is_bounded_by_timeout_and_retries(fake_postmark: FakePostmark) -> None:
    fake_postmark.slow(1.0)
    connector = connector_for(fake_postmark, timeout=(1.0, 0.2), max_retries=1)
    started = time.monotonic()
    with pytest.raises(TransportError):
        connector.send("a@example.com", "Hi", text_body="hello")
    elapsed = time.monotonic() - started
    assert elapsed < 2 * 0.2 + 0.5  # two attempts of 0.2 s, plus slack; never the full 1 s each
    connector.close()


def test_transient_503_then_success(fake_postmark: FakePostmark) -> None:
    fake_postmark.fail(503, times=2, path="/email")
    connector = connector_for(fake_postmark)
    assert connector.send("a@example.com", "Hi", text_body="hello").message_id
    assert len(fake_postmark.messages) == 1
    connector.close()


def test_persistent_503_is_a_server_error_after_all_attempts(fake_postmark: FakePostmark) -> None:
    fake_postmark.fail(503, times=10, path="/email")
    connector = connector_for(fake_postmark, max_retries=3)
    with pytest.raises(ServerError):
        connector.send("a@example.com", "Hi", text_body="hello")
    assert len([r for r in fake_postmark.requests if r.path == "/email"]) == 4
    connector.close()


def test_retries_wait_by_capped_jittered_backoff(
    fake_postmark: FakePostmark, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", slept.append)
    fake_postmark.fail(503, times=10, path="/email")
    connector = connector_for(fake_postmark, max_retries=3, backoff=0.2)
    with pytest.raises(ServerError):
        connector.send("a@example.com", "Hi", text_body="hello")
    assert len(slept) == 3
    for attempt, wait in enumerate(slept, start=1):
        ceiling = 0.2 * 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling
    connector.close()


def test_waf_html_page_is_a_clean_transport_error(fake_postmark: FakePostmark) -> None:
    fake_postmark.fail_html(403, times=1)
    connector = connector_for(fake_postmark)
    with pytest.raises(TransportError) as info:
        connector.send("a@example.com", "Hi", text_body="hello")
    assert info.value.status == 403
    assert "<html" not in str(info.value)
    connector.close()


def test_bad_token_and_inactive_recipient(fake_postmark: FakePostmark) -> None:
    fake_postmark.inactive_recipients.add("gone@example.com")
    with pytest.raises(InvalidTokenError):
        connector_for(fake_postmark, server_token="wrong").send(
            "a@example.com", "s", text_body="b"
        )
    with pytest.raises(InactiveRecipientError):
        connector_for(fake_postmark).send("gone@example.com", "s", text_body="b")


def test_batch_of_1001_goes_in_three_requests_with_item_errors_in_place(
    fake_postmark: FakePostmark,
) -> None:
    fake_postmark.inactive_recipients.add("u7@example.com")
    connector = connector_for(fake_postmark)
    results = connector.send_batch(
        [{"to": f"u{i}@example.com", "subject": "s", "text_body": "b"} for i in range(1001)]
    )
    assert len([r for r in fake_postmark.requests if r.path == "/email/batch"]) == 3
    assert isinstance(results[7], InactiveRecipientError)
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1000
    assert len(fake_postmark.messages) == 1000
    connector.close()


def test_template_batch_goes_to_its_endpoint(fake_postmark: FakePostmark) -> None:
    connector = connector_for(fake_postmark)
    results = connector.send_batch(
        [{"to": "a@example.com", "template": "welcome", "model": {"name": "Ann"}}]
    )
    assert not isinstance(results[0], Exception)
    [message] = fake_postmark.messages
    assert message.endpoint == "/email/batchWithTemplates"
    assert message.template == "welcome"
    connector.close()


def test_test_action_against_fake_postmark(fake_postmark: FakePostmark) -> None:
    connector = connector_for(fake_postmark)
    report = connector.test(send_to="me@example.com")
    assert report.ok, str(report)
    assert fake_postmark.messages[0].to == "me@example.com"
    bad = connector_for(fake_postmark, message_stream="nope").test()
    assert not bad.ok
    assert "does not exist" in str(bad)
    connector.close()
