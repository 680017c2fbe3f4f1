"""``FakeClock``: time that moves only when a test says so."""

from __future__ import annotations


class FakeClock:
    """A clock for ``PostmarkAuth(clock=...)``: codes, links and throttles expire when the
    test calls :meth:`advance`, never by sleeping. ``now`` is where it starts, in seconds
    since the epoch (by default 2027-01-15 08:00 UTC); calling the clock returns it, and it
    stays as the ``now`` attribute, which a test may also set.

    ::

        clock = FakeClock()
        auth = PostmarkAuth(clock=clock)
        ...
        clock.advance(601)  # the code has expired
    """

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (a negative number moves it back)."""
        self.now += seconds
