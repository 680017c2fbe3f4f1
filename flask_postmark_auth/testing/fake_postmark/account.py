"""The Postmark server the fake plays: its settings (:class:`Account`, which
:class:`~.FakePostmark` satisfies), its Message Streams, and the ``GET /server`` and
``GET /message-streams/{id}`` answers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from .limits import STREAM_TYPES
from .replies import Reply, error, json_reply
from .wording import MSG_STREAM_NOT_FOUND

#: The ID of the one server the fake plays.
SERVER_ID = 1
_CREATED_AT = "2020-07-01T00:00:00-04:00"


class Account(Protocol):
    """The settings that decide Postmark's answers, read afresh for every request (tests
    change them while the fake runs)."""

    server_token: str
    server_name: str
    delivery_type: str
    confirmed_senders: set[str] | None
    streams: dict[str, dict[str, Any]]
    templates: set[str | int] | None
    inactive_recipients: set[str]


def stream_config(stream_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """One stream's configuration, checked, with ``MessageStreamType`` and ``Name`` filled in."""
    kind = config.get("MessageStreamType", "Transactional")
    if kind not in STREAM_TYPES:
        raise ValueError(
            f"stream {stream_id!r}: MessageStreamType must be one of "
            f"{sorted(STREAM_TYPES)}, not {kind!r}"
        )
    out = dict(config)
    out["MessageStreamType"] = kind
    if "Name" not in out:
        out["Name"] = {
            "outbound": "Default Transactional Stream",
            "inbound": "Default Inbound Stream",
        }.get(stream_id, stream_id)
    return out


def server_info(account: Account) -> dict[str, Any]:
    """The ``GET /server`` answer."""
    inbound_hash = uuid.uuid5(uuid.NAMESPACE_URL, account.server_token).hex
    return {
        "ID": SERVER_ID,
        "Name": account.server_name,
        "ApiTokens": [account.server_token],
        "Color": "blue",
        "SmtpApiActivated": True,
        "RawEmailEnabled": False,
        "DeliveryType": account.delivery_type,
        "ServerLink": f"https://account.postmarkapp.com/servers/{SERVER_ID}/streams",
        "InboundAddress": f"{inbound_hash}@inbound.postmarkapp.com",
        "InboundHookUrl": "",
        "BounceHookUrl": "",
        "OpenHookUrl": "",
        "DeliveryHookUrl": "",
        "PostFirstOpenOnly": False,
        "InboundDomain": "",
        "InboundHash": inbound_hash,
        "InboundSpamThreshold": 0,
        "TrackOpens": False,
        "TrackLinks": "None",
        "IncludeBounceContentInHook": False,
        "ClickHookUrl": "",
        "EnableSmtpApiErrorHooks": False,
    }


def stream_info(account: Account, stream_id: str) -> Reply:
    """The ``GET /message-streams/{stream_id}`` answer (ErrorCode 1226 for an unknown ID)."""
    config = account.streams.get(stream_id)
    if config is None:
        return error(422, 1226, MSG_STREAM_NOT_FOUND)
    archived = config.get("ArchivedAt")
    kind = config["MessageStreamType"]
    return json_reply(
        200,
        {
            "ID": stream_id,
            "ServerID": SERVER_ID,
            "Name": config.get("Name") or stream_id,
            "Description": config.get("Description"),
            "MessageStreamType": kind,
            "CreatedAt": config.get("CreatedAt") or _CREATED_AT,
            "UpdatedAt": config.get("UpdatedAt"),
            "ArchivedAt": archived,
            "ExpectedPurgeDate": config.get("ExpectedPurgeDate") or _purge_date(archived),
            "SubscriptionManagementConfiguration": {
                "UnsubscribeHandlingType": "Postmark" if kind == "Broadcasts" else "None"
            },
        },
    )


def _purge_date(archived: object) -> str | None:
    """Postmark purges an archived stream 45 days after archiving it."""
    if not isinstance(archived, str):
        return None
    try:
        when = datetime.fromisoformat(archived.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when + timedelta(days=45)).isoformat()
