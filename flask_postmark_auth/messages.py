"""What a Postmark message may be: every check made before a request (Postmark would refuse
the message anyway, later and less clearly), the JSON it is sent as, the answers an
interceptor (the dev outbox, ``record_messages``) gives in Postmark's place, and the reading
of the ``SubmittedAt`` time Postmark's answers carry."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .addresses import check_mailbox, has_control_chars
from .errors import MessageValidationError

#: Postmark's limits, checked before any request.
MAX_RECIPIENTS = 50
MAX_SUBJECT = 2000
MAX_TAG = 1000
MAX_METADATA_KEYS = 10
MAX_METADATA_KEY = 20
MAX_METADATA_VALUE = 80
#: The endpoints whose body holds several messages.
BATCH_PATHS = frozenset({"/email/batch", "/email/batchWithTemplates"})

_TRACK_LINKS = frozenset({"None", "HtmlAndText", "HtmlOnly", "TextOnly"})
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Keys a message of a batch may have.
BATCH_KEYS = frozenset(
    {
        "to",
        "subject",
        "text_body",
        "html_body",
        "template",
        "model",
        "tag",
        "metadata",
        "reply_to",
        "headers",
        "track_opens",
        "track_links",
    }
)


def build_message(
    to: object, options: Mapping[str, Any], *, from_email: str, message_stream: str
) -> dict[str, Any]:
    """Check one message (``to`` and the other keyword arguments of ``send`` or
    ``send_template``, missing ones meaning ``None``) and build its JSON."""
    get = options.get
    subject, text_body, html_body = get("subject"), get("text_body"), get("html_body")
    template, model, tag = get("template"), get("model"), get("tag")
    track_opens, track_links = get("track_opens"), get("track_links")
    payload: dict[str, Any] = {"From": from_email, "To": _recipients(to)}
    if template is None:
        if model is not None:
            raise MessageValidationError("model is only for template sends.")
        if not isinstance(subject, str):
            raise MessageValidationError("subject must be a string.")
        if has_control_chars(subject):
            raise MessageValidationError("subject must not contain CR, LF or control chars.")
        if len(subject) > MAX_SUBJECT:
            raise MessageValidationError(f"subject is longer than {MAX_SUBJECT} characters.")
        payload["Subject"] = subject
        if text_body is None and html_body is None:
            raise MessageValidationError("a message needs text_body, html_body or both.")
        for key, body in (("TextBody", text_body), ("HtmlBody", html_body)):
            if body is not None:
                if not isinstance(body, str) or not body:
                    raise MessageValidationError(f"{key} must be a non-empty string.")
                payload[key] = body
    else:
        if subject is not None or text_body is not None or html_body is not None:
            raise MessageValidationError(
                "template sends take their subject and bodies from the template."
            )
        if isinstance(template, bool) or not isinstance(template, (str, int)):
            raise MessageValidationError("template must be an alias (str) or an id (int).")
        if isinstance(template, int):
            payload["TemplateId"] = template
        elif template.strip():
            payload["TemplateAlias"] = template
        else:
            raise MessageValidationError("template alias must not be empty.")
        if not isinstance(model, Mapping):
            raise MessageValidationError("model must be a dict.")
        payload["TemplateModel"] = dict(model)
    if tag is not None:
        if not isinstance(tag, str) or not tag:
            raise MessageValidationError("tag must be one non-empty string.")
        if has_control_chars(tag) or len(tag) > MAX_TAG:
            raise MessageValidationError(f"tag must be one line of at most {MAX_TAG} chars.")
        payload["Tag"] = tag
    if (metadata := get("metadata")) is not None:
        payload["Metadata"] = _metadata(metadata)
    if (reply_to := get("reply_to")) is not None:
        if not isinstance(reply_to, str):
            raise MessageValidationError("reply_to must be a string.")
        payload["ReplyTo"] = check_mailbox(reply_to, "reply_to")
    if (headers := get("headers")) is not None:
        payload["Headers"] = _headers(headers)
    if track_opens is not None:
        if not isinstance(track_opens, bool):
            raise MessageValidationError("track_opens must be True, False or None.")
        payload["TrackOpens"] = track_opens
    if track_links is not None:
        if isinstance(track_links, bool):
            track_links = "HtmlAndText" if track_links else "None"
        if track_links not in _TRACK_LINKS:
            raise MessageValidationError(f"track_links must be one of {sorted(_TRACK_LINKS)}.")
        payload["TrackLinks"] = track_links
    payload["MessageStream"] = message_stream
    return payload


def _recipients(to: object) -> str:
    if isinstance(to, str):
        return check_mailbox(to, "to")
    if isinstance(to, Sequence) and not isinstance(to, (bytes, bytearray)):
        if not to:
            raise MessageValidationError("to must name at least one recipient.")
        if len(to) > MAX_RECIPIENTS:
            raise MessageValidationError(f"to has more than {MAX_RECIPIENTS} recipients.")
        return ", ".join(check_mailbox(item, f"to[{i}]") for i, item in enumerate(to))
    raise MessageValidationError("to must be an address or a list of addresses.")


def _metadata(metadata: object) -> dict[str, str]:
    if not isinstance(metadata, Mapping):
        raise MessageValidationError("metadata must be a dict of strings.")
    if len(metadata) > MAX_METADATA_KEYS:
        raise MessageValidationError(f"metadata has more than {MAX_METADATA_KEYS} keys.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
            raise MessageValidationError(
                f"metadata keys must be strings of 1 to {MAX_METADATA_KEY} characters."
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise MessageValidationError(
                f"metadata[{key!r}] must be a string of at most {MAX_METADATA_VALUE} chars."
            )
        if has_control_chars(key) or has_control_chars(value):
            raise MessageValidationError("metadata must not contain CR, LF or control chars.")
    return dict(metadata)


def _headers(headers: object) -> list[dict[str, str]]:
    if not isinstance(headers, Mapping):
        raise MessageValidationError("headers must be a dict of name to value.")
    out = []
    for name, value in headers.items():
        if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
            raise MessageValidationError(f"header name {name!r} is not a valid header name.")
        if not isinstance(value, str) or has_control_chars(value):
            raise MessageValidationError(f"header {name} must be a string without CR or LF.")
        out.append({"Name": name, "Value": value})
    return out


def request_messages(payload: Any) -> list[dict[str, Any]]:
    """The messages of a request body: a batch's list, a templated batch's ``Messages``,
    or the one message of a single send."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and "Messages" in payload:
        messages: list[dict[str, Any]] = payload["Messages"]
        return messages
    return [payload]


def accepted_answers(payload: Any) -> list[dict[str, Any]]:
    """What Postmark answers for each message of ``payload`` when it accepts them all."""
    return [accepted_answer("/email", item) for item in request_messages(payload)]


def accepted_answer(path: str, payload: Any) -> Any:
    """What Postmark answers when it accepts ``payload`` at ``path``: for interceptors."""
    if path in BATCH_PATHS:
        return accepted_answers(payload)
    return {
        "To": payload.get("To", ""),
        "SubmittedAt": datetime.now(timezone.utc).isoformat(),
        "MessageID": str(uuid.uuid4()),
        "ErrorCode": 0,
        "Message": "OK",
    }


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_submitted_at(value: object) -> datetime | None:
    """Postmark's SubmittedAt carries seven fractional digits; Python takes six."""
    if not isinstance(value, str):
        return None
    text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
