"""Run every benchmark and print every table: ``python -m bench [--quick] [--write]``."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from importlib import metadata

from . import connector, growth, http_load, latency, login_cycle, records, startup, stores, timing
from .common import REDIS_HOST, REDIS_PORT, RunConfig, Section, progress, redis_answers, table

BENCHMARKS: dict[str, Callable[[RunConfig], Section]] = {
    "connector": connector.run,
    "login_cycle": login_cycle.run,
    "stores": stores.run,
    "latency": latency.run,
    "growth": growth.run,
    "timing": timing.run,
    "http_load": http_load.run,
    "records": records.run,
    "startup": startup.run,
}
PACKAGES = (
    "flask",
    "flask-login",
    "requests",
    "postmarker",
    "flask-security-too",
    "redis",
    "flask-postmark-auth",
    "flask-sqlalchemy",
    "sqlalchemy",
    "werkzeug",
    "urllib3",
)
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of flask_postmark_auth (all traffic on 127.0.0.1). Exits 1 "
        "when a benchmark crashed; a missed target is a result (FAIL), not a crash.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller loops")
    parser.add_argument("--write", action="store_true", help="also write bench/RESULTS.md")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (repeatable)",
    )
    args = parser.parse_args(argv)
    config = RunConfig(quick=args.quick)
    started = time.perf_counter()
    out: list[str] = []

    def emit(text: str) -> None:
        print(text, flush=True)
        out.append(text)

    emit(header(sys.argv[1:] if argv is None else argv, config))
    sections: list[Section] = []
    crashed = False
    for name, bench in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        progress(f"running {name}")
        began = time.perf_counter()
        try:
            section = bench(config)
        except Exception:
            crashed = True
            section = Section(f"{name}: CRASHED")
            section.add(*traceback.format_exc().rstrip().splitlines())
            section.summary = f"The {name} benchmark crashed."
        section.seconds = time.perf_counter() - began
        section.load = os.getloadavg()[0]
        sections.append(section)
        emit(section.render())

    wall = time.perf_counter() - started
    targets = [t for s in sections for t in s.targets]
    passed = sum(t.passed for t in targets)
    lines = ["=" * 99, "Targets", "=" * 99, *(t.line() for t in targets)]
    lines += ["", f"{passed} of {len(targets)} targets passed."]
    lines += table(
        ["benchmark", "seconds"], [[s.title[:60], f"{s.seconds:.1f}"] for s in sections]
    )
    lines += ["", f"Total wall time: {wall:.1f} s ({wall / 60:.1f} min); load at end: {_load()}."]
    emit("\n".join(lines))

    if args.write:
        write_results(out, sections, wall, config)
        progress(f"wrote {RESULTS}")
    return 1 if crashed else 0


def header(argv: list[str], config: RunConfig) -> str:
    python = sys.executable
    if python.startswith(os.getcwd() + os.sep):
        python = os.path.relpath(python)
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    lines = [
        "=" * 99,
        "flask_postmark_auth benchmarks",
        "=" * 99,
        f"date:     {datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine:  {_machine()}",
        f"python:   {platform.python_implementation()} {platform.python_version()} ({python})",
        f"packages: {versions}",
        f"load:     {_load()} (1/5/15-min load average at start; other work on the machine "
        "skews results)",
        f"redis:    {_redis_server()}",
        f"code:     {_git()}",
        f"command:  {shlex.join([python, '-m', 'bench', *argv])}",
        f"mode:     {'quick (smoke test)' if config.quick else 'full'}, "
        f"{config.rounds} rounds per comparison",
        "",
    ]
    return "\n".join(lines)


def _load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _machine() -> str:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    model = "unknown CPU"
    memory = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as info:
            kib = int(info.readline().split()[1])
            memory = f", {kib / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    return (
        f"{cores} cores ({usable} usable), {model}{memory}, "
        f"{platform.system()} {platform.release()}"
    )


def _redis_server() -> str:
    where = f"{REDIS_HOST}:{REDIS_PORT}"
    if not redis_answers():
        return f"none answering at {where} (Redis rows skipped)"
    try:
        import redis

        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        version = client.info("server").get("redis_version", "?")
        client.close()
    except Exception as exc:
        return f"answering at {where} (version unknown: {exc})"
    return f"server {version} at {where}"


def _git() -> str:
    """The commit benchmarked, and whether the package had uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "flask_postmark_auth"],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    state = "with uncommitted changes in flask_postmark_auth/" if dirty else "clean"
    return f"git {commit}, package {state}"


def write_results(out: list[str], sections: list[Section], wall: float, config: RunConfig) -> None:
    targets = [t for s in sections for t in s.targets]
    failed = [t.name for t in targets if not t.passed]
    verdict = (
        f"all {len(targets)} targets passed"
        if not failed
        else f"{len(targets) - len(failed)} of {len(targets)} targets passed; failed: "
        + "; ".join(failed)
    )
    summary = " ".join(
        [
            f"Summary ({'quick' if config.quick else 'full'} run, {wall / 60:.1f} min wall):",
            *(s.summary for s in sections if s.summary),
            f"In all, {verdict}.",
        ]
    )
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `python -m bench --write`; the block below is the run's full output.",
            "",
            summary,
            "",
            "```text",
            *out,
            "```",
            "",
        ]
    )
    with open(RESULTS, "w", encoding="utf-8") as results:
        results.write(text)


if __name__ == "__main__":
    sys.exit(main())
