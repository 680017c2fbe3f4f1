"""``record_messages(app)``: capture what the app's connectors send, without HTTP."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from ..messages import BATCH_PATHS, accepted_answers, request_messages
from ..state import state
from .fake_postmark import RecordedMessage


@contextmanager
def record_messages(app: Flask) -> Iterator[list[RecordedMessage]]:
    """Within the block, every connector of ``app`` records its messages in the yielded list
    (as Postmark would have accepted them) instead of sending them.

    ::

        with record_messages(app) as outbox:
            client.post("/auth/otp", json={"email": "a@example.com"})
        assert outbox[0].to == "a@example.com"
    """
    outbox: list[RecordedMessage] = []
    lock = threading.Lock()
    connectors = list(state(app).connectors.values())
    saved = [c.interceptor for c in connectors]

    def intercept(path: str, payload: Any) -> Any:
        replies = accepted_answers(payload)
        with lock:
            for item, reply in zip(request_messages(payload), replies, strict=True):
                outbox.append(RecordedMessage.from_payload(path, item, reply["MessageID"]))
        return replies if path in BATCH_PATHS else replies[0]

    for connector in connectors:
        connector.interceptor = intercept
    try:
        yield outbox
    finally:
        for connector, previous in zip(connectors, saved, strict=True):
            connector.interceptor = previous


#: The package's emails give the code a line of its own; an app's may put it in a sentence.
_CODE_LINE = re.compile(r"^[ \t]*(\d{6,10})[ \t]*$", re.MULTILINE)
_CODE = re.compile(r"(?<![\w.+-])(\d{6,10})(?![\w@.-]*@)\b")
_LINK = re.compile(r"https?://[^/\s]+(/\S*/magic-link/[\w.\-]+)")


def code_in(message: RecordedMessage) -> str:
    """The sign-in code in the text part of ``message``, a recorded email: the digits on a
    line of their own, else the first run of 6 to 10 digits that is not part of a word or
    an address; :class:`LookupError` if none."""
    text = message.text_body or ""
    match = _CODE_LINE.search(text) or _CODE.search(text)
    if match is None:
        raise LookupError(f"no sign-in code in {message.text_body!r}")
    return match.group(1)


def link_in(message: RecordedMessage) -> str:
    """The path of the magic link in the text part of ``message``, a recorded email
    (such as ``/auth/magic-link/<token>``: what a test client opens, without scheme, host
    or query); :class:`LookupError` if none."""
    match = _LINK.search(message.text_body or "")
    if match is None:
        raise LookupError(f"no sign-in link in {message.text_body!r}")
    return match.group(1)


__all__ = ["code_in", "link_in", "record_messages"]
