"""Hostile load (issue 7, item 5), in process through the Flask test client on the stores
several workers share (SQLite, Redis): a flood of sends from one IP is cut off at
``IP_REQUESTS_PER_HOUR``, and a flood of wrong guesses never signs anyone in."""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask

from flask_postmark_auth import signals
from flask_postmark_auth.state import state
from flask_postmark_auth.testing import code_in, record_messages
from tests.helpers import AppFactory

pytestmark = pytest.mark.reliability

THREADS = 8


def backend(uri: str) -> str:
    return uri.partition(":")[0]


def test_2000_sends_from_one_ip_are_cut_off_at_the_ip_limit(
    make_app: AppFactory, shared_store_uri: str, report: Callable[[str], None]
) -> None:
    sends, limit = 2000, 100
    app = make_app(STORE=shared_store_uri, IP_REQUESTS_PER_HOUR=limit)
    rng = random.Random(2000)
    jobs = [
        (
            "/auth/otp" if rng.random() < 0.5 else "/auth/magic-link",
            f"{rng.getrandbits(48):012x}@{rng.choice(['example.com', 'example.org'])}",
        )
        for _ in range(sends)
    ]

    def send(batch: list[tuple[str, str]]) -> list[tuple[str, str, int, bytes, str | None]]:
        client = app.test_client()
        out = []
        for route, address in batch:
            response = client.post(route, json={"email": address})
            out.append(
                (
                    route,
                    address,
                    response.status_code,
                    # The number a link's waiting page shows is random: left out.
                    re.sub(rb'"number":\d+,', b"", response.get_data()),
                    response.headers.get("Retry-After"),
                )
            )
        return out

    started = time.monotonic()
    try:
        with record_messages(app) as outbox, ThreadPoolExecutor(THREADS) as pool:
            answers = [
                a
                for batch in pool.map(send, [jobs[i::THREADS] for i in range(THREADS)])
                for a in batch
            ]
    finally:
        state(app).store.close()
    wall = time.monotonic() - started
    statuses = Counter(status for _, _, status, _, _ in answers)
    assert statuses == {202: limit, 429: sends - limit}, statuses
    refused = [a for a in answers if a[2] == 429]
    assert len({body for _, _, _, body, _ in refused}) == 1  # one body for every refusal
    assert len({retry for _, _, _, _, retry in refused}) == 1
    assert 3500 <= int(refused[0][4] or 0) <= 3600
    for route in ("/auth/otp", "/auth/magic-link"):  # and one body per method for acceptance
        assert len({a[3] for a in answers if a[2] == 202 and a[0] == route}) == 1
    accepted = {address for _, address, status, _, _ in answers if status == 202}
    assert sorted(m.to for m in outbox) == sorted(accepted)
    report(
        f"hostile load ({backend(shared_store_uri)}): {sends} sends for random addresses from "
        f"one IP by {THREADS} threads in {wall:.1f} s ({sends / wall:.0f}/s): {statuses[202]} "
        f"accepted (= IP_REQUESTS_PER_HOUR), {statuses[429]} answered 429 with one body, "
        f"{len(outbox)} emails"
    )


def test_10000_wrong_guesses_never_sign_anyone_in(
    make_app: AppFactory, shared_store_uri: str, report: Callable[[str], None]
) -> None:
    addresses, per_address, max_attempts = 200, 50, 5
    app: Flask = make_app(
        STORE=shared_store_uri, IP_REQUESTS_PER_HOUR=1_000_000, OTP_MAX_ATTEMPTS=max_attempts
    )
    emails = [f"target-{n}@example.com" for n in range(addresses)]
    client = app.test_client()
    with record_messages(app) as outbox:
        for email in emails:
            assert client.post("/auth/otp", json={"email": email}).status_code == 202
    codes = {m.to: code_in(m) for m in outbox}
    assert len(codes) == addresses

    rng = random.Random(10_000)
    guesses = []
    for email in emails:
        for _ in range(per_address):
            guess = codes[email]
            while guess == codes[email]:
                guess = f"{rng.randrange(1_000_000):06d}"
            guesses.append((email, guess))
    rng.shuffle(guesses)  # each address's guesses arrive from several threads at once

    signed_in: list[Any] = []

    def spy(sender: Flask, **kwargs: Any) -> None:
        signed_in.append(kwargs)

    def guess_all(batch: list[tuple[str, str]]) -> list[tuple[str, int, Any]]:
        guesser = app.test_client()
        out = []
        for email, guess in batch:
            response = guesser.post("/auth/otp/verify", json={"email": email, "code": guess})
            out.append((email, response.status_code, response.json))
        return out

    started = time.monotonic()
    try:
        with signals.user_signed_in.connected_to(spy, app), ThreadPoolExecutor(THREADS) as pool:
            answers = [
                a
                for batch in pool.map(guess_all, [guesses[i::THREADS] for i in range(THREADS)])
                for a in batch
            ]
        wall = time.monotonic() - started
        statuses = Counter(status for _, status, _ in answers)
        assert statuses == {400: addresses * per_address}, statuses
        assert signed_in == []
        left: dict[str, list[int]] = defaultdict(list)
        for email, _, body in answers:
            assert body["error"] == "invalid_code"
            left[email].append(body["attempts_left"])
        expected = [*range(max_attempts - 1, -1, -1), *[0] * (per_address - max_attempts)]
        for email in emails:
            assert sorted(left[email], reverse=True) == expected, email
        # The right code is void now too, and nobody got an account.
        for email in emails:
            answer = client.post("/auth/otp/verify", json={"email": email, "code": codes[email]})
            assert answer.status_code == 400
            assert answer.json is not None
            assert answer.json["attempts_left"] == 0
            assert state(app).store.get(f"user:{email}") is None
        assert signed_in == []
    finally:
        state(app).store.close()
    report(
        f"hostile load ({backend(shared_store_uri)}): {len(answers)} wrong guesses over "
        f"{addresses} addresses by {THREADS} threads in {wall:.1f} s ({len(answers) / wall:.0f}/s)"
        f": 0 sign-ins, attempts_left {max_attempts - 1}..0 then 0 for every address, "
        "the right codes void afterwards"
    )
