"""The package's import graph, read from its source: ``python -m tests.import_graph`` prints
every edge by layer and says whether any import runs in a circle or upwards.

Layers, top to bottom: what apps and tools call (the extension, the CLI, the testing
helpers), the HTTP views, the service, the domain rules, and the plumbing (connector, stores,
address rules, errors). A module may import its own layer or any below it. Imports under
``if TYPE_CHECKING:`` are for the type checker only and do not count.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "flask_postmark_auth"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Layer of each module (dotted, without the package prefix), highest first; a trailing
#: ``.*`` covers a subpackage.
LAYERS: list[tuple[str, set[str]]] = [
    ("entry", {"__init__", "extension", "cli", "pytest_plugin", "tasks", "testing.*"}),
    ("http", {"views", "outbox_views", "edge", "pages", "link_pages"}),
    ("service", {"service", "checklist", "outbox"}),
    (
        "domain",
        {
            "codes",
            "flows",
            "flow_config",
            "delivery",
            "jobs",
            "mail",
            "users",
            "links",
            "tokens",
            "redirects",
            "throttles",
            "settings",
            "config_checks",
            "site",
            "state",
        },
    ),
    (
        "plumbing",
        {
            "connector",
            "connector_check",
            "connector_session",
            "messages",
            "store.*",
            "addresses",
            "errors",
            "i18n",
            "signals",
            "_version",
        },
    ),
]


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``store.redis``, ``__init__``)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer(module: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or (member.endswith(".*") and module.startswith(member[:-1])):
                return index
            if member.endswith(".*") and module == member[:-2]:
                return index
    raise KeyError(f"{PACKAGE}.{module} has no layer in tests/import_graph.py's LAYERS")


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, less the bodies of ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _stem(node: ast.ImportFrom, package: list[str]) -> list[str] | None:
    """The package-relative module an ``ImportFrom`` names, or ``None`` when it is not ours."""
    if node.level:
        base = package[: len(package) - (node.level - 1)]
        return base + (node.module.split(".") if node.module else [])
    if node.module == PACKAGE:
        return []
    if node.module and node.module.startswith(PACKAGE + "."):
        return node.module[len(PACKAGE) + 1 :].split(".")
    return None


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``module`` imports at run time (module level or in functions)."""
    # The package a relative import starts from: a subpackage's __init__ is its own.
    parts = [] if module == "__init__" else module.split(".")
    package = parts if path.name == "__init__.py" else parts[:-1]
    targets: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            stem = _stem(node, package)
            if stem is None:
                continue
            for alias in node.names:
                submodule = ".".join([*stem, alias.name])
                if submodule in known:
                    targets.add(submodule)  # from . import signals
                else:
                    targets.add(".".join(stem) if stem else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name[len(PACKAGE) + 1 :]
                if alias.name.startswith(PACKAGE + ".") and name in known:
                    targets.add(name)
    targets.discard(module)
    return targets


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle (each as the path that closes it)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower layer up to a higher one."""
    return sorted(
        (source, target)
        for source, targets in edges.items()
        for target in targets
        if layer(target) < layer(source)
    )


def main() -> int:
    edges = graph()
    for index, (name, _) in enumerate(LAYERS):
        print(f"{name}:")
        for source in sorted(m for m in edges if layer(m) == index):
            print(f"  {source} -> {', '.join(sorted(edges[source])) or '(nothing)'}")
    circles, up = cycles(edges), upward(edges)
    print(f"\ncycles: {circles or 'none'}")
    print(f"upward imports: {up or 'none'}")
    return 1 if circles or up else 0


if __name__ == "__main__":
    sys.exit(main())
