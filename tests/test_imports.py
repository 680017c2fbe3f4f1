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
    """One concept a module, the testing helpers included."""
    long = {
        name: lines
        for name, path in import_graph.modules().items()
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert long == {}


#: What ``flask_postmark_auth.testing.fake_postmark`` offered as one module, before it became
#: a package of one concept a module: it still offers all of it.
FAKE_POSTMARK_NAMES = (
    "FakePostmark",
    "RecordedMessage",
    "RecordedRequest",
    "DEFAULT_SERVER_TOKEN",
    "SERVER_ID",
    "SEND_ENDPOINTS",
    "MAX_RECIPIENTS",
    "MAX_BATCH_MESSAGES",
    "MAX_TAG",
    "MAX_SUBJECT",
    "MAX_METADATA_FIELDS",
    "MAX_METADATA_KEY",
    "MAX_METADATA_VALUE",
    "MAX_BODY",
    "MAX_BATCH_BODY",
    "STREAM_TYPES",
    "DELIVERY_TYPES",
    "TRACK_LINKS",
)


def test_the_fake_postmark_package_keeps_the_module_names() -> None:
    from flask_postmark_auth import testing
    from flask_postmark_auth.testing import fake_postmark

    missing = [name for name in FAKE_POSTMARK_NAMES if not hasattr(fake_postmark, name)]
    assert missing == []
    assert fake_postmark.__all__ == ["FakePostmark", "RecordedMessage", "RecordedRequest"]
    assert testing.FakePostmark is fake_postmark.FakePostmark
    assert testing.RecordedMessage is fake_postmark.RecordedMessage


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
