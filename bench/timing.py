"""Does one answer's timing tell whether an address has an account? ``POST /auth/otp`` over
real HTTP to gunicorn (2 sync workers per instance), with ``POSTMARK_AUTH_DELIVERY``
"background" and "sync" side by side.

Set-up, all on 127.0.0.1: FakePostmark answers every send after 50 ms; the app
(:mod:`bench.timing_app`) has a ``find_user`` that takes 2 ms and knows half the addresses
asked for, with sign-up off, so only known addresses get mail. Throttles are out of reach
and the store is SQLite in a temporary directory.

The client (one ``requests.Session`` per instance; gunicorn's sync workers close every
connection, so each request opens a new one) asks for a code for a fresh address each
time, known and unknown in a seeded random order (each half of a run holds as many of one
as of the other), and times each answer. Blocks of requests alternate between the two
instances, so a slow patch of the machine falls on both. Runs are made with a 60 ms pause
after each answer (background sends of 50 ms finish, as on a quiet server) and back to
back. At the end every known address must have got its code and no unknown one any mail.

The attacker's classifier: "known if the answer took longer than t" (or shorter: both
directions are tried), with t among the times observed. Its threshold and direction are
chosen on the first half of a run and its accuracy is reported on the second half; the
best accuracy on the whole run (in-sample, so above 50% even without a leak) is shown too,
as is P(slower), the chance a random known answer took longer than a random unknown
one (0.5 without a leak).
"""

from __future__ import annotations

import bisect
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from flask_postmark_auth.testing import FakePostmark
from support.processes import GunicornApp, app_env

from .common import BenchError, RunConfig, Section, percentile, progress
from .timing_app import KNOWN_ENV, LOOKUP_SECONDS

#: FakePostmark's answer time for every send.
DELAY = 0.05
#: Pause after each answer in the paced runs.
PAUSE = 0.06
MODES = ("background", "sync")
PAUSES = (PAUSE, 0.0)
WORKERS = 2
#: Target: background's held-out single-request accuracy at most this.
TARGET = 0.60
SEED = 20261202
#: Requests per instance in one block before the other instance's turn.
BLOCK = 40
WARM_UP = 20
#: Every request gives up after this many seconds; the whole benchmark after BUDGET.
TIMEOUT = 10.0
BUDGET = 900.0
APP = "bench.timing_app:create_app()"
SECRET_KEY = "bench-timing-0123456789abcdefghij"
HUGE = 10**12
JSON = {"Accept": "application/json"}


class TimingServer(GunicornApp):
    """:class:`support.processes.GunicornApp` serving :mod:`bench.timing_app` instead of the
    example app, with ``POSTMARK_AUTH_BASE_URL`` naming its own port and no access log."""

    target = APP

    def argv(self) -> list[str]:
        self.env["POSTMARK_AUTH_BASE_URL"] = self.url  # the port this start binds
        return super().argv()

    def log_options(self) -> list[str]:
        return ["--error-logfile", "-", "--log-level", "info"]


@dataclass
class Run:
    """One delivery mode at one pause: the addresses in the order asked, which are known,
    and the answer times (seconds) as they come."""

    mode: str
    pause: float
    addresses: list[str]
    known: list[bool]
    times: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        pace = f"{self.pause * 1000:.0f} ms pause" if self.pause else "no pause"
        return f"{self.mode}, {pace}"

    def split(self) -> tuple[list[tuple[float, bool]], list[tuple[float, bool]]]:
        samples = list(zip(self.times, self.known, strict=True))
        half = len(samples) // 2
        return samples[:half], samples[half:]

    def of(self, known: bool) -> list[float]:
        return [t for t, k in zip(self.times, self.known, strict=True) if k is known]


