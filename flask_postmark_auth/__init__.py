"""Passwordless sign-in for Flask: emailed codes and magic links, delivered through Postmark."""

from __future__ import annotations

__version__ = "0.1.0"

from .connector import PostmarkConnector, SendResult, TestReport
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
from .extension import PostmarkAuth

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
    "SendResult",
    "SenderNotConfirmedError",
    "ServerError",
    "TestReport",
    "TransportError",
    "__version__",
]
