"""pytest plugin (registered through the ``pytest11`` entry point): the ``fake_postmark``
fixture, a running :class:`~flask_postmark_auth.testing.FakePostmark` per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .testing import FakePostmark


@pytest.fixture
def fake_postmark() -> Iterator[FakePostmark]:
    """A FakePostmark on a free loopback port, stopped after the test."""
    from .testing import FakePostmark

    with FakePostmark() as server:
        yield server
