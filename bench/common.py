"""What every benchmark shares: run sizes, alternating rounds, statistics, tables, targets."""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from support.redis_server import ping

#: Where a Redis server is looked for; the benchmarks never start one.
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


class BenchError(RuntimeError):
    """A contestant answered something other than what a working sign-in answers."""


@dataclass(frozen=True)
class RunConfig:
    """How big a run is: the full one, or ``--quick`` for a smoke test."""

    quick: bool = False

    @property
    def rounds(self) -> int:
        """Alternating rounds per comparison."""
        return 2 if self.quick else 7

    def pick(self, full: int, quick: int) -> int:
        """``full`` in a full run, ``quick`` in a quick one."""
        return quick if self.quick else full


@dataclass(frozen=True)
class Spread:
    """Median, minimum and maximum of one contestant's per-round results."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Target:
    """One performance target and whether this run met it."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}  ({self.detail})"


@dataclass
class Section:
    """One benchmark's printed output, its targets and a sentence for the summary."""

    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    summary: str = ""
    seconds: float = 0.0
    #: The 1-minute load average when the benchmark ended (2 means both cores busy).
    load: float = 0.0

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> None:
        self.lines.extend(table(headers, rows, left))

    def check(self, name: str, passed: bool, detail: str) -> Target:
        """Record a target and print its PASS/FAIL line."""
        target = Target(name, passed, detail)
        self.targets.append(target)
        self.lines.append(target.line())
        return target

    def render(self) -> str:
        rule = "=" * 99
        head = f"{self.title}  [{self.seconds:.1f} s, load {self.load:.2f} at end]"
        return "\n".join([rule, head, rule, *self.lines, ""])


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i < left else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def rate(value: float) -> str:
    """A rate for a table: thousands separated, one decimal below 100."""
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def progress(message: str) -> None:
    """A progress note on stderr: not part of the results."""
    print(f"  .. {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sample:
    """One round of one contestant: items per second of wall time, and per second of this
    process's CPU time (all its threads, FakePostmark's included). The CPU figure barely
    moves when other work competes for the cores, so it cross-checks the wall figure."""

    wall: float
    cpu: float


@dataclass(frozen=True)
class Result:
    """A contestant's rounds, summarized."""

    wall: Spread
    cpu: Spread


def measure(count: int, run: Callable[[], object]) -> Sample:
    """Rates of ``count`` items over one call of ``run``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Sample(count / wall, count / max(cpu, 1e-9))


Contestant = tuple[str, Callable[[], Sample]]


def alternate(contestants: Sequence[Contestant], rounds: int, label: str) -> dict[str, Result]:
    """Run every contestant once per round, the starting one rotated each round, so a
    slow patch of the machine falls on all of them alike."""
    results: dict[str, list[Sample]] = {name: [] for name, _ in contestants}
    for number in range(rounds):
        start = number % len(contestants)
        order = [*contestants[start:], *contestants[:start]]
        for name, run in order:
            gc.collect()
            results[name].append(run())
        summary = ", ".join(f"{name} {rate(results[name][-1].wall)}" for name, _ in contestants)
        progress(f"{label} round {number + 1}/{rounds}: {summary}")
    return {
        name: Result(Spread.of([s.wall for s in samples]), Spread.of([s.cpu for s in samples]))
        for name, samples in results.items()
    }


def rate_headers(base: str) -> list[str]:
    """Column heads matching :func:`rate_cells`."""
    return ["median/s", "min/s", "max/s", f"x {base}", f"x {base} CPU"]


def rate_cells(result: Result, base: Result) -> list[str]:
    """Wall-time median, min and max, then the ratio of medians to ``base`` by wall time
    and by CPU time."""
    return [
        rate(result.wall.median),
        rate(result.wall.low),
        rate(result.wall.high),
        ratio(result.wall.median / base.wall.median),
        ratio(result.cpu.median / base.cpu.median),
    ]


CPU_NOTE = (
    "Rates are per wall-clock second. 'CPU' ratios divide by this process's CPU time "
    "instead (all threads):\nother load on the machine barely moves them, so they "
    "cross-check the wall ratios. Targets use the wall ratios."
)


def percentile(values: Sequence[float], pct: int) -> float:
    """The ``pct``-th percentile (inclusive method: within the observed range)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/status (VmRSS)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def mib(size: float) -> str:
    return f"{size / 2**20:,.1f}"


def redis_answers(host: str = REDIS_HOST, port: int = REDIS_PORT, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING (without a password) at ``host:port``."""
    return ping(host, port, timeout)


def clamp(value: float, low: int, high: int) -> int:
    """``value`` rounded and kept within ``low..high`` (bounded loop sizes)."""
    if math.isnan(value):
        return low
    return max(low, min(high, round(value)))
