"""The Postmark connector against mocked HTTP (responses): payloads, validation, errors,
retries, and the Test action."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from flask_postmark_auth import (
    InactiveRecipientError,
    InvalidRequestError,
    InvalidTokenError,
    MessageStreamError,
    MessageValidationError,
    PostmarkConnector,
    PostmarkError,
    RateLimitedError,
    SenderNotConfirmedError,
    ServerError,
    TransportError,
)
from flask_postmark_auth.connector_session import BACKOFF_CAP, _Retry
from tests.postmark_schema import ENDPOINT_DEFINITIONS, validate

API = "https://api.postmarkapp.com"
TOKEN = "server-token-0123456789abcdef"


def ok_answer(
    to: str = "a@example.com", message_id: str = "b7bc2f4a-e38e-4336-af7d"
) -> dict[str, Any]:
    return {
        "To": to,
        "SubmittedAt": "2026-11-24T12:01:05.1794748-05:00",
        "MessageID": message_id,
        "ErrorCode": 0,
        "Message": "OK",
    }


def make(**kwargs: Any) -> PostmarkConnector:
    options: dict[str, Any] = {
        "server_token": TOKEN,
        "from_email": "Acme <login@acme.example>",
        "backoff": 0,
    }
    options.update(kwargs)
    return PostmarkConnector("default", **options)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def sent_bodies(mocked: responses.RequestsMock) -> list[tuple[str, Any]]:
    return [
        (call.request.path_url, json.loads(call.request.body))
        for call in mocked.calls
        if call.request.body
    ]


def assert_bodies_match_postmark(mocked: responses.RequestsMock) -> None:
    bodies = sent_bodies(mocked)
    assert bodies
    for path, body in bodies:
        validate(ENDPOINT_DEFINITIONS[path], body)


# -- payloads --------------------------------------------------------------------------------


def test_send_posts_postmark_json_with_auth_headers(mocked: responses.RequestsMock) -> None:
    mocked.post(
        f"{API}/email",
        json=ok_answer(),
        match=[
            matchers.header_matcher(
                {
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                    "X-Postmark-Server-Token": TOKEN,
                }
            )
        ],
    )
    result = make(message_stream="signin").send(
        "a@example.com",
        "Your code",
        text_body="123456",
        html_body="<p>123456</p>",
        tag="otp",
        metadata={"purpose": "sign-in"},
        reply_to="help@acme.example",
        headers={"X-Entity-Ref-ID": "42"},
        track_opens=False,
        track_links="None",
    )
    assert result.message_id == "b7bc2f4a-e38e-4336-af7d"
    assert result.to == "a@example.com"
    assert result.submitted_at is not None
    assert result.submitted_at.year == 2026
    assert result.submitted_at.utcoffset() is not None
    [(path, body)] = sent_bodies(mocked)
    assert path == "/email"
    assert body == {
        "From": "Acme <login@acme.example>",
        "To": "a@example.com",
        "Subject": "Your code",
        "TextBody": "123456",
        "HtmlBody": "<p>123456</p>",
        "Tag": "otp",
        "Metadata": {"purpose": "sign-in"},
        "ReplyTo": "help@acme.example",
        "Headers": [{"Name": "X-Entity-Ref-ID", "Value": "42"}],
        "TrackOpens": False,
        "TrackLinks": "None",
        "MessageStream": "signin",
    }
    assert_bodies_match_postmark(mocked)


def test_send_to_a_list_joins_recipients(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{API}/email", json=ok_answer())
    make().send(["a@example.com", "B <b@example.com>"], "Hi", text_body="x")
    [(_, body)] = sent_bodies(mocked)
    assert body["To"] == "a@example.com, B <b@example.com>"
    assert_bodies_match_postmark(mocked)


@pytest.mark.parametrize(
    ("template", "key"), [("welcome", "TemplateAlias"), (1234567, "TemplateId")]
)
def test_send_template_by_alias_or_id(
    mocked: responses.RequestsMock, template: str | int, key: str
) -> None:
    mocked.post(f"{API}/email/withTemplate", json=ok_answer())
    make().send_template("a@example.com", template, {"name": "Ann"}, tag="welcome")
    [(path, body)] = sent_bodies(mocked)
    assert path == "/email/withTemplate"
    assert body[key] == template
    assert body["TemplateModel"] == {"name": "Ann"}
    assert "Subject" not in body
    assert_bodies_match_postmark(mocked)


def test_track_links_accepts_booleans(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{API}/email", json=ok_answer())
    make().send("a@example.com", "s", text_body="x", track_links=False)
    make().send("a@example.com", "s", text_body="x", track_links=True)
    assert [b["TrackLinks"] for _, b in sent_bodies(mocked)] == ["None", "HtmlAndText"]


# -- batches ---------------------------------------------------------------------------------


def test_batch_splits_into_chunks_of_500_and_keeps_order(mocked: responses.RequestsMock) -> None:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert request.body is not None
        items = json.loads(request.body)
        return 200, {}, json.dumps([ok_answer(m["To"], f"id-{m['To']}") for m in items])

    mocked.add_callback(responses.POST, f"{API}/email/batch", callback=answer)
    messages = [
        {"to": f"user{i}@example.com", "subject": "s", "text_body": "b"} for i in range(1001)
    ]
    results = make().send_batch(messages)
    assert [len(body) for _, body in sent_bodies(mocked)] == [500, 500, 1]
    assert len(results) == 1001
    assert all(not isinstance(r, PostmarkError) for r in results)
    assert [r.to for r in results if not isinstance(r, PostmarkError)] == [
        m["to"] for m in messages
    ]
    assert_bodies_match_postmark(mocked)


def test_batch_with_templates_uses_its_endpoint_and_slots_results(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(f"{API}/email/batch", json=[ok_answer("p@example.com", "plain")])
    mocked.post(
        f"{API}/email/batchWithTemplates",
        json=[
            ok_answer("t1@example.com", "t1"),
            {
                "ErrorCode": 406,
                "Message": "You tried to send to a recipient that has been marked as inactive.",
                "To": "t2@example.com",
            },
        ],
    )
    results = make().send_batch(
        [
            {"to": "t1@example.com", "template": "welcome", "model": {"a": 1}},
            {"to": "p@example.com", "subject": "s", "text_body": "b"},
            {"to": "t2@example.com", "template": 77, "model": {}},
        ]
    )
    assert [type(r).__name__ for r in results] == [
        "SendResult",
        "SendResult",
        "InactiveRecipientError",
    ]
    assert results[0].message_id == "t1"  # type: ignore[union-attr]
    assert results[1].message_id == "plain"  # type: ignore[union-attr]
    paths = [path for path, _ in sent_bodies(mocked)]
    assert sorted(paths) == ["/email/batch", "/email/batchWithTemplates"]
    assert_bodies_match_postmark(mocked)


def test_batch_validates_every_item_before_any_request(mocked: responses.RequestsMock) -> None:
    good = {"to": "a@example.com", "subject": "s", "text_body": "b"}
    bad = {"to": "a@example.com, b@example.com", "subject": "s", "text_body": "b"}
    with pytest.raises(MessageValidationError, match=r"messages\[2\]"):
        make().send_batch([good, good, bad])
    assert len(mocked.calls) == 0


def test_batch_refuses_unknown_keys(mocked: responses.RequestsMock) -> None:
    with pytest.raises(MessageValidationError, match=r"messages\[0\].*textbody"):
        make().send_batch([{"to": "a@example.com", "subject": "s", "textbody": "b"}])
    assert len(mocked.calls) == 0


def test_batch_whole_request_failure_fills_its_slots_without_retrying_4xx(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(f"{API}/email/batch", status=401, json={"ErrorCode": 10, "Message": "Bad token."})
    results = make().send_batch(
        [{"to": f"u{i}@example.com", "subject": "s", "text_body": "b"} for i in range(3)]
    )
    assert all(isinstance(r, InvalidTokenError) for r in results)
    assert len(mocked.calls) == 1


def test_batch_item_errors_are_not_retried(mocked: responses.RequestsMock) -> None:
    mocked.post(
        f"{API}/email/batch",
        json=[{"ErrorCode": 300, "Message": "Invalid 'To' address.", "To": "x@example.com"}],
    )
    [result] = make(max_retries=3).send_batch(
        [{"to": "x@example.com", "subject": "s", "text_body": "b"}]
    )
    assert isinstance(result, InvalidRequestError)
    assert result.recipient_error
    assert len(mocked.calls) == 1


# -- validation before any request ----------------------------------------------------------

BAD_MESSAGES: list[tuple[str, dict[str, Any]]] = [
    ("two addresses in one string", {"to": "a@example.com, b@example.com"}),
    ("semicolon list", {"to": "a@example.com; b@example.com"}),
    ("CRLF in to", {"to": "a@example.com\r\nBcc: x@evil.example"}),
    ("LF in subject", {"subject": "Hi\nBcc: x@evil.example"}),
    ("CR in tag", {"tag": "otp\rX"}),
    ("CRLF in reply_to", {"reply_to": "a@example.com\r\nX: y"}),
    ("CRLF in header value", {"headers": {"X-A": "1\r\nBcc: x@evil.example"}}),
    ("bad header name", {"headers": {"X A:": "1"}}),
    ("LF in metadata", {"metadata": {"k": "v\nw"}}),
    ("51 recipients", {"to": [f"u{i}@example.com" for i in range(51)]}),
    ("empty list", {"to": []}),
    ("not an address", {"to": "not-an-address"}),
    ("no body", {"text_body": None, "html_body": None}),
    ("empty body", {"text_body": ""}),
    ("subject too long", {"subject": "x" * 2001}),
    ("11 metadata keys", {"metadata": {f"k{i}": "v" for i in range(11)}}),
    ("metadata key too long", {"metadata": {"k" * 21: "v"}}),
    ("metadata value too long", {"metadata": {"k": "v" * 81}}),
    ("metadata value not a string", {"metadata": {"k": 1}}),
    ("two tags", {"tag": ["a", "b"]}),
    ("tag too long", {"tag": "t" * 1001}),
    ("unknown TrackLinks", {"track_links": "Always"}),
    ("TrackOpens not a bool", {"track_opens": "yes"}),
]


@pytest.mark.parametrize(("case", "change"), BAD_MESSAGES, ids=[c for c, _ in BAD_MESSAGES])
def test_invalid_messages_are_refused_before_any_request(
    mocked: responses.RequestsMock, case: str, change: dict[str, Any]
) -> None:
    mocked.post(f"{API}/email", json=ok_answer())
    message: dict[str, Any] = {"to": "a@example.com", "subject": "s", "text_body": "b"}
    message.update(change)
    to = message.pop("to")
    subject = message.pop("subject")
    with pytest.raises(MessageValidationError) as info:
        make().send(to, subject, **message)
    assert isinstance(info.value, ValueError)
    assert len(mocked.calls) == 0


def test_limits_themselves_are_accepted(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{API}/email", json=ok_answer())
    make().send(
        [f"u{i}@example.com" for i in range(50)],
        "x" * 2000,
        text_body="b",
        metadata={f"k{i}{'x' * 17}"[:20]: "v" * 80 for i in range(10)},
        tag="t" * 1000,
    )
    assert len(mocked.calls) == 1
    assert_bodies_match_postmark(mocked)


def test_template_send_refuses_a_subject_or_missing_model(mocked: responses.RequestsMock) -> None:
    connector = make()
    with pytest.raises(MessageValidationError):
        connector.send_template("a@example.com", "welcome", None)  # type: ignore[arg-type]
    with pytest.raises(MessageValidationError):
        connector.send_batch(
            [{"to": "a@example.com", "template": "w", "model": {}, "subject": "s"}]
        )
    with pytest.raises(MessageValidationError):
        connector.send_template("a@example.com", True, {})
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    "from_email", ["", "not an address", "a@example.com, b@example.com", "A <a@example.com>\r\n"]
)
def test_connector_refuses_a_bad_from_address(from_email: str) -> None:
    with pytest.raises(ValueError, match="from_email"):
        make(from_email=from_email)


def test_connector_needs_a_token() -> None:
    with pytest.raises(ValueError, match="Server API Token"):
        make(server_token="")


# -- errors by cause ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."}, InvalidTokenError),
        (422, {"ErrorCode": 300, "Message": "Invalid email request."}, InvalidRequestError),
        (422, {"ErrorCode": 402, "Message": "Invalid JSON."}, InvalidRequestError),
        (422, {"ErrorCode": 403, "Message": "Incompatible JSON."}, InvalidRequestError),
        (422, {"ErrorCode": 406, "Message": "Inactive recipient."}, InactiveRecipientError),
        (
            422,
            {"ErrorCode": 400, "Message": "Sender signature not found."},
            SenderNotConfirmedError,
        ),
        (422, {"ErrorCode": 401, "Message": "Sender not confirmed."}, SenderNotConfirmedError),
        (422, {"ErrorCode": 412, "Message": "Pending account."}, SenderNotConfirmedError),
        (422, {"ErrorCode": 413, "Message": "Domain not verified."}, SenderNotConfirmedError),
        (422, {"ErrorCode": 1235, "Message": "Unknown stream."}, MessageStreamError),
        (422, {"ErrorCode": 1236, "Message": "Wrong stream type."}, MessageStreamError),
        (500, {"ErrorCode": 100, "Message": "Maintenance."}, ServerError),
        (429, {"ErrorCode": 0, "Message": "Slow down."}, RateLimitedError),
        # ErrorCode comes from the body, never from the status line.
        (422, {"ErrorCode": 10, "Message": "Bad token."}, InvalidTokenError),
        (401, {"ErrorCode": 406, "Message": "Inactive."}, InactiveRecipientError),
    ],
)
def test_errors_map_to_their_cause(
    mocked: responses.RequestsMock,
    status: int,
    body: dict[str, Any],
    expected: type[PostmarkError],
) -> None:
    mocked.post(f"{API}/email", status=status, json=body)
    with pytest.raises(expected) as info:
        make(max_retries=0).send("a@example.com", "s", text_body="b")
    assert type(info.value) is expected
    assert info.value.status == status
    assert info.value.error_code == body["ErrorCode"]
    assert info.value.message == body["Message"]


def test_non_json_4xx_is_a_transport_error(mocked: responses.RequestsMock) -> None:
    mocked.post(
        f"{API}/email",
        status=403,
        body="<html><body>Request blocked by firewall</body></html>",
        content_type="text/html",
    )
    with pytest.raises(TransportError) as info:
        make().send("a@example.com", "s", text_body="b")
    assert info.value.status == 403
    assert "not JSON" in info.value.message
    assert len(mocked.calls) == 1


def test_non_json_5xx_is_a_server_error(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{API}/email", status=502, body="<html>Bad gateway</html>")
    with pytest.raises(ServerError):
        make(max_retries=0).send("a@example.com", "s", text_body="b")


def test_connection_error_is_a_transport_error(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{API}/email", body=requests.ConnectionError("refused"))
    with pytest.raises(TransportError) as info:
        make().send("a@example.com", "s", text_body="b")
    assert info.value.status is None


def test_item_error_inside_a_200_is_raised_for_single_sends(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(f"{API}/email", json={"ErrorCode": 406, "Message": "Inactive."})
    with pytest.raises(InactiveRecipientError):
        make().send("a@example.com", "s", text_body="b")


# -- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_until_success(
    mocked: responses.RequestsMock, status: int
) -> None:
    mocked.post(f"{API}/email", status=status, json={"ErrorCode": 0, "Message": "later"})
    mocked.post(f"{API}/email", status=status, json={"ErrorCode": 0, "Message": "later"})
    mocked.post(f"{API}/email", json=ok_answer())
    result = make(max_retries=3).send("a@example.com", "s", text_body="b")
    assert result.message_id
    assert len(mocked.calls) == 3


def test_max_retries_counts_retries_after_the_first_attempt(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(f"{API}/email", status=503, json={"ErrorCode": 0, "Message": "down"})
    with pytest.raises(ServerError):
        make(max_retries=3).send("a@example.com", "s", text_body="b")
    assert len(mocked.calls) == 4


def test_zero_retries_means_one_attempt(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{API}/email", status=503, json={"ErrorCode": 0, "Message": "down"})
    with pytest.raises(ServerError):
        make(max_retries=0).send("a@example.com", "s", text_body="b")
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_other_statuses_are_never_retried(mocked: responses.RequestsMock, status: int) -> None:
    mocked.post(f"{API}/email", status=status, json={"ErrorCode": 300, "Message": "no"})
    with pytest.raises(PostmarkError):
        make(max_retries=3).send("a@example.com", "s", text_body="b")
    assert len(mocked.calls) == 1


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    retry = _Retry(total=10, backoff_factor=0.5, backoff_max=BACKOFF_CAP)
    assert retry.get_backoff_time() == 0  # before any failure
    waits = []
    for _ in range(8):
        retry = retry.increment(method="POST", url="/email")
        waits.append(retry.get_backoff_time())
    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(BACKOFF_CAP, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert max(waits) <= BACKOFF_CAP
    again = [
        _Retry(total=10, backoff_factor=0.5).increment(method="POST", url="/e").get_backoff_time()
        for _ in range(20)
    ]
    assert len(set(again)) > 1  # jittered


# -- session and secrets --------------------------------------------------------------------


def test_one_session_is_kept_and_shared_across_threads(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{API}/email", json=ok_answer())
    connector = make()
    sessions = []

    def work() -> None:
        connector.send("a@example.com", "s", text_body="b")
        sessions.append(connector._session_for_process())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in sessions}) == 1
    assert len(mocked.calls) == 8
    connector.close()


def test_each_call_reuses_one_prepared_request_and_sends_its_own_body(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL and the session's headers are prepared once per endpoint (not merged again
    on every call); each call still sends its own body, with its own length."""
    mocked.post(f"{API}/email", json=ok_answer())
    mocked.post(f"{API}/email/batch", json=[ok_answer()])
    connector = make()
    prepared: list[str] = []
    session = connector._session_for_process()
    real = session.prepare_request

    def spy(request: requests.Request) -> requests.PreparedRequest:
        prepared.append(request.url)
        return real(request)

    monkeypatch.setattr(session, "prepare_request", spy)
    for to in ("a@example.com", "bee@example.com", "c@example.com"):
        connector.send(to, "s", text_body="b")
    connector.send_batch([{"to": "d@example.com", "subject": "s", "text_body": "b"}])
    assert prepared == [f"{API}/email", f"{API}/email/batch"]
    recipients = [body["To"] for path, body in sent_bodies(mocked) if path == "/email"]
    assert recipients == ["a@example.com", "bee@example.com", "c@example.com"]
    for call in mocked.calls:
        assert call.request.headers["Content-Length"] == str(len(call.request.body or ""))
        assert call.request.headers["X-Postmark-Server-Token"] == TOKEN
    connector.close()
    connector.send("e@example.com", "s", text_body="b")  # a new session, prepared anew
    path, body = sent_bodies(mocked)[4]
    assert (path, body["To"]) == ("/email", "e@example.com")


