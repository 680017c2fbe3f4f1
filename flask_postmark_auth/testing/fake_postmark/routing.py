"""Routing one request: which endpoints exist, the token and header checks every request
passes, and the answer of each endpoint (single sends, batches, ``GET`` lookups)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from .account import Account, server_info, stream_info
from .limits import MAX_BATCH_MESSAGES
from .replies import Reply, error, json_reply
from .validation import check
from .wording import (
    MSG_AUTH_MISSING,
    MSG_AUTH_WRONG,
    MSG_INVALID_JSON,
    MSG_JSON_REQUIRED,
    MSG_TOO_MANY_BATCH,
)

SEND_ENDPOINTS = ("/email", "/email/withTemplate", "/email/batch", "/email/batchWithTemplates")
_STREAMS_PREFIX = "/message-streams/"
_JSON_TYPES = frozenset({"application/json", "text/json", "text/x-json"})
_ACCEPT_ANY = frozenset({"*/*", "application/*", "text/*"})

#: Records one accepted message (endpoint, message object) and returns its result object.
Accept = Callable[[str, dict[str, Any]], dict[str, Any]]


def dispatch(
    account: Account,
    accept: Accept,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Reply:
    """The answer to one request; ``headers`` has lower-case names, ``accept`` records
    each message Postmark would take."""
    if path in SEND_ENDPOINTS:
        allowed = "POST"
    elif path == "/server" or (
        path.startswith(_STREAMS_PREFIX) and "/" not in path[len(_STREAMS_PREFIX) :]
    ):
        allowed = "GET"
    else:
        return error(404, 0, f"No HTTP resource was found that matches '{path}'.")
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        return error(
            405,
            0,
            f"The requested resource does not support http method '{method}'.",
            extra_headers=(("Allow", allowed),),
        )

    token = headers.get("x-postmark-server-token")
    if token is None or not token.strip():
        return error(401, 10, MSG_AUTH_MISSING)
    if token != account.server_token:
        return error(401, 10, MSG_AUTH_WRONG)

    # Postmark documents HTTP 415 for missing expected headers and ErrorCode 409 "JSON
    # required"; a missing Accept header means "anything", so only a wrong one is refused.
    if not _accepts_json(headers.get("accept")):
        return error(415, 409, MSG_JSON_REQUIRED)

    if allowed == "GET":
        if path == "/server":
            return json_reply(200, server_info(account))
        return stream_info(account, unquote(path[len(_STREAMS_PREFIX) :]))

    if not _is_json_type(headers.get("content-type")):
        return error(415, 409, MSG_JSON_REQUIRED)
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except ValueError:
        return error(422, 402, MSG_INVALID_JSON)

    if path in ("/email", "/email/withTemplate"):
        templated = path == "/email/withTemplate"
        problem = check(account, data, templated=templated)
        if problem is not None:
            return error(422, problem[0], problem[1])
        return json_reply(200, accept(path, data))

    if path == "/email/batch":
        items = data
        if not isinstance(items, list):
            return error(422, 403, "Invalid request: the batch must be a JSON array.")
    else:
        items = data.get("Messages") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return error(422, 403, "Invalid request field(s): 'Messages' must be a JSON array.")
    if len(items) > MAX_BATCH_MESSAGES:
        return error(422, 410, MSG_TOO_MANY_BATCH)
    templated = path == "/email/batchWithTemplates"
    results: list[dict[str, Any]] = []
    for item in items:
        problem = check(account, item, templated=templated, batch=True)
        if problem is None:
            results.append(accept(path, item))
        else:
            results.append({"ErrorCode": problem[0], "Message": problem[1]})
    return json_reply(200, results)


def _accepts_json(value: str | None) -> bool:
    if value is None or not value.strip():
        return True
    for part in value.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _JSON_TYPES or media in _ACCEPT_ANY:
            return True
    return False


def _is_json_type(value: str | None) -> bool:
    return value is not None and value.split(";", 1)[0].strip().lower() in _JSON_TYPES
