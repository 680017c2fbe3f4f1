"""Start-up: what importing the package and ``init_app`` cost a worker or the CLI, beside
the floor (Flask and Flask-Login, which any sign-in needs).

Import: ``python -X importtime -c "import flask_postmark_auth"`` in a fresh interpreter
(:data:`RUNS` times; the median of the cumulative microseconds of the top-level module),
against the same for ``import flask, flask_login``; the package's own share is the first
minus the second. The heaviest modules it pulls in are listed, by their own time.

``init_app``: a fresh interpreter makes one app and times ``PostmarkAuth().init_app(app)``
(the first, which compiles templates and checks the config) and the median of further ones
on new apps, against ``LoginManager().init_app(app)``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from .common import RunConfig, Section

RUNS = 7

_INIT = r"""
import json, statistics, time
from flask import Flask
from flask_login import LoginManager
from flask_postmark_auth import PostmarkAuth

def app():
    made = Flask("bench_startup")
    made.config.update(SECRET_KEY="bench-secret-key-of-enough-length-0123456789", TESTING=True)
    return made

def timed(setup):
    began = time.perf_counter()
    setup(app())
    return time.perf_counter() - began

first = timed(lambda a: PostmarkAuth().init_app(a))
again = [timed(lambda a: PostmarkAuth().init_app(a)) for _ in range(20)]
floor = [timed(lambda a: LoginManager().init_app(a)) for _ in range(20)]
print(json.dumps({"first": first, "again": statistics.median(again),
                  "floor": statistics.median(floor)}))
"""


def import_times(statement: str) -> tuple[int, dict[str, int]]:
    """One fresh interpreter's ``-X importtime`` of ``statement``: the cumulative
    microseconds of all top-level imports, and each module's own microseconds."""
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    total, own = 0, {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:") :].split("|")]
        if not parts[0].isdigit():
            continue
        self_us, cumulative, name = int(parts[0]), int(parts[1]), parts[2]
        own[name.strip()] = self_us
        if not name.startswith(" "):  # a top-level import
            total += cumulative
    return total, own


def run(config: RunConfig) -> Section:
    section = Section("9. Start-up: import time and init_app")
    runs = config.pick(RUNS, 3)
    package = [import_times("import flask_postmark_auth") for _ in range(runs)]
    floor = [import_times("import flask, flask_login") for _ in range(runs)]
    mine = statistics.median(t for t, _ in package) / 1000
    base = statistics.median(t for t, _ in floor) / 1000
    floor_modules = set(floor[0][1])
    extra = sorted(
        ((us, name) for name, us in package[0][1].items() if name not in floor_modules),
        reverse=True,
    )[:8]
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", _INIT], capture_output=True, text=True, check=True
    )
    init = json.loads(done.stdout)
    section.add(
        f"python -X importtime in a fresh interpreter, median of {runs}; init_app in a fresh "
        "interpreter (first call, then the median of 20 on new apps).",
        "",
    )
    section.table(
        ["what", "this package ms", "floor ms", "package's own ms"],
        [
            ["import", f"{mine:.1f}", f"{base:.1f}", f"{mine - base:.1f}"],
            [
                "init_app (first)",
                f"{init['first'] * 1000:.1f}",
                f"{init['floor'] * 1000:.2f}",
                f"{(init['first'] - init['floor']) * 1000:.1f}",
            ],
            [
                "init_app (again)",
                f"{init['again'] * 1000:.1f}",
                f"{init['floor'] * 1000:.2f}",
                f"{(init['again'] - init['floor']) * 1000:.1f}",
            ],
        ],
    )
    section.add("", "Modules the package's import adds beyond the floor's, by own time (one run):")
    section.table(["module", "own ms"], [[name, f"{us / 1000:.1f}"] for us, name in extra])
    section.summary = (
        f"Importing the package took {mine:.0f} ms ({mine - base:.0f} ms beyond Flask and "
        f"Flask-Login's {base:.0f} ms); init_app took {init['first'] * 1000:.0f} ms the first "
        f"time in a process and {init['again'] * 1000:.1f} ms after."
    )
    return section
