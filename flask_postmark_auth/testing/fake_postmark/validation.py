"""Postmark's rules for one message: what it answers (ErrorCode and Message) for a message it
would refuse, in the order Postmark checks them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .account import Account
from .addresses import parse_addresses
from .limits import (
    MAX_METADATA_FIELDS,
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    MAX_RECIPIENTS,
    MAX_SUBJECT,
    MAX_TAG,
    TRACK_LINKS,
)
from .wording import (
    MSG_INACTIVE,
    MSG_INACTIVE_BATCH,
    MSG_NO_BODY,
    MSG_NO_FROM,
    MSG_NO_TEMPLATE_ALIAS,
    MSG_NO_TEMPLATE_ID,
    MSG_NOT_SIGNATURE,
    MSG_STREAM_NO_SENDING,
    MSG_STREAM_UNKNOWN,
    MSG_ZERO_RECIPIENTS,
)


def check(
    account: Account, item: Any, *, templated: bool, batch: bool = False
) -> tuple[int, str] | None:
    """None when Postmark would accept ``item``, else its (ErrorCode, Message)."""
    if not isinstance(item, dict):
        return 403, "Invalid request field(s): each message must be a JSON object."
    wrong = _wrong_type(item)
    if wrong is not None:
        return 403, f"Invalid request field(s): '{wrong}'."

    sender = item.get("From")
    if not sender or not sender.strip():
        return 300, MSG_NO_FROM
    senders, problem = parse_addresses("From", sender)
    if problem is not None or len(senders) != 1:
        return 300, f"Invalid 'From' address: '{sender}'."

    to = item.get("To")
    if not to or not to.strip():
        return 300, MSG_ZERO_RECIPIENTS
    recipients: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        value = item.get(name)
        if value is None or (name != "To" and not value.strip()):
            continue
        found, problem = parse_addresses(name, value)
        if problem is not None:
            return 300, problem
        recipients.extend(found)
    if len(recipients) > MAX_RECIPIENTS:
        return 300, (
            f"Too many recipients: a message can have at most {MAX_RECIPIENTS} recipients "
            f"across To, Cc and Bcc, and this one has {len(recipients)}."
        )
    reply_to = item.get("ReplyTo")
    if reply_to is not None and reply_to.strip():
        _, problem = parse_addresses("ReplyTo", reply_to)
        if problem is not None:
            return 300, problem

    template_id = item.get("TemplateId")
    alias = item.get("TemplateAlias")
    if templated:
        if template_id is None and not alias:
            return 1101, "Provide either a 'TemplateId' or a 'TemplateAlias'."
        if template_id is not None and alias:
            return 1101, "Provide either a 'TemplateId' or a 'TemplateAlias', not both."
        if item.get("TemplateModel") is None:
            return 1120, "The 'TemplateModel' field is required."
    elif not item.get("TextBody") and not item.get("HtmlBody"):
        return 300, MSG_NO_BODY

    problem_text = _limit_problem(item)
    if problem_text is not None:
        return 300, problem_text

    stream_id = item.get("MessageStream") or "outbound"
    stream = account.streams.get(stream_id)
    if stream is None or stream.get("ArchivedAt"):
        return 1235, MSG_STREAM_UNKNOWN
    if stream["MessageStreamType"] == "Inbound":
        return 1236, MSG_STREAM_NO_SENDING

    if templated and account.templates is not None:
        if template_id is not None and template_id not in account.templates:
            return 1101, MSG_NO_TEMPLATE_ID
        if template_id is None and alias not in account.templates:
            return 1101, MSG_NO_TEMPLATE_ALIAS

    if not _confirmed(account, senders[0]):
        return 400, MSG_NOT_SIGNATURE.format(sender=sender)

    if account.inactive_recipients:
        inactive_set = {a.strip().lower() for a in account.inactive_recipients}
        inactive = [a for a in recipients if a.lower() in inactive_set]
        if inactive:
            text = MSG_INACTIVE_BATCH if batch else MSG_INACTIVE
            return 406, text.format(addresses=", ".join(inactive))
    return None


def _confirmed(account: Account, address: str) -> bool:
    if account.confirmed_senders is None:
        return True
    address = address.lower()
    domain = "@" + address.rpartition("@")[2]
    return address in account.confirmed_senders or domain in account.confirmed_senders


_STRING_FIELDS = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "ReplyTo",
    "Subject",
    "Tag",
    "HtmlBody",
    "TextBody",
    "MessageStream",
    "TrackLinks",
    "TemplateAlias",
)


def _wrong_type(item: Mapping[str, Any]) -> str | None:
    """The first field whose JSON type Postmark could not take, or None."""
    for name in _STRING_FIELDS:
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            return name
    for name in ("TrackOpens", "InlineCss"):
        value = item.get(name)
        if value is not None and not isinstance(value, bool):
            return name
    template_id = item.get("TemplateId")
    if template_id is not None and (
        not isinstance(template_id, int) or isinstance(template_id, bool)
    ):
        return "TemplateId"
    for name in ("TemplateModel", "Metadata"):
        value = item.get(name)
        if value is not None and not isinstance(value, dict):
            return name
    headers = item.get("Headers")
    if headers is not None and not (
        isinstance(headers, list)
        and all(
            isinstance(h, dict)
            and isinstance(h.get("Name"), str)
            and isinstance(h.get("Value"), str)
            for h in headers
        )
    ):
        return "Headers"
    attachments = item.get("Attachments")
    if attachments is not None and not isinstance(attachments, list):
        return "Attachments"
    track_links = item.get("TrackLinks")
    if track_links is not None and track_links not in TRACK_LINKS:
        return "TrackLinks"
    return None


def _limit_problem(item: Mapping[str, Any]) -> str | None:
    """The 300 message for an overlong Subject or Tag or bad Metadata, or None."""
    subject = item.get("Subject")
    if subject is not None and len(subject) > MAX_SUBJECT:
        return f"The 'Subject' field is too long: at most {MAX_SUBJECT} characters are allowed."
    tag = item.get("Tag")
    if tag is not None and len(tag) > MAX_TAG:
        return f"The 'Tag' field is too long: at most {MAX_TAG} characters are allowed."
    metadata = item.get("Metadata")
    if metadata:
        if len(metadata) > MAX_METADATA_FIELDS:
            return (
                f"Invalid metadata content. At most {MAX_METADATA_FIELDS} fields are allowed, "
                f"and this message has {len(metadata)}."
            )
        seen: set[str] = set()
        for key, value in metadata.items():
            if not key or len(key) > MAX_METADATA_KEY:
                return (
                    f"Invalid metadata content. Field names must be 1 to {MAX_METADATA_KEY} "
                    f"characters long: '{key}'."
                )
            if key.lower() in seen:
                return f"Invalid metadata content. Field names must be unique: '{key}'."
            seen.add(key.lower())
            if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
                return (
                    "Invalid metadata content. Field values must be strings of at most "
                    f"{MAX_METADATA_VALUE} characters: '{key}'."
                )
    return None
