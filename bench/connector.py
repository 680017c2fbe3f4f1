"""Connector throughput against FakePostmark: ``PostmarkConnector.send`` one message after
another and ``send_batch`` 500 to a call, beside the floor (a bare ``requests.Session``
posting the same JSON with the same headers, reading ``.json()`` and making each message's
result, as any client must) and postmarker.

Every contestant keeps one connection alive and ignores proxy settings from the environment
(``trust_env=False``, as the connector does), so the comparison is even.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests

from flask_postmark_auth import PostmarkConnector, __version__
from flask_postmark_auth.testing import FakePostmark

from . import profiling
from .apps import FROM_EMAIL
from .common import (
    CPU_NOTE,
    BenchError,
    Result,
    RunConfig,
    Sample,
    Section,
    alternate,
    measure,
    rate,
    rate_cells,
    rate_headers,
    ratio,
)

BATCH = 500
SUBJECT = "Your sign-in code for Bench: 123456"
TEXT = "Your sign-in code for Bench is:\n\n    123456\n\nIt works once and expires in 10 minutes."
HTML = "<p>Your sign-in code for Bench is:</p><p><strong>123456</strong></p>"
TARGETS = {"send": 0.95, "send_batch": 0.9}
FLOOR = "floor: requests.Session"
CONNECTOR = "PostmarkConnector"
POSTMARKER = "postmarker"
PROFILE_BATCHES = 4

#: A contestant's two ways to send: one message to an address, one batch to many.
Senders = tuple[Callable[[str], None], Callable[[list[str]], None]]


def _payload(to: str) -> dict[str, Any]:
    """The JSON the connector builds for one message: the floor posts the same."""
    return {
        "From": FROM_EMAIL,
        "To": to,
        "Subject": SUBJECT,
        "TextBody": TEXT,
        "HtmlBody": HTML,
        "Tag": "otp",
        "TrackOpens": False,
        "TrackLinks": "None",
        "MessageStream": "outbound",
    }


def _recipients(count: int) -> list[str]:
    return [f"user{i:04d}@example.net" for i in range(count)]


class Floor:
    """The least a client can do: serialize, POST over a kept-alive session, decode."""

    def __init__(self, fake: FakePostmark) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers.update(
            {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-Postmark-Server-Token": fake.server_token,
                "User-Agent": f"flask-postmark-auth/{__version__}",
            }
        )
        self.email_url = fake.url + "/email"
        self.batch_url = fake.url + "/email/batch"

    def send(self, to: str) -> None:
        body = json.dumps(_payload(to), separators=(",", ":"))
        answer = self.session.post(self.email_url, data=body).json()
        if answer.get("ErrorCode") != 0:
            raise BenchError(f"floor send refused: {answer}")

    def send_batch(self, recipients: list[str]) -> None:
        body = json.dumps([_payload(to) for to in recipients], separators=(",", ":"))
        answers = self.session.post(self.batch_url, data=body).json()
        # What any client hands its caller: each message's id, recipient and time, or its
        # error (the connector's SendResult or PostmarkError).
        results = [
            (str(a["MessageID"]), str(a.get("To", "")), a.get("SubmittedAt"))
            if isinstance(a, dict) and a.get("ErrorCode") == 0 and a.get("MessageID")
            else RuntimeError(f"refused: {a!r}")
            for a in answers
        ]
        if len(results) != len(recipients) or any(isinstance(r, Exception) for r in results):
            raise BenchError("floor batch refused")


def _connector(fake: FakePostmark) -> Senders:
    connector = PostmarkConnector(
        "bench", server_token=fake.server_token, from_email=FROM_EMAIL, api_url=fake.url
    )

    def send(to: str) -> None:
        connector.send(
            to,
            SUBJECT,
            text_body=TEXT,
            html_body=HTML,
            tag="otp",
            track_opens=False,
            track_links="None",
        )

    def send_batch(recipients: list[str]) -> None:
        results = connector.send_batch(
            [
                {
                    "to": to,
                    "subject": SUBJECT,
                    "text_body": TEXT,
                    "html_body": HTML,
                    "tag": "otp",
                    "track_opens": False,
                    "track_links": "None",
                }
                for to in recipients
            ]
        )
        if any(isinstance(r, Exception) for r in results):
            raise BenchError("connector batch refused")

    return send, send_batch


def _postmarker(fake: FakePostmark) -> Senders:
    from postmarker.core import PostmarkClient

    client = PostmarkClient(server_token=fake.server_token, root_api_url=fake.url + "/")
    client.session.trust_env = False

    def send(to: str) -> None:
        client.emails.send(**_payload(to))

    def send_batch(recipients: list[str]) -> None:
        answers = client.emails.send_batch(*(_payload(to) for to in recipients))
        if len(answers) != len(recipients):
            raise BenchError("postmarker batch answer did not match")

    return send, send_batch


def run(config: RunConfig) -> Section:
    section = Section("1. Connector throughput against FakePostmark (messages per second)")
    singles = config.pick(600, 100)
    batches = config.pick(10, 2)
    section.add(
        f"send: {singles} messages one after another per round; send_batch: {batches} calls "
        f"of {BATCH} per round;",
        f"{config.rounds} alternating rounds, start rotated each round. FakePostmark runs in "
        "this process (its own thread),",
        "so every contestant pays the same server cost. All three keep one connection alive "
        "and use trust_env=False",
        "(the connector does), so none consults proxy settings from the environment.",
        "",
    )
    with FakePostmark() as fake:
        floor = Floor(fake)
        contestants: dict[str, Senders] = {
            FLOOR: (floor.send, floor.send_batch),
            CONNECTOR: _connector(fake),
        }
        try:
            contestants[POSTMARKER] = _postmarker(fake)
        except ImportError as exc:
            section.add(f"postmarker: skipped ({exc}); install the bench extra.", "")

        recipients = _recipients(max(singles, BATCH))
        for send, send_batch in contestants.values():  # warm-up: connection, code paths
            for to in recipients[:50]:
                send(to)
            send_batch(recipients[:BATCH])
        fake.reset()

        def singles_round(send: Callable[[str], None]) -> Callable[[], Sample]:
            def go() -> None:
                for to in recipients[:singles]:
                    send(to)

            def timed() -> Sample:
                speed = measure(singles, go)
                _check(fake, singles)
                return speed

            return timed

        def batches_round(send_batch: Callable[[list[str]], None]) -> Callable[[], Sample]:
            chunk = recipients[:BATCH]

            def go() -> None:
                for _ in range(batches):
                    send_batch(chunk)

            def timed() -> Sample:
                speed = measure(batches * BATCH, go)
                _check(fake, batches * BATCH)
                return speed

            return timed

        results: dict[str, dict[str, Result]] = {
            "send": alternate(
                [(name, singles_round(c[0])) for name, c in contestants.items()],
                config.rounds,
                "connector send",
            ),
            "send_batch": alternate(
                [(name, batches_round(c[1])) for name, c in contestants.items()],
                config.rounds,
                "connector send_batch",
            ),
        }
        send_batch = contestants[CONNECTOR][1]
        chunk = recipients[:BATCH]
        profiled = profiling.profile(lambda: [send_batch(chunk) for _ in range(PROFILE_BATCHES)])
        fake.reset()

    rows = [
        [kind, name, *rate_cells(result, results[kind][FLOOR])]
        for kind, spreads in results.items()
        for name, result in spreads.items()
    ]
    section.table(["method", "contestant", *rate_headers("floor")], rows, left=2)
    section.add(*CPU_NOTE.splitlines(), "")
    verdicts = []
    for kind, minimum in TARGETS.items():
        mine, base = results[kind][CONNECTOR], results[kind][FLOOR]
        share = mine.wall.median / base.wall.median
        target = section.check(
            f"connector {kind} >= {minimum} x floor (medians)",
            share >= minimum,
            f"{ratio(share)}: {rate(mine.wall.median)} vs {rate(base.wall.median)} msg/s; "
            f"by CPU time {ratio(mine.cpu.median / base.cpu.median)}",
        )
        verdicts.append(
            f"{kind} {rate(mine.wall.median)} msg/s = {ratio(share)} the floor "
            f"(target {minimum}x: {'PASS' if target.passed else 'FAIL'})"
        )
    section.summary = "The connector ran " + "; ".join(verdicts) + "."
    section.add(
        "",
        f"Profile of the connector's send_batch: cProfile over {PROFILE_BATCHES} calls of "
        f"{BATCH} ({profiled.total:.2f} s profiled; the wait for FakePostmark's answer is "
        "socket time).",
        "Top package functions by cumulative time:",
        *profiled.package_functions(8, PROFILE_BATCHES * BATCH, "msg"),
        "",
        "Own time by library:",
        *profiled.libraries(8, PROFILE_BATCHES * BATCH, "msg"),
    )
    return section


def _check(fake: FakePostmark, expected: int) -> None:
    """Every message of the round reached FakePostmark; then forget them (flat memory)."""
    got = len(fake.messages)
    fake.reset()
    if got != expected:
        raise BenchError(f"FakePostmark got {got} messages, expected {expected}")
