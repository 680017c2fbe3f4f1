"""What the fake received: each accepted message and each HTTP request, as the client sent it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RecordedMessage:
    """One message Postmark (or the fake) accepted, as the client sent it.

    ``message_id`` is the ``MessageID`` it was given; ``endpoint`` is the path it came
    through (``"/email"``, ``"/email/batch"``, ...). ``to``, ``from_``, ``cc``, ``bcc``,
    ``reply_to``, ``subject``, ``text_body``, ``html_body`` and ``tag`` are the payload's
    ``To``, ``From``, ``Cc``, ``Bcc``, ``ReplyTo``, ``Subject``, ``TextBody``, ``HtmlBody``
    and ``Tag`` as sent (several addresses stay one comma-separated string), ``None`` when
    absent (``""`` for ``to`` and ``from_``). ``metadata`` is ``Metadata``, its values as
    strings; ``headers`` is ``Headers``, a list of ``{"Name": ..., "Value": ...}`` dicts
    (empty when none); ``track_opens`` and ``track_links`` are ``TrackOpens`` and
    ``TrackLinks`` (``None`` when not set).

    ``message_stream`` is the stream it went to (``"outbound"`` when the payload named none);
    ``template`` is the ``TemplateId`` or ``TemplateAlias`` of a template send, and
    ``template_model`` its ``TemplateModel``; ``payload`` is the message's JSON object as
    received.
    """

    message_id: str
    endpoint: str
    to: str
    from_: str
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None
    tag: str | None = None
    metadata: dict[str, str] | None = None
    message_stream: str = "outbound"
    template: str | int | None = None
    template_model: dict[str, Any] | None = None
    headers: list[dict[str, Any]] = field(default_factory=list)
    track_opens: bool | None = None
    track_links: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    cc: str | None = None
    bcc: str | None = None
    reply_to: str | None = None

    @classmethod
    def from_payload(
        cls, endpoint: str, payload: Mapping[str, Any], message_id: str
    ) -> RecordedMessage:
        """Build the record of ``payload``, one message object (one item of a batch) sent to
        ``endpoint`` and accepted as ``message_id``. A field of the wrong JSON type is
        recorded as absent."""
        template: str | int | None = None
        template_id = payload.get("TemplateId")
        if isinstance(template_id, int) and not isinstance(template_id, bool):
            template = template_id
        else:
            template = _text(payload.get("TemplateAlias"))
        model = payload.get("TemplateModel")
        metadata = payload.get("Metadata")
        headers = payload.get("Headers")
        stream = payload.get("MessageStream")
        track_opens = payload.get("TrackOpens")
        return cls(
            message_id=message_id,
            endpoint=endpoint,
            to=_text(payload.get("To")) or "",
            from_=_text(payload.get("From")) or "",
            subject=_text(payload.get("Subject")),
            text_body=_text(payload.get("TextBody")),
            html_body=_text(payload.get("HtmlBody")),
            tag=_text(payload.get("Tag")),
            metadata=(
                {str(k): v if isinstance(v, str) else str(v) for k, v in metadata.items()}
                if isinstance(metadata, Mapping)
                else None
            ),
            message_stream=stream if isinstance(stream, str) and stream else "outbound",
            template=template,
            template_model=dict(model) if isinstance(model, Mapping) else None,
            headers=(
                [dict(h) for h in headers if isinstance(h, Mapping)]
                if isinstance(headers, list)
                else []
            ),
            track_opens=track_opens if isinstance(track_opens, bool) else None,
            track_links=_text(payload.get("TrackLinks")),
            payload=dict(payload),
            cc=_text(payload.get("Cc")),
            bcc=_text(payload.get("Bcc")),
            reply_to=_text(payload.get("ReplyTo")),
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake received, whatever it answered (faults included).

    ``path`` has no query string (that is in ``query``); ``body`` is the raw body and
    ``json`` its decoded JSON, or ``None`` when the body is empty or not JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    json: Any = None
    query: str = ""
