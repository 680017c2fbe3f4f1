"""``FakePostmark``: a loopback HTTP server that imitates Postmark's HTTP API.

For tests and benchmarks: it accepts, validates and records what a Postmark client sends, and
answers the way Postmark does (HTTP status, ``ErrorCode`` and, where it could be found in
public sources, Postmark's own ``Message`` wording; :mod:`.wording` says where each text comes
from). Standard library only::

    with FakePostmark(confirmed_senders=["@example.com"]) as fake:
        requests.post(
            fake.url + "/email",
            json={"From": "a@example.com", "To": "b@example.net", "TextBody": "Hi"},
            headers={"X-Postmark-Server-Token": fake.server_token},
        )
        assert fake.messages[0].to == "b@example.net"

Served: ``POST /email``, ``POST /email/withTemplate``, ``POST /email/batch``,
``POST /email/batchWithTemplates``, ``GET /server`` and ``GET /message-streams/{id}``.
Faults for resilience tests: :meth:`FakePostmark.fail`, :meth:`FakePostmark.fail_html`,
:meth:`FakePostmark.drop_connection` and :meth:`FakePostmark.slow`.

The modules, one concept each (each imports only those listed before it):
:mod:`.wording` (Postmark's texts), :mod:`.limits` (its limits), :mod:`.replies` (an answer),
:mod:`.records` (what was received), :mod:`.addresses` (address rules), :mod:`.account` (the
server played and its GET answers), :mod:`.validation` (one message's checks),
:mod:`.routing` (one request's answer), :mod:`.faults` (fault injection), :mod:`.server` (the
HTTP plumbing) and :mod:`.fake` (:class:`FakePostmark`).
"""

from __future__ import annotations

from .account import SERVER_ID as SERVER_ID
from .fake import DEFAULT_SERVER_TOKEN as DEFAULT_SERVER_TOKEN
from .fake import FakePostmark
from .limits import DELIVERY_TYPES as DELIVERY_TYPES
from .limits import MAX_BATCH_BODY as MAX_BATCH_BODY
from .limits import MAX_BATCH_MESSAGES as MAX_BATCH_MESSAGES
from .limits import MAX_BODY as MAX_BODY
from .limits import MAX_METADATA_FIELDS as MAX_METADATA_FIELDS
from .limits import MAX_METADATA_KEY as MAX_METADATA_KEY
from .limits import MAX_METADATA_VALUE as MAX_METADATA_VALUE
from .limits import MAX_RECIPIENTS as MAX_RECIPIENTS
from .limits import MAX_SUBJECT as MAX_SUBJECT
from .limits import MAX_TAG as MAX_TAG
from .limits import STREAM_TYPES as STREAM_TYPES
from .limits import TRACK_LINKS as TRACK_LINKS
from .records import RecordedMessage, RecordedRequest
from .routing import SEND_ENDPOINTS as SEND_ENDPOINTS

__all__ = ["FakePostmark", "RecordedMessage", "RecordedRequest"]
