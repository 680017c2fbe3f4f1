"""The installed distribution's version, read from its metadata (setup.cfg holds it)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flask-postmark-auth")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
