"""The dev outbox: mail recorded in the store instead of sent, in debug and testing."""

from __future__ import annotations

import json
import re
from typing import Any

from .messages import BATCH_PATHS, accepted_answers, request_messages
from .store import Store

#: A line of an email's text that is only a code (digits, maybe grouped by spaces).
_CODE_LINE = re.compile(r"^[ \t]*(\d(?:[ \d]{2,14})\d)[ \t]*$", re.MULTILINE)
_URL = re.compile(r"https?://[^\s<>\"']+")
#: Keys of a Postmark template model that carry the code and the link.
_MODEL_CODE = ("code",)
_MODEL_LINK = ("link", "action_url")


def found_secrets(message: dict[str, Any]) -> dict[str, str | None]:
    """The ``code`` and ``link`` of a recorded message (``None`` when it has none): from its
    template model, else from its text part (a code email's line of digits, a link
    email's URL)."""
    found = message.get("model")
    model: dict[str, Any] = found if isinstance(found, dict) else {}
    text = str(message.get("text") or "")
    code = next((str(model[k]) for k in _MODEL_CODE if model.get(k)), None)
    link = next((str(model[k]) for k in _MODEL_LINK if model.get(k)), None)
    if code is None and message.get("tag") == "otp":
        match = _CODE_LINE.search(text)
        code = match.group(1).replace(" ", "") if match else None
    if link is None and message.get("tag") == "magic-link":
        found = _URL.search(text)
        link = found.group(0) if found else None
    return {"code": code, "link": link}


class DevOutbox:
    """Mail recorded in the store instead of sent, so every worker sees the same outbox."""

    KEY = "dev-outbox"
    #: Messages kept, newest first, and how long.
    MAX_MESSAGES = 100
    TTL = 24 * 3600

    def __init__(self, store: Store) -> None:
        self._store = store

    def intercept(self, path: str, payload: Any) -> Any:
        """A connector interceptor: record each message, answer as Postmark would."""
        replies = accepted_answers(payload)
        for item, reply in zip(request_messages(payload), replies, strict=True):
            record = {
                "id": reply["MessageID"],
                "created": reply["SubmittedAt"],
                "from": item.get("From"),
                "to": item.get("To"),
                "subject": item.get("Subject"),
                "text": item.get("TextBody"),
                "html": item.get("HtmlBody"),
                "tag": item.get("Tag"),
                "stream": item.get("MessageStream"),
                "template": item.get("TemplateAlias", item.get("TemplateId")),
                "model": item.get("TemplateModel"),
            }
            self._store.push(self.KEY, json.dumps(record), self.TTL, self.MAX_MESSAGES)
        return replies if path in BATCH_PATHS else replies[0]

    def messages(self) -> list[str]:
        """Recorded messages as JSON strings, newest first."""
        return self._store.items(self.KEY)

    def clear(self) -> None:
        self._store.delete(self.KEY)
