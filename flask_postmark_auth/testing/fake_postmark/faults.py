"""Fault injection: the queued error answers, HTML pages, dropped connections and slow-downs
that :meth:`~.FakePostmark.fail` and its siblings set up for the next requests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .replies import Reply, error
from .wording import MSG_AUTH_WRONG

#: A fault answer's default ErrorCode and Message, by HTTP status.
FAULT_DEFAULTS: dict[int, tuple[int, str]] = {
    401: (10, MSG_AUTH_WRONG),
    422: (300, "Invalid email request"),
    429: (429, "Rate limit exceeded: please reduce the request rate."),
    500: (101, "You encountered an error that shouldn't have occurred."),
    503: (100, "The Postmark API is offline for maintenance."),
}

#: The page :meth:`~.FakePostmark.fail_html` answers by default, as a proxy would.
DEFAULT_HTML = (
    "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
    "<center><h1>403 Forbidden</h1></center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class Fault:
    remaining: int
    path: str | None
    reply: Reply | None  # None: drop the connection


@dataclass
class Slow:
    seconds: float
    remaining: int


def error_reply(status: int, error_code: int | None, message: str | None) -> Reply:
    """A Postmark error answer; the code and text default to ones that fit ``status``."""
    default_code, default_message = FAULT_DEFAULTS.get(
        status, (0, f"HTTP {status} from FakePostmark.")
    )
    code = default_code if error_code is None else error_code
    return error(status, code, default_message if message is None else message)


def html_reply(status: int, body: str) -> Reply:
    """A non-JSON ``text/html`` answer."""
    return Reply(status, body.encode("utf-8"), content_type="text/html; charset=utf-8")


def times_at_least_one(times: int) -> int:
    if times < 1:
        raise ValueError("times must be at least 1")
    return times


class Faults:
    """The pending faults and slow-downs, each consumed first in, first out.

    Not thread-safe on its own: the fake holds its lock around every call.
    """

    def __init__(self) -> None:
        self.faults: deque[Fault] = deque()
        self.slow: deque[Slow] = deque()

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def add_slow(self, seconds: float, times: int) -> None:
        self.slow.append(Slow(seconds, times))

    def clear(self) -> None:
        self.faults.clear()
        self.slow.clear()

    def next_delay(self, default: float) -> float:
        """Seconds the next request waits: the first pending slow-down's, else ``default``."""
        if not self.slow:
            return default
        slow = self.slow[0]
        slow.remaining -= 1
        if slow.remaining <= 0:
            self.slow.popleft()
        return slow.seconds

    def take(self, path: str) -> tuple[bool, Reply | None]:
        """(True, answer or None to drop) for the first queued fault matching ``path``."""
        for fault in self.faults:
            if fault.path is None or fault.path == path:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return True, fault.reply
        return False, None
