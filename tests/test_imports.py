"""Imports run one way (tests/import_graph.py), and the plain-Python parts load no Flask."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import import_graph


def test_the_package_imports_in_no_circle_and_never_upwards() -> None:
    edges = import_graph.graph()
    assert import_graph.cycles(edges) == []
    assert import_graph.upward(edges) == []


def test_every_module_has_a_layer() -> None:
    for module in import_graph.modules():
        import_graph.layer(module)


def test_no_package_module_is_over_400_lines() -> None:
    """One concept a module; the fake Postmark (a test helper, its own package) aside."""
    long = {
        name: lines
        for name, path in import_graph.modules().items()
        if (lines := len(path.read_text().splitlines())) > 400 and not name.startswith("testing")
    }
    assert long == {}


@pytest.mark.parametrize(
    "module",
    [
        "flask_postmark_auth.connector",
        "flask_postmark_auth.store",
        "flask_postmark_auth.store.redis",
        "flask_postmark_auth.store.sqlite",
    ],
)
def test_the_connector_and_the_stores_load_no_flask(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'flask_login'));"
        "print(loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
