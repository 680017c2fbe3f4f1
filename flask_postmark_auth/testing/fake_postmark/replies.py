"""An HTTP answer of the fake (the type every part shares) and the JSON answers Postmark gives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One answer: status, body and the headers that go with it; ``close`` ends keep-alive."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    error_code: int | None = None
    close: bool = False
    extra_headers: tuple[tuple[str, str], ...] = ()


def encode(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_reply(status: int, data: object, *, close: bool = False) -> Reply:
    return Reply(status, encode(data), close=close)


def error(status: int, code: int, message: str, **kwargs: Any) -> Reply:
    """Postmark's error answer: ``{"ErrorCode": code, "Message": message}``."""
    body = encode({"ErrorCode": code, "Message": message})
    return Reply(status, body, error_code=code, **kwargs)


def submitted_at() -> str:
    """Now, the way Postmark writes ``SubmittedAt``: seven fractional digits, UTC."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0Z"
