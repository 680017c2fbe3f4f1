"""FakePostmark: Postmark's answers, faults, keep-alive and thread safety, over real HTTP."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
import requests

from flask_postmark_auth.testing.fake_postmark import (
    FakePostmark,
    RecordedMessage,
)

TOKEN = "fake-server-token"
AUTH = {"X-Postmark-Server-Token": TOKEN, "Accept": "application/json"}
DROP = object()  # a field to leave out of the message


@pytest.fixture
def fake() -> Iterator[FakePostmark]:
    with FakePostmark() as server:
        yield server


def message(**fields: Any) -> dict[str, Any]:
    """A message Postmark accepts, with ``fields`` changed (``DROP`` removes one)."""
    base: dict[str, Any] = {
        "From": "Sender <sender@example.com>",
        "To": "user@example.net",
        "Subject": "Your code",
        "TextBody": "123456",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


def post(
    fake: FakePostmark,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    return requests.post(
        fake.url + path, json=body, headers={**AUTH, **(headers or {})}, timeout=5, **kwargs
    )


def get(fake: FakePostmark, path: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(fake.url + path, headers={**AUTH, **(headers or {})}, timeout=5)


def assert_error(response: requests.Response, status: int, code: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["ErrorCode"] == code, body
    assert text in body["Message"]
    assert "MessageID" not in body
    assert response.headers["X-PM-ApiErrorCode"] == str(code)


# -- accepted sends ------------------------------------------------------------------------


def test_accepted_send_answers_like_postmark_and_is_recorded(fake: FakePostmark) -> None:
    payload = message(
        To="Jane Doe <jane@example.net>",
        Cc="cc@example.org",
        ReplyTo="help@example.com",
        HtmlBody="<p>123456</p>",
        Tag="sign-in",
        Metadata={"flow": "otp"},
        Headers=[{"Name": "X-Request-Id", "Value": "r1"}],
        TrackOpens=False,
        TrackLinks="None",
    )
    response = post(fake, "/email", payload)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"To", "SubmittedAt", "MessageID", "ErrorCode", "Message"}
    assert body["ErrorCode"] == 0
    assert body["Message"] == "OK"
    assert body["To"] == "Jane Doe <jane@example.net>"
    assert uuid.UUID(body["MessageID"]).version == 4
    # Postmark writes seven fractional digits; the offset is always there.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", body["SubmittedAt"])
    submitted = datetime.fromisoformat(body["SubmittedAt"][:26] + "+00:00")
    assert submitted.tzinfo is not None

    [recorded] = fake.messages
    assert recorded.message_id == body["MessageID"]
    assert recorded.endpoint == "/email"
    assert recorded.to == "Jane Doe <jane@example.net>"
    assert recorded.from_ == "Sender <sender@example.com>"
    assert recorded.cc == "cc@example.org"
    assert recorded.reply_to == "help@example.com"
    assert recorded.subject == "Your code"
    assert recorded.text_body == "123456"
    assert recorded.html_body == "<p>123456</p>"
    assert recorded.tag == "sign-in"
    assert recorded.metadata == {"flow": "otp"}
    assert recorded.message_stream == "outbound"
    assert recorded.headers == [{"Name": "X-Request-Id", "Value": "r1"}]
    assert recorded.track_opens is False
    assert recorded.track_links == "None"
    assert recorded.template is None
    assert recorded.payload == payload


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"Subject": DROP}, id="no-subject"),
        pytest.param({"TextBody": DROP, "HtmlBody": "<b>1</b>"}, id="html-only"),
        pytest.param({"To": '"Doe, Jane" <jane@example.net>, bob@example.org'}, id="quoted"),
        pytest.param({"Tag": "t" * 1000}, id="tag-1000"),
        pytest.param({"Subject": "s" * 2000}, id="subject-2000"),
        pytest.param({"Metadata": {f"k{i:0>19}": "v" * 80 for i in range(10)}}, id="metadata"),
        pytest.param({"Cc": "", "Bcc": None, "MessageStream": None}, id="empty-optionals"),
    ],
)
def test_postmark_accepts(fake: FakePostmark, fields: dict[str, Any]) -> None:
    response = post(fake, "/email", message(**fields))
    assert response.status_code == 200, response.text
    assert response.json()["ErrorCode"] == 0
    assert len(fake.messages) == 1


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        ({"To": DROP}, 300, "Zero recipients specified"),
        ({"To": " "}, 300, "Zero recipients specified"),
        ({"To": "user.example.net"}, 300, "It must contain the '@' symbol."),
        ({"To": "user@"}, 300, "Invalid 'To' address: 'user@'."),
        ({"To": " , "}, 300, "Invalid 'To' address"),
        ({"To": "a@example.net, Bob <bob@@example.org>"}, 300, "'To'"),
        ({"Cc": "ok@example.org, not an address"}, 300, "'Cc'"),
        ({"Bcc": "bcc@example..org"}, 300, "Invalid 'Bcc' address"),
        ({"ReplyTo": "nope"}, 300, "'ReplyTo'"),
        ({"From": DROP}, 300, "Invalid 'From' value."),
        ({"From": "sender"}, 300, "Invalid 'From' address: 'sender'."),
        ({"From": "a@example.com, b@example.com"}, 300, "Invalid 'From' address"),
        ({"TextBody": DROP}, 300, "Provide either email TextBody or HtmlBody or both."),
        ({"TextBody": "", "HtmlBody": ""}, 300, "Provide either email TextBody or HtmlBody"),
        ({"Tag": "t" * 1001}, 300, "'Tag'"),
        ({"Subject": "s" * 2001}, 300, "'Subject'"),
        ({"Metadata": {f"k{i}": "v" for i in range(11)}}, 300, "Invalid metadata content."),
        ({"Metadata": {"k" * 21: "v"}}, 300, "Invalid metadata content."),
        ({"Metadata": {"k": "v" * 81}}, 300, "Invalid metadata content."),
        ({"Metadata": {"k": 1}}, 300, "Invalid metadata content."),
        ({"Metadata": {"Key": "a", "key": "b"}}, 300, "must be unique"),
        ({"To": ["user@example.net"]}, 403, "Invalid request field(s): 'To'."),
        ({"TrackOpens": "yes"}, 403, "'TrackOpens'"),
        ({"TrackLinks": "Always"}, 403, "'TrackLinks'"),
        ({"Headers": {"X-A": "b"}}, 403, "'Headers'"),
        ({"Metadata": ["k", "v"]}, 403, "'Metadata'"),
        ({"MessageStream": "nope"}, 1235, "The 'MessageStream' provided does not exist"),
    ],
)
def test_postmark_refuses(
    fake: FakePostmark, fields: dict[str, Any], code: int, text: str
) -> None:
    response = post(fake, "/email", message(**fields))
    assert_error(response, 422, code, text)
    assert fake.messages == []


def test_at_most_50_recipients_across_to_cc_and_bcc(fake: FakePostmark) -> None:
    def addresses(prefix: str, n: int) -> str:
        return ", ".join(f"{prefix}{i}@example.net" for i in range(n))

    fifty = message(To=addresses("to", 20), Cc=addresses("cc", 20), Bcc=addresses("bcc", 10))
    assert post(fake, "/email", fifty).status_code == 200

    fifty_one = {**fifty, "Bcc": addresses("bcc", 11)}
    assert_error(post(fake, "/email", fifty_one), 422, 300, "at most 50 recipients")
    assert len(fake.messages) == 1


def test_body_that_is_not_json(fake: FakePostmark) -> None:
    response = requests.post(
        fake.url + "/email",
        data=b'{"From": "a@example.com",',
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=5,
    )
    assert_error(response, 422, 402, "Invalid JSON")
    assert fake.requests[0].body == b'{"From": "a@example.com",'
    assert fake.requests[0].json is None


@pytest.mark.parametrize("body", [[message()], "text", 1])
def test_single_send_needs_a_json_object(fake: FakePostmark, body: Any) -> None:
    assert_error(post(fake, "/email", body), 422, 403, "Invalid request field(s)")


# -- authentication and headers ----------------------------------------------------------


def test_missing_token_is_401_errorcode_10(fake: FakePostmark) -> None:
    response = requests.post(fake.url + "/email", json=message(), timeout=5)
    assert_error(response, 401, 10, "No Account or Server API tokens were supplied")
    assert fake.messages == []


@pytest.mark.parametrize("path", ["/email", "/server", "/message-streams/outbound"])
def test_wrong_token_is_401_errorcode_10(fake: FakePostmark, path: str) -> None:
    wrong = {"X-Postmark-Server-Token": "not-the-token"}
    response = requests.request(
        "POST" if path == "/email" else "GET",
        fake.url + path,
        json=message(),
        headers={**AUTH, **wrong},
        timeout=5,
    )
    assert_error(response, 401, 10, "Request does not contain a valid Server token.")


def test_token_from_constructor() -> None:
    with FakePostmark(server_token="s3cret") as fake:
        assert post(fake, "/email", message()).status_code == 401
        ok = post(fake, "/email", message(), {"X-Postmark-Server-Token": "s3cret"})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "application/json; charset=utf-8"}, 200),
        ({"Content-Type": "text/json"}, 200),
        ({"Accept": "*/*"}, 200),
        ({"Accept": "text/html, application/json;q=0.9"}, 200),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Accept": "text/html"}, 415),
    ],
)
def test_json_content_type_and_accept(
    fake: FakePostmark, headers: dict[str, str], status: int
) -> None:
    response = requests.post(
        fake.url + "/email",
        data=json.dumps(message()),
        headers={**AUTH, "Content-Type": "application/json", **headers},
        timeout=5,
    )
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 415, 409, "Content-Type and Accept headers must be set")


def test_post_without_content_type_is_refused(fake: FakePostmark) -> None:
    response = requests.post(
        fake.url + "/email", data=json.dumps(message()).encode(), headers=AUTH, timeout=5
    )
    assert_error(response, 415, 409, "application/json")


def test_unknown_path_and_wrong_method(fake: FakePostmark) -> None:
    missing = get(fake, "/nope")
    assert missing.status_code == 404
    assert missing.json()["Message"]

    wrong = get(fake, "/email")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
    assert "does not support http method 'GET'" in wrong.json()["Message"]


# -- senders, streams, inactive recipients, templates -------------------------------------


def test_confirmed_senders_by_address_and_domain() -> None:
    senders = ["Login@Example.com", "@example.org"]
    with FakePostmark(confirmed_senders=senders) as fake:
        assert post(fake, "/email", message(From="Site <LOGIN@example.com>")).status_code == 200
        assert post(fake, "/email", message(From="anyone@example.org")).status_code == 200

        for sender in ("other@example.com", "x@sub.example.org"):
            response = post(fake, "/email", message(From=sender))
            assert_error(response, 422, 400, f"The 'From' address you supplied ({sender})")
            assert "is not a Sender Signature on your account" in response.json()["Message"]
        assert len(fake.messages) == 2


def test_message_streams_for_sending() -> None:
    streams = {
        "outbound": {"MessageStreamType": "Transactional"},
        "broadcast": {"MessageStreamType": "Broadcasts"},
        "inbound": {"MessageStreamType": "Inbound"},
        "old": {"MessageStreamType": "Transactional", "ArchivedAt": "2024-01-02T00:00:00Z"},
    }
    with FakePostmark(streams=streams) as fake:
        assert post(fake, "/email", message()).status_code == 200
        # Postmark takes API sends on Broadcasts streams; only Inbound ones refuse them.
        assert post(fake, "/email", message(MessageStream="broadcast")).status_code == 200
        assert [m.message_stream for m in fake.messages] == ["outbound", "broadcast"]

        inbound = post(fake, "/email", message(MessageStream="inbound"))
        assert_error(inbound, 422, 1236, "Sending is not supported")
        for stream in ("old", "missing"):
            response = post(fake, "/email", message(MessageStream=stream))
            assert_error(response, 422, 1235, "does not exist on this server")
        assert len(fake.messages) == 2


def test_inactive_recipient_is_406(fake: FakePostmark) -> None:
    fake.inactive_recipients.add("gone@example.net")
    response = post(fake, "/email", message(To="ok@example.net", Bcc="Gone <GONE@example.net>"))
    assert_error(response, 422, 406, "Found inactive addresses: GONE@example.net. Inactive")
    assert fake.messages == []
    assert post(fake, "/email", message(To="ok@example.net")).status_code == 200


def test_template_sends() -> None:
    with FakePostmark(templates=["welcome", 42]) as fake:
        by_alias = {"TemplateAlias": "welcome", "TemplateModel": {"code": "1"}}
        response = post(fake, "/email/withTemplate", message(TextBody=DROP, **by_alias))
        assert response.status_code == 200, response.text
        by_id = {"TemplateId": 42, "TemplateModel": {}}
        assert post(fake, "/email/withTemplate", message(**by_id)).status_code == 200

        alias, number = fake.messages
        assert (alias.endpoint, alias.template, alias.template_model) == (
            "/email/withTemplate",
            "welcome",
            {"code": "1"},
        )
        assert (number.template, number.template_model) == (42, {})


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        ({"TemplateModel": {}}, 1101, "'TemplateId' or a 'TemplateAlias'"),
        ({"TemplateId": 42, "TemplateAlias": "welcome", "TemplateModel": {}}, 1101, "not both"),
        (
            {"TemplateAlias": "nope", "TemplateModel": {}},
            1101,
            "The Template's 'Alias' associated with this request is not valid or was not found.",
        ),
        (
            {"TemplateId": 7, "TemplateModel": {}},
            1101,
            "The 'TemplateId' associated with this request is not valid or was not found.",
        ),
        ({"TemplateAlias": "welcome"}, 1120, "'TemplateModel'"),
        ({"TemplateAlias": "welcome", "TemplateModel": "x"}, 403, "'TemplateModel'"),
        ({"TemplateId": "42", "TemplateModel": {}}, 403, "'TemplateId'"),
    ],
)
def test_template_send_refusals(fields: dict[str, Any], code: int, text: str) -> None:
    with FakePostmark(templates=["welcome", 42]) as fake:
        response = post(fake, "/email/withTemplate", message(TextBody=DROP, **fields))
        assert_error(response, 422, code, text)
        assert fake.messages == []


def test_any_template_exists_by_default(fake: FakePostmark) -> None:
    fields = {"TemplateAlias": "whatever", "TemplateModel": {}}
    assert post(fake, "/email/withTemplate", message(**fields)).status_code == 200


# -- batches ---------------------------------------------------------------------------------


def test_batch_answers_per_message_in_order(fake: FakePostmark) -> None:
    fake.inactive_recipients.add("gone@example.net")
    batch = [
        message(To="one@example.net"),
        message(To="gone@example.net"),
        message(To="not-an-address"),
        message(To="two@example.net", MessageStream="nope"),
        message(To="three@example.net"),
    ]
    response = post(fake, "/email/batch", batch)

    assert response.status_code == 200
    results = response.json()
    assert [r["ErrorCode"] for r in results] == [0, 406, 300, 1235, 0]
    assert "Found inactive addresses: gone@example.net." in results[1]["Message"]
    for failed in results[1:4]:
        assert "MessageID" not in failed
    assert [r["To"] for r in (results[0], results[4])] == ["one@example.net", "three@example.net"]
    assert [m.to for m in fake.messages] == ["one@example.net", "three@example.net"]
    assert [m.message_id for m in fake.messages] == [
        results[0]["MessageID"],
        results[4]["MessageID"],
    ]
    assert {m.endpoint for m in fake.messages} == {"/email/batch"}


def test_batch_of_500_is_fine_501_is_410(fake: FakePostmark) -> None:
    batch = [message(To=f"u{i}@example.net") for i in range(500)]
    response = post(fake, "/email/batch", batch)
    assert response.status_code == 200
    assert len(response.json()) == 500
    assert len(fake.messages) == 500

    fake.reset()
    too_many = post(fake, "/email/batch", [*batch, message()])
    assert_error(too_many, 422, 410, "You may only send up to 500 messages")
    assert fake.messages == []


def test_batch_needs_an_array(fake: FakePostmark) -> None:
    assert_error(post(fake, "/email/batch", message()), 422, 403, "JSON array")


def test_batch_with_templates(fake: FakePostmark) -> None:
    fake.templates = {"welcome"}
    good = message(TemplateAlias="welcome", TemplateModel={"n": 1})
    unknown = message(TemplateAlias="other", TemplateModel={})
    not_object = "just a string"
    response = post(fake, "/email/batchWithTemplates", {"Messages": [good, unknown, not_object]})

    assert response.status_code == 200
    ok, missing, invalid = response.json()
    assert ok["ErrorCode"] == 0
    assert (missing["ErrorCode"], invalid["ErrorCode"]) == (1101, 403)
    [recorded] = fake.messages
    assert (recorded.endpoint, recorded.template) == ("/email/batchWithTemplates", "welcome")

    assert_error(post(fake, "/email/batchWithTemplates", [good]), 422, 403, "'Messages'")
    too_many = {"Messages": [good] * 501}
    assert_error(post(fake, "/email/batchWithTemplates", too_many), 422, 410, "500 messages")


# -- GET endpoints ---------------------------------------------------------------------------


def test_get_server() -> None:
    with FakePostmark(server_name="Sign-in", delivery_type="Sandbox") as fake:
        response = get(fake, "/server")
    assert response.status_code == 200
    server = response.json()
    assert server["ID"] == 1
    assert server["Name"] == "Sign-in"
    assert server["DeliveryType"] == "Sandbox"
    assert server["ApiTokens"] == [TOKEN]
    assert server["Color"] == "blue"
    assert server["InboundAddress"].endswith("@inbound.postmarkapp.com")


def test_get_message_stream(fake: FakePostmark) -> None:
    response = get(fake, "/message-streams/outbound")
    assert response.status_code == 200
    assert response.json() == {
        "ID": "outbound",
        "ServerID": 1,
        "Name": "Default Transactional Stream",
        "Description": None,
        "MessageStreamType": "Transactional",
        "CreatedAt": "2020-07-01T00:00:00-04:00",
        "UpdatedAt": None,
        "ArchivedAt": None,
        "ExpectedPurgeDate": None,
        "SubscriptionManagementConfiguration": {"UnsubscribeHandlingType": "None"},
    }
    # The ID is URL-decoded, as in any path segment.
    assert get(fake, "/message-streams/%6Futbound").json()["ID"] == "outbound"


def test_archived_and_broadcast_streams() -> None:
    streams = {
        "news": {"MessageStreamType": "Broadcasts", "Name": "News", "Description": "Weekly"},
        "old": {"MessageStreamType": "Transactional", "ArchivedAt": "2024-01-02T00:00:00+00:00"},
    }
    with FakePostmark(streams=streams) as fake:
        news = get(fake, "/message-streams/news").json()
        old = get(fake, "/message-streams/old").json()
    assert (news["Name"], news["Description"], news["MessageStreamType"]) == (
        "News",
        "Weekly",
        "Broadcasts",
    )
    assert news["SubscriptionManagementConfiguration"] == {"UnsubscribeHandlingType": "Postmark"}
    assert old["ArchivedAt"] == "2024-01-02T00:00:00+00:00"
    assert old["ExpectedPurgeDate"] == "2024-02-16T00:00:00+00:00"


def test_unknown_message_stream_is_1226(fake: FakePostmark) -> None:
    response = get(fake, "/message-streams/nope")
    assert_error(response, 422, 1226, "")
    assert response.json()["Message"] == "The message stream for the provided 'ID' was not found."


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="MessageStreamType"):
        FakePostmark(streams={"x": {"MessageStreamType": "Marketing"}})
    with pytest.raises(ValueError, match="delivery_type"):
        FakePostmark(delivery_type="Test")


# -- faults ----------------------------------------------------------------------------------


def test_fail_answers_the_next_requests_then_recovers(fake: FakePostmark) -> None:
    fake.fail(503, times=2)
    first, second = post(fake, "/email", message()), post(fake, "/email", message())
    for response in (first, second):
        assert_error(response, 503, 100, "offline for maintenance")
    assert post(fake, "/email", message()).status_code == 200
    assert len(fake.messages) == 1
    assert len(fake.requests) == 3


def test_fail_with_code_message_and_path(fake: FakePostmark) -> None:
    fake.fail(422, 406, "Found inactive addresses: x@example.net.", path="/email")
    assert get(fake, "/server").status_code == 200  # another path: not consumed
    assert_error(post(fake, "/email", message()), 422, 406, "x@example.net")
    assert post(fake, "/email", message()).status_code == 200


def test_faults_are_first_in_first_out(fake: FakePostmark) -> None:
    fake.fail(500)
    fake.fail(429, message="Slow down")
    fake.fail(401)
    assert_error(get(fake, "/server"), 500, 101, "")
    assert_error(get(fake, "/server"), 429, 429, "Slow down")
    assert_error(get(fake, "/server"), 401, 10, "")
    assert get(fake, "/server").status_code == 200


def test_fail_with_unlisted_status_uses_errorcode_0(fake: FakePostmark) -> None:
    fake.fail(502)
    assert_error(get(fake, "/server"), 502, 0, "")


def test_fail_html_answers_a_non_json_page(fake: FakePostmark) -> None:
    fake.fail_html()
    response = post(fake, "/email", message())
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Forbidden" in response.text
    with pytest.raises(requests.JSONDecodeError):
        response.json()

    fake.fail_html(502, "<html><body>Bad Gateway</body></html>", path="/email")
    bad_gateway = post(fake, "/email", message())
    assert (bad_gateway.status_code, bad_gateway.text) == (
        502,
        "<html><body>Bad Gateway</body></html>",
    )
    assert fake.messages == []


def test_drop_connection_raises_connection_error_then_recovers(fake: FakePostmark) -> None:
    fake.drop_connection(times=2, path="/email")
    with requests.Session() as session:
        session.headers.update(AUTH)
        assert session.get(fake.url + "/server", timeout=5).status_code == 200
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                session.post(fake.url + "/email", json=message(), timeout=5)
        assert session.post(fake.url + "/email", json=message(), timeout=5).status_code == 200
    assert len(fake.messages) == 1


def test_slow_delays_the_next_requests(fake: FakePostmark) -> None:
    fake.slow(0.3, times=1)
    started = time.monotonic()
    assert get(fake, "/server").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert get(fake, "/server").status_code == 200
    assert time.monotonic() - started < 0.25


def test_slow_for_all_requests_and_delay_attribute(fake: FakePostmark) -> None:
    fake.slow(0.15)
    assert fake.delay == 0.15
    for _ in range(2):
        started = time.monotonic()
        get(fake, "/server")
        assert time.monotonic() - started >= 0.15
    fake.delay = 0.0
    started = time.monotonic()
    get(fake, "/server")
    assert time.monotonic() - started < 0.15


def test_slow_answer_times_the_client_out_and_stop_does_not_wait(fake: FakePostmark) -> None:
    fake.slow(5.0, times=1)
    with pytest.raises(requests.ReadTimeout):
        requests.get(fake.url + "/server", headers=AUTH, timeout=0.2)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1.5


def test_reset_forgets_messages_requests_and_faults(fake: FakePostmark) -> None:
    post(fake, "/email", message())
    fake.fail(500)
    fake.drop_connection()
    fake.slow(0.5, times=3)
    fake.reset()
    assert (fake.messages, fake.requests, fake.connection_count) == ([], [], 0)
    started = time.monotonic()
    assert post(fake, "/email", message()).status_code == 200
    assert time.monotonic() - started < 0.4


def test_fault_arguments_are_checked(fake: FakePostmark) -> None:
    with pytest.raises(ValueError, match="times"):
        fake.fail(500, times=0)
    with pytest.raises(ValueError, match="seconds"):
        fake.slow(-1)


# -- HTTP behaviour --------------------------------------------------------------------------


def test_kept_alive_session_uses_one_connection(fake: FakePostmark) -> None:
    with requests.Session() as session:
        session.headers.update(AUTH)
        for _ in range(3):
            response = session.post(fake.url + "/email", json=message(), timeout=5)
            assert response.status_code == 200
            assert response.raw.version == 11
            assert response.headers["Content-Length"] == str(len(response.content))
        assert session.get(fake.url + "/server", timeout=5).status_code == 200
    assert fake.connection_count == 1
    assert len(fake.messages) == 3

    post(fake, "/email", message())  # a new Session: a new connection
    assert fake.connection_count == 2


def test_error_answers_keep_the_connection_alive(fake: FakePostmark) -> None:
    with requests.Session() as session:
        session.headers.update(AUTH)
        session.post(fake.url + "/email", json=message(To=DROP), timeout=5)
        session.get(fake.url + "/nope", timeout=5)
        session.post(fake.url + "/email", json=message(), headers={"Accept": "x/y"}, timeout=5)
        assert session.post(fake.url + "/email", json=message(), timeout=5).status_code == 200
    assert fake.connection_count == 1


def test_requests_are_recorded(fake: FakePostmark) -> None:
    payload = message()
    post(fake, "/email", payload)
    get(fake, "/server?verbose=1")
    sent, server = fake.requests
    assert (sent.method, sent.path, sent.json) == ("POST", "/email", payload)
    assert sent.headers["X-Postmark-Server-Token"] == TOKEN
    assert json.loads(sent.body) == payload
    assert (server.method, server.path, server.query, server.body) == (
        "GET",
        "/server",
        "verbose=1",
        b"",
    )


def test_chunked_request_body(fake: FakePostmark) -> None:
    data = json.dumps(message()).encode()
    response = requests.post(
        fake.url + "/email",
        data=iter([data[:10], data[10:]]),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200
    assert fake.requests[0].json == message()


def test_oversized_body_is_413_before_reading_it(fake: FakePostmark) -> None:
    host, port = fake.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.putrequest("POST", "/email")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Connection") == "close"
        response.read()
    finally:
        connection.close()


def test_start_stop_and_url() -> None:
    fake = FakePostmark()
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.url
    assert fake.start() is fake
    url = fake.url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert fake.start().url == url  # starting again changes nothing
    fake.stop()
    fake.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/server", headers=AUTH, timeout=2)


def test_stop_closes_kept_alive_connections(fake: FakePostmark) -> None:
    with requests.Session() as session:
        session.headers.update(AUTH)
        url = fake.url
        assert session.get(url + "/server", timeout=5).status_code == 200
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 1.0
        with pytest.raises(requests.ConnectionError):
            session.get(url + "/server", timeout=2)


# -- threads ---------------------------------------------------------------------------------


def test_concurrent_clients_are_all_recorded(fake: FakePostmark) -> None:
    def client(worker: int) -> list[str]:
        ids = []
        with requests.Session() as session:
            session.headers.update(AUTH)
            for i in range(25):
                payload = message(To=f"w{worker}-{i}@example.net")
                response = session.post(fake.url + "/email", json=payload, timeout=10)
                assert response.status_code == 200
                ids.append(response.json()["MessageID"])
        return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        answered = [i for ids in pool.map(client, range(8)) for i in ids]

    assert len(answered) == len(set(answered)) == 200
    assert {m.message_id for m in fake.messages} == set(answered)
    assert len(fake.requests) == 200
    assert fake.connection_count == 8
    for worker in range(8):  # each client's messages stay in its order
        mine = [m.to for m in fake.messages if m.to.startswith(f"w{worker}-")]
        assert mine == [f"w{worker}-{i}@example.net" for i in range(25)]


def test_wait_for_messages_from_a_background_sender(fake: FakePostmark) -> None:
    def later() -> None:
        time.sleep(0.1)
        post(fake, "/email/batch", [message(To="a@example.net"), message(To="b@example.net")])

    sender = threading.Thread(target=later)
    sender.start()
    try:
        received = fake.wait_for_messages(2, timeout=5)
    finally:
        sender.join()
    assert [m.to for m in received] == ["a@example.net", "b@example.net"]


def test_wait_for_messages_times_out(fake: FakePostmark) -> None:
    post(fake, "/email", message())
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="1 of 2 messages"):
        fake.wait_for_messages(2, timeout=0.1)
    assert time.monotonic() - started < 1.0


# -- records without HTTP --------------------------------------------------------------------


def test_recorded_message_from_payload() -> None:
    payload = {
        "From": "a@example.com",
        "To": "b@example.net",
        "TemplateId": 7,
        "TemplateModel": {"x": 1},
        "Metadata": {"k": "v"},
        "TrackOpens": True,
        "MessageStream": "",
    }
    record = RecordedMessage.from_payload("/email/withTemplate", payload, "id-1")
    assert record == RecordedMessage(
        message_id="id-1",
        endpoint="/email/withTemplate",
        to="b@example.net",
        from_="a@example.com",
        metadata={"k": "v"},
        message_stream="outbound",
        template=7,
        template_model={"x": 1},
        track_opens=True,
        payload=payload,
    )