def plan(mode: str, pause: float, count: int, rng: random.Random) -> Run:
    """``count`` fresh addresses, each half of them half known, in random order. Known and
    unknown ones look alike: which is which is only in the app's list."""
    tag = f"{mode[:2]}{int(pause * 1000)}"
    half = count // 2
    known: list[bool] = []
    for size in (half, count - half):
        part = [i < size // 2 for i in range(size)]
        rng.shuffle(part)
        known += part
    addresses = [f"user-{tag}-{i:04d}@example.com" for i in range(count)]
    return Run(mode, pause, addresses, known)


def best_threshold(samples: Sequence[tuple[float, bool]]) -> tuple[float, bool, float]:
    """The threshold, direction ("known if slower": True) and accuracy of the best
    classifier "known if time > t" (or "<= t") over t among the observed times."""
    ordered = sorted(samples)
    n = len(ordered)
    known_total = sum(k for _, k in ordered)
    # t below every time: everything is "slower", so "known if slower" calls all known.
    slower = known_total / n
    best = (float("-inf"), True, slower) if slower >= 0.5 else (float("-inf"), False, 1 - slower)
    known_below = unknown_below = 0
    i = 0
    while i < n:
        t = ordered[i][0]
        while i < n and ordered[i][0] == t:
            known_below += ordered[i][1]
            unknown_below += not ordered[i][1]
            i += 1
        slower = (known_total - known_below + unknown_below) / n
        for direction, accuracy in ((True, slower), (False, 1 - slower)):
            if accuracy > best[2]:
                best = (t, direction, accuracy)
    return best


def accuracy(samples: Sequence[tuple[float, bool]], threshold: float, slower: bool) -> float:
    right = sum(((t > threshold) is slower) is known for t, known in samples)
    return right / len(samples)


def p_known_slower(known: Sequence[float], unknown: Sequence[float]) -> float:
    """P(a random known answer took longer than a random unknown one), ties counting half
    (the ROC AUC of the answer time as a score)."""
    ordered = sorted(unknown)
    wins = 0.0
    for t in known:
        below = bisect.bisect_left(ordered, t)
        ties = bisect.bisect_right(ordered, t) - below
        wins += below + ties / 2
    return wins / (len(known) * len(ordered))


def ask(session: requests.Session, url: str, email: str) -> float:
    """POST /auth/otp for ``email``; the seconds until the whole answer was in."""
    started = time.perf_counter()
    response = session.post(
        f"{url}/auth/otp", json={"email": email}, headers=JSON, timeout=TIMEOUT
    )
    took = time.perf_counter() - started
    if response.status_code != 202:
        raise BenchError(f"POST /auth/otp answered {response.status_code}: {response.text[:300]}")
    return took


def drive(run: Run, session: requests.Session, url: str, stop: int, deadline: float) -> None:
    """Ask for the run's next addresses up to index ``stop``."""
    for index in range(len(run.times), stop):
        if time.monotonic() > deadline:
            raise BenchError(f"the timing benchmark ran past its {BUDGET:.0f} s budget")
        run.times.append(ask(session, url, run.addresses[index]))
        if run.pause:
            time.sleep(run.pause)


def check_mail(fake: FakePostmark, runs: Sequence[Run], warm_known: int) -> dict[str, int]:
    """Wait for every known address's code and check no unknown address got one; how many
    messages each run's addresses got."""
    expected = warm_known + sum(sum(run.known) for run in runs)
    messages = fake.wait_for_messages(expected, timeout=60)
    time.sleep(0.5)  # a stray message to an unknown address would arrive by now
    messages = list(fake.messages)
    recipients = [m.to for m in messages]
    if len(recipients) != len(set(recipients)):
        raise BenchError("an address got more than one message")
    got = set(recipients)
    sent: dict[str, int] = {}
    for run in runs:
        known = {a for a, k in zip(run.addresses, run.known, strict=True) if k}
        unknown = set(run.addresses) - known
        if known - got:
            raise BenchError(f"{run.label}: {len(known - got)} known addresses got no code")
        if unknown & got:
            raise BenchError(f"{run.label}: {len(unknown & got)} unknown addresses got mail")
        sent[run.label] = len(known & got)
    return sent


def warm_up(session: requests.Session, url: str, addresses: Sequence[str]) -> None:
    for address in addresses:
        ask(session, url, address)
        time.sleep(PAUSE)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def signed_ms(seconds: float) -> str:
    """A difference in ms with its sign ("+0.0", never "-0.0")."""
    return f"{round(seconds * 1000, 1) + 0.0:+.1f}"


def pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def run(config: RunConfig) -> Section:
    count = config.pick(400, 160)
    section = Section("6. Timing over HTTP (gunicorn): known vs unknown address")
    section.add(
        f"POST /auth/otp over HTTP to gunicorn ({WORKERS} sync workers per delivery mode), "
        f"{count} requests per run,",
        "each to a fresh address, half known and half unknown in seeded random order; "
        f"find_user takes {LOOKUP_SECONDS * 1000:.0f} ms",
        "and sign-up is off (unknown addresses get no mail); FakePostmark answers after "
        f"{DELAY * 1000:.0f} ms.",
        f"Blocks of {BLOCK} requests alternate between the two modes. Accuracy: of the best "
        "classifier",
        "'known if slower (or faster) than t', t chosen on a run's first half and scored on "
        "its second",
        "(a coin: 50%); in-sample: the best t on the whole run.",
        "",
    )
    rng = random.Random(SEED)
    runs = {(mode, pause): plan(mode, pause, count, rng) for pause in PAUSES for mode in MODES}
    warm = {
        mode: [f"warm-{mode[:2]}-{i:02d}@example.com" for i in range(WARM_UP)] for mode in MODES
    }
    warm_known = [a for mode in MODES for a in warm[mode][::2]]
    known = [a for r in runs.values() for a, k in zip(r.addresses, r.known, strict=True) if k]
    deadline = time.monotonic() + BUDGET
    with (
        tempfile.TemporaryDirectory(prefix="bench-timing-") as tmp,
        FakePostmark(delay=DELAY) as fake,
    ):
        known_file = os.path.join(tmp, "known.txt")
        with open(known_file, "w", encoding="utf-8") as out:
            out.write("\n".join([*warm_known, *known]) + "\n")
        servers: dict[str, TimingServer] = {}
        sessions: dict[str, requests.Session] = {}
        try:
            for mode in MODES:
                settings: dict[str, object] = {
                    "STORE": f"sqlite:///{tmp}/{mode}.db",
                    "DELIVERY": mode,
                    "DEV_OUTBOX": False,
                    "ALLOW_SIGNUP": False,
                    "RESEND_INTERVAL": 0,
                    "EMAILS_PER_HOUR": HUGE,
                    "IP_REQUESTS_PER_HOUR": HUGE,
                }
                env = app_env(fake, settings, {"SECRET_KEY": SECRET_KEY, KNOWN_ENV: known_file})
                server = TimingServer(f"timing-{mode}", env, Path(tmp), workers=WORKERS)
                servers[mode] = server.start()
                sessions[mode] = requests.Session()
                progress(f"timing: {mode} instance up at {server.url}")
            for mode in MODES:
                warm_up(sessions[mode], servers[mode].url, warm[mode])
            for pause in PAUSES:
                for start in range(0, count, BLOCK):
                    order = MODES if (start // BLOCK) % 2 == 0 else MODES[::-1]
                    for mode in order:
                        stop = min(start + BLOCK, count)
                        drive(runs[mode, pause], sessions[mode], servers[mode].url, stop, deadline)
                summary = ", ".join(
                    f"{mode} {ms(statistics.median(runs[mode, pause].times))} ms" for mode in MODES
                )
                pace = f"{pause * 1000:.0f} ms pause" if pause else "no pause"
                progress(f"timing: runs with {pace} done, p50 {summary}")
            sent = check_mail(fake, list(runs.values()), len(warm_known))
        finally:
            for session in sessions.values():
                session.close()
            for server in servers.values():
                server.stop()

    rows: list[list[str]] = []
    held_out: dict[tuple[str, float], float] = {}
    for key, r in runs.items():
        first, second = r.split()
        threshold, slower, _ = best_threshold(first)
        held_out[key] = accuracy(second, threshold, slower)
        known_times, unknown_times = r.of(True), r.of(False)
        rows.append(
            [
                r.label,
                str(len(r.times)),
                ms(statistics.median(known_times)),
                ms(percentile(known_times, 90)),
                ms(statistics.median(unknown_times)),
                ms(percentile(unknown_times, 90)),
                signed_ms(statistics.median(known_times) - statistics.median(unknown_times)),
                f"{p_known_slower(known_times, unknown_times):.2f}",
                pct(best_threshold(list(zip(r.times, r.known, strict=True)))[2]),
                pct(held_out[key]),
                f"{sent[r.label]}/{sum(r.known)}",
            ]
        )
    section.table(
        [
            "delivery, pace",
            "requests",
            "known p50",
            "p90",
            "unknown p50",
            "p90",
            "gap p50",
            "P(slower)",
            "in-sample",
            "held-out",
            "mail",
        ],
        rows,
    )
    section.add(
        "Times in ms. P(slower): the chance a random known answer took longer than a random "
        "unknown one",
        "(0.50 without a leak). mail: codes FakePostmark got for the run's known addresses "
        "(unknown: none).",
        "",
    )
    background = held_out["background", PAUSE]
    sync = held_out["sync", PAUSE]
    section.add(
        f"Control: sync's held-out accuracy is {pct(sync)}"
        + (
            ": the method sees a leak of one Postmark call."
            if sync >= 0.9
            else ": the method missed the sync leak; read the background rows with care."
        )
    )
    section.check(
        f"background: single-request accuracy <= {pct(TARGET)}",
        background <= TARGET,
        f"held-out {pct(background)} with a {PAUSE * 1000:.0f} ms pause, "
        f"{pct(held_out['background', 0.0])} back to back; sync {pct(sync)}",
    )
    gap = {
        mode: statistics.median(runs[mode, PAUSE].of(True))
        - statistics.median(runs[mode, PAUSE].of(False))
        for mode in MODES
    }
    section.summary = (
        f"Over HTTP to gunicorn, a known address's POST /auth/otp answered "
        f"{ms(gap['sync'])} ms later than an unknown one's (median) with sync delivery, so "
        f"one request told them apart {pct(sync)} of the time; with background delivery the "
        f"gap was {signed_ms(gap['background'])} ms and one request's accuracy "
        f"{pct(background)} (target <= {pct(TARGET)}: "
        f"{'PASS' if background <= TARGET else 'FAIL'})."
    )
    return section
