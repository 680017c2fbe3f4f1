"""How sends leave the request: inline, on a bounded thread pool, or through the app's own
task queue. A send is a :class:`SendJob`, plain data that a queue can carry."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)

#: Threads sending in the background, per process.
BACKGROUND_WORKERS = 4
#: Jobs waiting in the background pool before a new job is sent inline instead.
BACKGROUND_QUEUE = 1000


@dataclass(frozen=True)
class SendJob:
    """One message to send: the connector's name, the keyword arguments of ``send`` (or of
    ``send_template`` when ``template`` is among them), and what to undo if the service
    fails. ``to_dict``/``from_dict`` make it a JSON-safe payload for Celery or RQ."""

    connector: str
    purpose: str
    recipient: str
    message: dict[str, Any]
    release_delete: tuple[str, ...] = ()
    release_unhit: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SendJob:
        return cls(
            connector=data["connector"],
            purpose=data["purpose"],
            recipient=data["recipient"],
            message=dict(data["message"]),
            release_delete=tuple(data.get("release_delete", ())),
            release_unhit=tuple(data.get("release_unhit", ())),
            context=dict(data.get("context", {})),
        )


Runner = Callable[[SendJob], object]


class BackgroundPool:
    """A bounded thread pool per process; pending jobs are flushed at exit."""

    def __init__(self, workers: int = BACKGROUND_WORKERS, queue: int = BACKGROUND_QUEUE) -> None:
        self._workers = workers
        self._queue = queue
        self._slots = threading.BoundedSemaphore(queue)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._pending: set[Future[None]] = set()
        atexit.register(self.shutdown)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(
                    self._workers, thread_name_prefix="postmark-auth-send"
                )
                # A forked child has none of its parent's threads or queued jobs.
                self._pending = set()
                self._slots = threading.BoundedSemaphore(self._queue)
                self._pid = os.getpid()
            return self._executor

    def submit(self, app: Flask, runner: Runner, job: SendJob) -> None:
        """Queue ``job``; when the queue is full, send it inline rather than drop it."""
        pool = self._pool()
        slots = self._slots
        if not slots.acquire(blocking=False):
            log.warning("background send queue is full; sending inline")
            _run_logged(app, runner, job)
            return
        future = pool.submit(_run_logged, app, runner, job)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(lambda done: self._done(done, slots))

    def _done(self, future: Future[None], slots: threading.BoundedSemaphore) -> None:
        with self._lock:
            self._pending.discard(future)
        slots.release()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for every queued job; True when none is left."""
        with self._lock:
            pending = set(self._pending)
        _, not_done = wait(pending, timeout=timeout)
        return not not_done

    def shutdown(self) -> None:
        """Send what is queued, then stop the threads (registered with :mod:`atexit`)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None and self._pid == os.getpid():
            executor.shutdown(wait=True)


def _run_logged(app: Flask, runner: Runner, job: SendJob) -> None:
    with app.app_context():
        try:
            runner(job)
        except Exception:
            # The request has answered already: the failure goes to the log and to the
            # delivery_failed signal the runner sent.
            log.exception("background send (%s) failed", job.purpose)
