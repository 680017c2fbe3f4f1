"""Login-cycle throughput: this package beside a bare Flask + Flask-Login floor and
Flask-Security-Too's unified sign-in, then a cProfile of this package's cycle.

Same store type for all three (a SQLite file in a temp dir, WAL, ``synchronous=NORMAL``),
CSRF off for all three, mail to one FakePostmark over kept-alive HTTP.
"""

from __future__ import annotations

import functools
import statistics
import tempfile

from flask_postmark_auth.testing import FakePostmark

from . import profiling
from .apps import POOL_SIZE, floor_app, package_app, pool, security_app
from .common import (
    CPU_NOTE,
    RunConfig,
    Section,
    alternate,
    ms,
    progress,
    rate,
    rate_cells,
    rate_headers,
    ratio,
)
from .cycle import STEPS, CycleRunner

#: Target: this package's cycles/s against the floor's.
TARGET = 0.8
ROUND_SECONDS = 1.5
PROFILE_CYCLES = 300
TOP = 15


def run(config: RunConfig) -> Section:
    section = Section("2. Login-cycle throughput (POST code, read mail, verify, logout)")
    section.add(
        "Driven through Flask's test client; mail sent inline to FakePostmark (in this process,",
        "on its own thread) over one kept-alive requests.Session per app, trust_env=False.",
        "Store: a SQLite file per contestant (WAL, synchronous=NORMAL). CSRF off for all three.",
        f"Each contestant signs in the same {POOL_SIZE} addresses in turn: users created "
        "beforehand (this package's",
        "built-in users by a warm-up that signs each in once, which also sizes the rounds to "
        f"~{ROUND_SECONDS} s);",
        f"{config.rounds} alternating rounds, start rotated each round.",
        "",
    )
    with tempfile.TemporaryDirectory(prefix="bench-login-") as tmp, FakePostmark() as fake:
        runners = [CycleRunner(floor_app(fake, tmp, pool("floor")), fake, pool("floor"))]
        try:
            runners.append(CycleRunner(security_app(fake, tmp, pool("fst")), fake, pool("fst")))
        except ImportError as exc:
            section.add(f"Flask-Security-Too: skipped ({exc}); install the bench extra.", "")
        package, _ = package_app(fake, f"sqlite:///{tmp}/auth.db")
        runners.append(CycleRunner(package, fake, pool("pkg")))
        high = config.pick(5000, 300)
        sizes = {r.flow.name: r.warm_up(ROUND_SECONDS, 10, high) for r in runners}
        results = alternate(
            [(r.flow.name, functools.partial(r.rate, sizes[r.flow.name])) for r in runners],
            config.rounds,
            "login cycle",
        )

        floor = results[runners[0].flow.name]
        section.table(
            ["contestant", "cycles/round", *rate_headers("floor")],
            [
                [r.flow.name, str(sizes[r.flow.name]), *rate_cells(results[r.flow.name], floor)]
                for r in runners
            ],
        )
        section.add(*CPU_NOTE.splitlines())
        section.add("", "Median milliseconds per step, over every timed cycle:")
        section.table(
            ["contestant", *STEPS, "cycle"],
            [
                [
                    r.flow.name,
                    *(ms(statistics.median(r.steps[s])) for s in STEPS),
                    ms(statistics.median(_cycle_times(r))),
                ]
                for r in runners
            ],
        )
        mine = results[package.name]
        share = mine.wall.median / floor.wall.median
        passed = share >= TARGET
        section.add("")
        section.check(
            f"this package >= {TARGET} x floor (cycles/s, medians)",
            passed,
            f"{ratio(share)}: {rate(mine.wall.median)} vs {rate(floor.wall.median)} cycles/s; "
            f"by CPU time {ratio(mine.cpu.median / floor.cpu.median)}",
        )
        summary = (
            f"A full login cycle on SQLite ran at {rate(mine.wall.median)} cycles/s, "
            f"{ratio(share)} the bare Flask + Flask-Login floor ({rate(floor.wall.median)}/s; "
            f"target {TARGET}x: {'PASS' if passed else 'FAIL'}; by CPU time "
            f"{ratio(mine.cpu.median / floor.cpu.median)})"
        )
        if len(runners) == 3:
            fst = results[runners[1].flow.name].wall.median
            summary += f" and {mine.wall.median / fst:.1f}x Flask-Security-Too's unified sign-in"
            summary += f" ({rate(fst)}/s)"
        section.summary = summary + "."

        cycles = config.pick(PROFILE_CYCLES, 60)
        progress(f"profiling {cycles} cycles of {package.name}")
        lines, sentence = profile_lines(runners[-1], cycles)
        section.add("", *lines)
        section.summary += " " + sentence
    return section


def _cycle_times(runner: CycleRunner) -> list[float]:
    return [sum(parts) for parts in zip(*(runner.steps[s] for s in STEPS), strict=True)]


# -- the profile ----------------------------------------------------------------------------


def profile_lines(runner: CycleRunner, cycles: int) -> tuple[list[str], str]:
    """cProfile ``cycles`` cycles of ``runner``: the tables, and a sentence for the summary."""
    result = profiling.profile(lambda: runner.run(cycles, record=False))
    lines = [
        f"Profile of this package's cycle: cProfile over {cycles} cycles (SQLite store), "
        f"{result.wall:.2f} s wall, {result.total:.2f} s profiled (main thread only).",
        "cProfile slows every Python call: read shares, not absolute times. "
        "'/cycle' = divided by the cycle count.",
        "",
        f"Top {TOP} functions inside flask_postmark_auth by cumulative time:",
        *result.package_functions(TOP, cycles, "cycle"),
        "",
        "Largest calls from the package into other code (cumulative, per call site):",
        *result.calls_out_table(12, cycles, "cycle"),
        "",
        "Own time by library (where the cycle's time is actually spent; Werkzeug's share is "
        "mostly the test client):",
        *result.libraries(12, cycles, "cycle"),
        "",
        "Top 10 functions by own time, all code:",
        *result.hottest(10, cycles, "cycle"),
    ]
    edges = result.calls_out(3)
    sentence = (
        "In the profile of its cycle the costliest calls out of the package (cumulative; the "
        "HTTP call includes the wait for FakePostmark's answer) were "
    ) + (
        ", ".join(
            f"{profiling.where(callee)} from {caller[2]}() ({ct / result.total * 100:.0f}%)"
            for caller, callee, _, ct in edges
        )
    )
    return lines, sentence + "."
