"""Postmark's documented limits and the values some fields may take (Swagger descriptions,
API overview, custom metadata FAQ)."""

from __future__ import annotations

MAX_RECIPIENTS = 50
MAX_BATCH_MESSAGES = 500
MAX_TAG = 1000
MAX_SUBJECT = 2000
MAX_METADATA_FIELDS = 10
MAX_METADATA_KEY = 20
MAX_METADATA_VALUE = 80
#: Request size limits: 10 MB for single sends, 50 MB for batches (API overview, HTTP 413).
MAX_BODY = 10 * 1024 * 1024
MAX_BATCH_BODY = 50 * 1024 * 1024

STREAM_TYPES = frozenset({"Transactional", "Broadcasts", "Inbound"})
DELIVERY_TYPES = frozenset({"Live", "Sandbox"})
TRACK_LINKS = frozenset({"None", "HtmlAndText", "HtmlOnly", "TextOnly"})
