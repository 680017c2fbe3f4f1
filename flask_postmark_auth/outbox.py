"""The dev outbox: mail recorded in the store instead of sent, in debug and testing."""

from __future__ import annotations

import json
from typing import Any

from .messages import BATCH_PATHS, accepted_answers, request_messages
from .store import Store


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
