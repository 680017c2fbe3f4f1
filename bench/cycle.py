"""The login-cycle driver shared by the login-cycle and store benchmarks.

A cycle: request a code by JSON, read it from the message FakePostmark received, verify it,
sign out; all through Flask's test client, with the mail sent synchronously over HTTP.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from flask.testing import FlaskClient

from flask_postmark_auth.testing import FakePostmark

from .apps import Flow
from .common import BenchError, Sample, clamp, measure, progress

CODE = re.compile(r"\b(\d{6})\b")
#: The parts of a cycle, as timed.
STEPS = ("request code", "read mail", "verify", "logout")


@dataclass
class CycleRunner:
    """Runs ``flow``'s cycle over ``emails`` in turn and keeps each step's durations."""

    flow: Flow
    fake: FakePostmark
    emails: list[str]
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    _client: FlaskClient | None = None
    _next: int = 0

    @property
    def client(self) -> FlaskClient:
        if self._client is None:
            self._client = self.flow.app.test_client()
        return self._client

    def _post(self, url: str, body: dict[str, object], status: int) -> None:
        response = self.client.post(url, json=body)
        if response.status_code != status:
            raise BenchError(
                f"{self.flow.name}: POST {url} answered {response.status_code}, not {status}: "
                f"{response.get_data(as_text=True)[:300]}"
            )

    def read_code(self, email: str) -> str:
        """The code in the last message FakePostmark accepted, which must be to ``email``."""
        if not self.fake.messages:
            raise BenchError(f"{self.flow.name}: no message reached FakePostmark")
        message = self.fake.messages[-1]
        if message.to != email:
            raise BenchError(f"{self.flow.name}: last message went to {message.to}, not {email}")
        match = CODE.search(message.text_body or "")
        if match is None:
            raise BenchError(f"{self.flow.name}: no code in {message.text_body!r}")
        return match.group(1)

    def run(self, cycles: int, *, record: bool = True) -> None:
        """Run ``cycles`` cycles, timing each step. FakePostmark's records are cleared
        afterwards, so memory stays flat however many rounds run."""
        flow = self.flow
        clock = time.perf_counter
        send, read, verify, logout = (self.steps[s] for s in STEPS)
        for _ in range(cycles):
            email = self.emails[self._next % len(self.emails)]
            self._next += 1
            t0 = clock()
            self._post(flow.send_url, flow.send_body(email), flow.send_status)
            t1 = clock()
            code = self.read_code(email)
            t2 = clock()
            self._post(flow.verify_url, flow.verify_body(email, code), 200)
            t3 = clock()
            self._post(flow.logout_url, {}, 200)
            t4 = clock()
            if record:
                send.append(t1 - t0)
                read.append(t2 - t1)
                verify.append(t3 - t2)
                logout.append(t4 - t3)
        self.fake.reset()

    def rate(self, cycles: int) -> Sample:
        """Cycles per second over ``cycles`` cycles."""
        return measure(cycles, lambda: self.run(cycles))

    def warm_up(self, round_seconds: float, low: int, high: int) -> int:
        """Sign every address in once (first sign-ins, template compiling, connections),
        then return how many cycles fill about ``round_seconds`` at the rate seen."""
        count = len(self.emails)
        speed = measure(count, lambda: self.run(count, record=False)).wall
        cycles = clamp(speed * round_seconds, low, high)
        progress(f"{self.flow.name}: warm-up {speed:,.0f} cycles/s -> {cycles} per round")
        return cycles
