"""cProfile tables that point at where flask_postmark_auth spends its time.

``profile(run)`` profiles one call (this thread only: FakePostmark's threads are not in
it); ``Profile.tables`` turns the result into plain-text tables, per unit of work (a cycle,
a batch). cProfile slows every Python call, so shares matter more than absolute times.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flask_postmark_auth

from .common import table

PACKAGE_DIR = os.path.dirname(os.path.abspath(flask_postmark_auth.__file__))
ROOT = os.path.dirname(PACKAGE_DIR)
STDLIB = os.path.dirname(os.__file__)
SITE = os.sep + "site-packages" + os.sep

#: pstats' key for a function: (file name, line, name); "~" for built-ins.
Key = tuple[str, int, str]


def in_package(key: Key) -> bool:
    return key[0].startswith(PACKAGE_DIR + os.sep)


def where(key: Key) -> str:
    """A short name for a function: path relative to the repo or site-packages."""
    filename, line, name = key
    if filename == "~":
        return name
    if SITE in filename:
        filename = filename.split(SITE, 1)[1]
    else:
        for base in (ROOT, *sys.path):
            if base and filename.startswith(base + os.sep):
                filename = os.path.relpath(filename, base)
                break
    return f"{filename}:{line}({name})"


def library(key: Key) -> str:
    """Which library a function (and so its own time) belongs to."""
    filename, _, name = key
    if filename == "~":
        if "sqlite3" in name:
            return "sqlite3 (C)"
        if "socket" in name or "select" in name or "poll" in name:
            return "sockets / select (C)"
        if "lock" in name:
            return "thread locks (C)"
        if "re.Pattern" in name:
            return "re (C)"
        return "other built-ins (C)"
    if in_package(key):
        return "flask_postmark_auth"
    if SITE in filename:
        return filename.split(SITE, 1)[1].split(os.sep, 1)[0].removesuffix(".py")
    if filename.startswith(STDLIB + os.sep):
        module = os.path.relpath(filename, STDLIB).split(os.sep, 1)[0]
        return f"stdlib {module.removesuffix('.py')}"
    if filename.startswith(os.path.join(ROOT, "bench") + os.sep):
        return "bench driver"
    return "other"


@dataclass
class Profile:
    """One profiled run: its pstats entries, profiled total and wall seconds."""

    entries: dict[Key, tuple[Any, ...]]
    total: float
    wall: float

    def package_functions(self, top: int, units: int, unit: str) -> list[str]:
        """Functions inside the package, by cumulative time."""
        own = [(key, value) for key, value in self.entries.items() if in_package(key)]
        own.sort(key=lambda item: item[1][3], reverse=True)
        rows = [
            [
                f"{rank:2d}. {where(key)}",
                f"{calls / units:g}",
                f"{cumtime / units * 1000:.3f}",
                f"{cumtime / self.total * 100:.1f}%",
                f"{tottime / units * 1000:.3f}",
            ]
            for rank, (key, (_, calls, tottime, cumtime, _)) in enumerate(own[:top], start=1)
        ]
        return table(
            ["function", f"calls/{unit}", f"cum ms/{unit}", "cum %", f"own ms/{unit}"], rows
        )

    def calls_out(self, top: int) -> list[tuple[Key, Key, float, float]]:
        """(package caller, outside callee, calls, cumulative seconds), largest first."""
        edges = []
        for callee, (_, _, _, _, callers) in self.entries.items():
            if in_package(callee):
                continue
            for caller, (calls, _, _, cumtime) in callers.items():
                if in_package(caller):
                    edges.append((caller, callee, calls, cumtime))
        edges.sort(key=lambda edge: edge[3], reverse=True)
        return edges[:top]

    def calls_out_table(self, top: int, units: int, unit: str) -> list[str]:
        """The package's calls into other code that cost the most, cumulative."""
        rows = [
            [
                where(callee),
                where(caller).split("(")[-1].rstrip(")"),
                f"{calls / units:g}",
                f"{cumtime / units * 1000:.3f}",
                f"{cumtime / self.total * 100:.1f}%",
            ]
            for caller, callee, calls, cumtime in self.calls_out(top)
        ]
        return table(
            [
                "callee (outside the package)",
                "called from",
                f"calls/{unit}",
                f"cum ms/{unit}",
                "%",
            ],
            rows,
            left=2,
        )

    def libraries(self, top: int, units: int, unit: str) -> list[str]:
        """Own time summed per library."""
        sums: dict[str, float] = {}
        for key, (_, _, tottime, _, _) in self.entries.items():
            name = library(key)
            sums[name] = sums.get(name, 0.0) + tottime
        ranked = sorted(sums.items(), key=lambda item: item[1], reverse=True)[:top]
        return table(
            ["library", f"own ms/{unit}", "share"],
            [
                [name, f"{seconds / units * 1000:.3f}", f"{seconds / self.total * 100:.1f}%"]
                for name, seconds in ranked
            ],
        )

    def hottest(self, top: int, units: int, unit: str) -> list[str]:
        """Functions by own time, all code."""
        hot = sorted(self.entries.items(), key=lambda item: item[1][2], reverse=True)[:top]
        return table(
            ["function", f"calls/{unit}", f"own ms/{unit}", "share"],
            [
                [
                    where(key),
                    f"{calls / units:g}",
                    f"{tottime / units * 1000:.3f}",
                    f"{tottime / self.total * 100:.1f}%",
                ]
                for key, (_, calls, tottime, _, _) in hot
            ],
        )


def profile(run: Callable[[], object]) -> Profile:
    """Profile one call of ``run`` (this thread only)."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    run()
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    entries: dict[Key, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total: float = stats.total_tt  # type: ignore[attr-defined]
    return Profile(entries, total, wall)
