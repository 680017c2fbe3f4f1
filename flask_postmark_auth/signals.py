"""Signals sent by the extension, with the app as sender (blinker)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A sign-in code was sent (``email``, ``user``).
code_sent = _signals.signal("code-sent")
#: A magic link was sent (``email``, ``user``).
magic_link_sent = _signals.signal("magic-link-sent")
#: A user signed in (``user``, ``method``, ``device``: ``"other"`` when another device
#: approved this browser by link, else ``"this"``).
user_signed_in = _signals.signal("user-signed-in")
#: A new account was made on a first sign-in (``user``).
user_signed_up = _signals.signal("user-signed-up")
#: A sign-in attempt failed (``email``, ``method``, ``reason``).
sign_in_failed = _signals.signal("sign-in-failed")
#: Postmark refused or could not take a message (``email``, ``error``, ``purpose``).
delivery_failed = _signals.signal("delivery-failed")
#: A flow finished (``flow``, ``result``).
flow_finished = _signals.signal("flow-finished")