def test_a_forked_process_gets_its_own_session(monkeypatch: pytest.MonkeyPatch) -> None:
    connector = make()
    first = connector._session_for_process()
    assert connector._session_for_process() is first
    monkeypatch.setattr("flask_postmark_auth.connector.os.getpid", lambda: -1)
    assert connector._session_for_process() is not first
    connector.close()
    first.close()


def test_token_never_shows_in_repr_errors_or_logs(
    mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.post(
        f"{API}/email",
        status=401,
        json={"ErrorCode": 10, "Message": f"Token {TOKEN} is not valid."},
    )
    mocked.post(f"{API}/email", json=ok_answer())
    connector = make()
    with pytest.raises(InvalidTokenError) as info:
        connector.send("a@example.com", "s", text_body="b")
    connector.send("a@example.com", "s", text_body="b")
    shown = [repr(connector), str(connector), str(info.value), repr(info.value), caplog.text]
    assert all(TOKEN not in text for text in shown)
    assert connector.masked_token == "****cdef"


# -- the Test action ------------------------------------------------------------------------


def stream(kind: str = "Transactional", archived: str | None = None) -> dict[str, Any]:
    return {"ID": "outbound", "Name": "Default", "MessageStreamType": kind, "ArchivedAt": archived}


def test_test_passes_when_token_stream_and_sender_are_good(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/server", json={"ID": 1, "Name": "Acme", "DeliveryType": "Sandbox"})
    mocked.get(f"{API}/message-streams/outbound", json=stream())
    report = make().test()
    assert report.ok
    assert [name for name, _, _ in report.checks] == [
        "Server API Token",
        "Message stream",
        "From address",
    ]
    panel = str(report)
    assert "Sandbox" in panel
    assert "All 3 checks passed." in panel
    assert TOKEN not in panel
    assert len(mocked.calls) == 2


def test_test_with_send_to_sends_and_shows_the_message_id(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/server", json={"ID": 1, "Name": "Acme", "DeliveryType": "Live"})
    mocked.get(f"{API}/message-streams/outbound", json=stream())
    mocked.post(f"{API}/email", json=ok_answer("me@example.com", "msg-123"))
    report = make().test(send_to="me@example.com")
    assert report.ok
    assert report.checks[-1] == ("Test email", True, "sent, MessageID msg-123")
    assert_bodies_match_postmark(mocked)


def test_test_reports_a_bad_token_and_skips_the_rest(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/server", status=401, json={"ErrorCode": 10, "Message": "Bad token."})
    report = make().test(send_to="me@example.com")
    assert not report.ok
    by_name = {name: (ok, detail) for name, ok, detail in report.checks}
    assert by_name["Server API Token"][0] is False
    assert by_name["Message stream"] == (False, "'outbound' not checked: no valid token")
    assert by_name["Test email"][0] is False
    assert "FAIL" in str(report)
    assert not any(call.request.method == "POST" for call in mocked.calls)


@pytest.mark.parametrize(
    ("answer", "status", "expected"),
    [
        ({"ErrorCode": 1226, "Message": "not found"}, 422, "does not exist"),
        (stream("Broadcasts"), 200, "is Broadcasts"),
        (stream(archived="2026-11-01T00:00:00Z"), 200, "archived"),
    ],
)
def test_test_reports_stream_problems(
    mocked: responses.RequestsMock, answer: dict[str, Any], status: int, expected: str
) -> None:
    mocked.get(f"{API}/server", json={"ID": 1, "Name": "Acme", "DeliveryType": "Live"})
    mocked.get(f"{API}/message-streams/outbound", status=status, json=answer)
    report = make().test()
    assert not report.ok
    [(_, ok, detail)] = [c for c in report.checks if c[0] == "Message stream"]
    assert not ok
    assert expected in detail
