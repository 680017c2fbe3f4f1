"""The kept-alive HTTP session a :class:`~.connector.PostmarkConnector` sends over: requests
with urllib3's retry policy (see the connector's text for what is tried again, and when)."""

from __future__ import annotations

import random
from collections.abc import Mapping

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ._version import __version__

#: Statuses worth another attempt; every other 4xx is final.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest wait between two attempts, whatever the backoff base.
BACKOFF_CAP = 8.0


class _Retry(Retry):
    """urllib3's retry policy with the first retry delayed too and "equal jitter"."""

    def get_backoff_time(self) -> float:
        attempts = len(self.history)
        if attempts == 0 or self.backoff_factor <= 0:
            return 0.0
        delay = min(float(self.backoff_max), self.backoff_factor * 2.0 ** (attempts - 1))
        # Jitter spreads retries from many workers; it needs no cryptographic randomness.
        return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311  # nosec B311


def new_session(headers: Mapping[str, str], max_retries: int, backoff: float) -> requests.Session:
    """A session sending ``headers`` (and this package's User-Agent) with the retry policy,
    one pool of up to 32 kept-alive connections, and no proxies or netrc from the
    environment."""
    session = requests.Session()
    retry = _Retry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        allowed_methods=None,  # POSTs too: Postmark refused or never saw them
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        backoff_max=BACKOFF_CAP,
        raise_on_status=False,
        raise_on_redirect=False,
        respect_retry_after_header=False,
    )
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=32, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(headers)
    session.headers["User-Agent"] = f"flask-postmark-auth/{__version__}"
    session.trust_env = False
    return session
