"""Passwordless sign-in for Flask: emailed codes and magic links, delivered through Postmark.

``PostmarkAuth`` is imported on first use, so ``from flask_postmark_auth import
PostmarkConnector`` (the connector on its own, plain Python) does not load Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .connector import PostmarkConnector, SendResult
from .connector_check import TestReport
from .errors import (
    ConfigurationError,
    InactiveRecipientError,
    InvalidRequestError,
    InvalidTokenError,
    MessageStreamError,
    MessageValidationError,
    PostmarkError,
    RateLimitedError,
    SenderNotConfirmedError,
    ServerError,
    TransportError,
)
from .jobs import SendJob

if TYPE_CHECKING:
    from .extension import PostmarkAuth


def __getattr__(name: str) -> Any:
    if name == "PostmarkAuth":
        from .extension import PostmarkAuth

        return PostmarkAuth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConfigurationError",
    "InactiveRecipientError",
    "InvalidRequestError",
    "InvalidTokenError",
    "MessageStreamError",
    "MessageValidationError",
    "PostmarkAuth",
    "PostmarkConnector",
    "PostmarkError",
    "RateLimitedError",
    "SendJob",
    "SendResult",
    "SenderNotConfirmedError",
    "ServerError",
    "TestReport",
    "TransportError",
    "__version__",
]
