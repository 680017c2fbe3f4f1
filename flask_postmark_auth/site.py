"""The app's canonical URL: where links point and which hosts ``next`` may name, never
taken from the request's ``Host`` header outside debug and testing."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .redirects import safe_next
from .settings import Settings


@dataclass(frozen=True)
class Origin:
    """What the service needs to know of the request. ``scheme``, ``host`` and ``root``
    (the script root) serve only in debug or testing without a canonical URL."""

    ip: str | None
    scheme: str
    host: str
    root: str = ""


class Site:
    """``BASE_URL`` (or the URL built from ``SERVER_NAME``) and what follows from it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._canonical = urlsplit(settings.base_url) if settings.base_url else None
        self._link_path = settings.url_prefix.rstrip("/") + "/magic-link/"

    def base_url(self, origin: Origin) -> str:
        """The canonical URL; only in debug or testing without one, the request's own
        scheme and host."""
        if self.settings.base_url is not None:
            return self.settings.base_url
        return f"{origin.scheme}://{origin.host}{origin.root}"

    def link_url(self, token: str, origin: Origin) -> str:
        """The link an email carries: on the canonical URL, never on the request's Host."""
        return f"{self.base_url(origin)}{self._link_path}{token}"

    def safe_next(self, next_url: object, origin: Origin) -> str | None:
        """``next_url`` when it is safe to redirect to (a path, or a URL on the canonical
        host or an allowed one), else ``None``."""
        site = self._canonical
        return safe_next(
            next_url,
            scheme=site.scheme if site else origin.scheme,
            host=site.netloc if site else origin.host,
            allowed_hosts=self.settings.allowed_redirect_hosts,
        )
