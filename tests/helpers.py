"""What several test modules share besides fixtures (those live in conftest.py, which no
module imports): the app factory's type. The mail helpers are public, in
``flask_postmark_auth.testing`` (``code_in``, ``link_in``), for apps' own tests too."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

#: The ``make_app`` fixture: keyword arguments are POSTMARK_AUTH_* settings (short names),
#: ``auth=`` a configured PostmarkAuth, ``config=`` raw config keys.
AppFactory = Callable[..., Flask]
