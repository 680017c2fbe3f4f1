"""One-time codes in the store: the record of the code an address waits with, the counters
of guesses at it, the pause after a day of too many, and the store operations that write
them, for the service to send in its batches (:meth:`.Store.many`).

A record is ``<hash>|<next>``: the code's keyed hash (:func:`.tokens.code_hash`, 22
characters) and the ``next`` target asked for with it (empty for none); records of earlier
releases (JSON) are read too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .tokens import code_hash, code_matches, new_code

#: Wrong guesses at one address's codes, in a day, before its codes pause for a day (in
#: units of ``OTP_MAX_ATTEMPTS``: three codes' worth). At the defaults that is 15 guesses a
#: day, so a year of steady guessing at a 6-digit code stays under 0.6%.
GUESS_BUDGET_CODES = 3
DAY = 24 * 3600

Op = tuple[Any, ...]


@dataclass(frozen=True)
class CodeRecord:
    """A stored code: its keyed hash and where signing in with it goes."""

    hash: str
    next: str | None


def pack(record: CodeRecord) -> str:
    """``record`` as it is stored."""
    return f"{record.hash}|{record.next or ''}"


def unpack(raw: str) -> CodeRecord:
    """A stored record (of this release, or the JSON of earlier ones)."""
    if raw.startswith("{"):
        data = json.loads(raw)
        return CodeRecord(str(data["hash"]), data.get("next"))
    digest, _, target = raw.partition("|")
    return CodeRecord(digest, target or None)


class CodeKeys:
    """The store keys of one address's code, and the operations on them."""

    def __init__(self, address: str) -> None:
        self.address = address
        #: The record of the code waiting to be used.
        self.record = f"otp:{address}"
        #: Guesses at the current code (a new code starts them again).
        self.tries = f"otp-tries:{address}"
        #: Guesses at any code of the address today.
        self.guesses = f"otp-guesses:{address}"
        #: Set while the address's codes pause (after the day's budget went).
        self.pause = f"otp-pause:{address}"


class Codes:
    """Issue and check the codes of addresses; ``secret_keys`` gives the app's keys, the
    current one first."""

    def __init__(
        self, secret_keys: Callable[[], Sequence[str | bytes]], length: int, ttl: float
    ) -> None:
        self._secret_keys = secret_keys
        self.length = length
        self.ttl = ttl

    def issue(self, keys: CodeKeys, target: str | None) -> tuple[str, list[Op]]:
        """A new code for the address, and the operations that store its record (an
        address that gets no mail gets one too, of a code nobody knows, so verifying
        answers alike for every address) and start its guesses afresh."""
        code = new_code(self.length)
        record = CodeRecord(code_hash(self._secret_keys()[0], keys.address, code), target)
        return code, [("set", keys.record, pack(record), self.ttl), ("delete", keys.tries)]

    def matches(self, keys: CodeKeys, record: CodeRecord, digits: str) -> bool:
        """Whether ``digits`` is the code of ``record`` (constant time, every key tried)."""
        return code_matches(self._secret_keys(), keys.address, digits, record.hash)

    @staticmethod
    def consume(keys: CodeKeys, raw: str) -> list[Op]:
        """The operations that use the code up (compare-and-delete of the very record
        ``raw`` that was checked: of concurrent right guesses one wins) and, the person
        having their inbox, start the day's guesses again. The counters come in name order,
        as :meth:`.Store.hits` counts them: on a SQL store each is a row lock held to the
        commit, and two batches taking them in opposite orders deadlock."""
        return [("pop", keys.record, raw), ("delete", keys.guesses), ("delete", keys.tries)]

    @staticmethod
    def pause(keys: CodeKeys, until: float) -> list[Op]:
        """The operations that pause the address's codes until ``until`` (and void the
        current one)."""
        return [("set", keys.pause, repr(until), DAY), ("delete", keys.record)]
