"""Test helpers for apps that use the extension: a fake Postmark server and a recorder."""

from __future__ import annotations

from .clock import FakeClock
from .fake_postmark import FakePostmark, RecordedMessage
from .recording import code_in, link_in, record_messages

__all__ = ["FakeClock", "FakePostmark", "RecordedMessage", "code_in", "link_in", "record_messages"]
