"""How sends leave the request: inline, on a bounded thread pool, or through the app's own
task queue. A send is a :class:`SendJob` (:mod:`.jobs`), plain data that a queue can carry;
the :class:`Dispatcher` hands it to ``DELIVERY`` and carries it out."""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

from flask import Flask

from . import signals
from .addresses import mask_email, scrub_addresses
from .connector import PostmarkConnector, SendResult
from .errors import DeliveryFailedError, MessageValidationError, PostmarkError, SignInError
from .jobs import SendJob
from .mail import OTP, TAGS, SignInMail
from .store import Store, StoreUnavailableError

log = logging.getLogger(__name__)
#: Where sends are logged, as the rest of sign-in is.
sign_in_log = logging.getLogger("flask_postmark_auth")

#: Threads sending in the background, per process.
BACKGROUND_WORKERS = 4
#: Jobs waiting in the background pool before a new job is sent inline instead.
BACKGROUND_QUEUE = 1000

__all__ = ["BACKGROUND_QUEUE", "BACKGROUND_WORKERS", "BackgroundPool", "Dispatcher", "SendJob"]


Runner = Callable[[SendJob], object]

_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]*@")


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
            # Not inline: only addresses that get mail would answer a Postmark round trip
            # later, and the answer's timing would tell them apart.
            log.error("background send queue is full; dropped a %s send", job.purpose)
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
        except Exception as exc:
            # The request has answered already: the failure goes to the log and to the
            # delivery_failed signal the runner sent. No traceback: an app's own errors
            # (a database driver's, say) can carry the address in their parameters.
            log.error(
                "background send (%s) failed: %s: %s",
                job.purpose,
                type(exc).__name__,
                scrub_addresses(str(exc)),
            )


class Dispatcher:
    """Hands jobs to ``DELIVERY`` (``mode``) and carries them out.

    A sign-in job arrives with its email's context only: the job looks the address up
    (``may_send(address) -> (bool, user)``), decides whether it gets mail and composes it,
    all off the request path with background delivery, so that path does the same work for
    every address.
    """

    def __init__(
        self,
        *,
        app: Flask,
        mode: str | Callable[[SendJob], object],
        connectors: Mapping[str, PostmarkConnector],
        store: Store,
        mail: SignInMail,
        may_send: Callable[[str], tuple[bool, Any]],
        background: BackgroundPool | None,
    ) -> None:
        self.app = app
        self.mode = mode
        self.connectors = connectors
        self.store = store
        self.mail = mail
        self._may_send = may_send
        self._background = background
        # A ready task-queue delivery (flask_postmark_auth.tasks) learns its app here, so a
        # worker process that built the app finds it.
        bind = getattr(mode, "init_app", None)
        if callable(bind):
            bind(app)

    def deliver(self, job: SendJob) -> SendResult | None:
        """Hand ``job`` to ``DELIVERY``: sent inline (its result returned), queued on the
        background pool, or passed to the app's callable (``None``). A callable that fails
        (a task queue whose broker is down) gives back what the job used and raises
        :class:`DeliveryFailedError`, as a failed sync send does."""
        if self.mode == "background" and self._background is not None:
            self._background.submit(self.app, self.run_job, job)
        elif callable(self.mode):
            try:
                self.mode(job)
            except (SignInError, StoreUnavailableError):
                self.give_back(job.release_delete, job.release_unhit)
                raise
            except Exception as exc:
                # The queue refused the job (its broker is down, say): every address is
                # queued alike, so this answers 503 for all and gives back what it used.
                self.give_back(job.release_delete, job.release_unhit)
                self._queue_failed(job, exc)
                raise DeliveryFailedError() from exc
            except BaseException:
                self.give_back(job.release_delete, job.release_unhit)
                raise
        else:
            return self.run_job(job)
        return None

    def _queue_failed(self, job: SendJob, exc: Exception) -> None:
        signals.delivery_failed.send(self.app, email=job.recipient, error=exc, purpose=job.purpose)
        # A broker's error may name its URL: no credentials, no addresses in the log.
        reason = scrub_addresses(_CREDENTIALS.sub(r"\1***@", str(exc)))
        sign_in_log.error(
            "DELIVERY could not queue the %s send: %s: %s", job.purpose, type(exc).__name__, reason
        )

    def run_job(self, job: SendJob) -> SendResult | None:
        """Carry out ``job``: for sign-in mail, look the address up, decide whether it gets
        mail and compose it, then send it; fire ``delivery_failed`` if sending fails.

        For sign-in mail, a recipient's fault (inactive, invalid) counts as sent, so the
        answer does not reveal the address; a fault of the service gives back the throttles
        the send used and raises :class:`DeliveryFailedError`. Any other job (a flow step)
        raises the connector's error for its caller to report.
        """
        if job.purpose not in TAGS:
            return self._send(job)
        try:
            may_send, user = self._may_send(job.recipient)
            if not may_send:
                # Its code or link stays until it expires, as one that was sent does: the
                # browser that asked sees the same status for every address.
                return None
            if not job.message:
                job = replace(job, message=self.mail.compose(job.purpose, job.context))
        except BaseException:
            self._give_back_inline(job)
            raise
        result = self._send(job)
        sent = signals.code_sent if job.purpose == OTP else signals.magic_link_sent
        sent.send(self.app, email=job.recipient, user=user)
        return result

    def _give_back_inline(self, job: SendJob) -> None:
        """Give back what a failed sign-in send used, with sync delivery only: there the
        503 tells the person to retry at once. Off the request path only an address that
        gets mail could fail this way, so giving back would tell it apart from one that
        gets none (asking twice during an outage would say which)."""
        if self.mode == "sync":
            self.give_back(job.release_delete, job.release_unhit)

    def give_back(self, delete: Sequence[str], unhit: Sequence[str]) -> None:
        """Undo what a send that never happened used: its resend wait, its hourly quota
        and its code or link."""
        for entry in delete:
            self.store.delete(entry)
        for entry in unhit:
            self.store.undo_hit(entry)

    def _send(self, job: SendJob) -> SendResult | None:
        connector = self.connectors[job.connector]
        options = dict(job.message)
        try:
            if "template" in options:
                result = connector.send_template(
                    options.pop("to"), options.pop("template"), options.pop("model"), **options
                )
            else:
                result = connector.send(options.pop("to"), options.pop("subject"), **options)
        except (PostmarkError, MessageValidationError) as exc:
            signals.delivery_failed.send(
                self.app, email=job.recipient, error=exc, purpose=job.purpose
            )
            reason = scrub_addresses(str(exc))  # Postmark's texts name the recipient
            to = mask_email(job.recipient)
            if job.purpose not in TAGS:
                sign_in_log.warning("%s to %s failed: %s", job.purpose, to, reason)
                raise
            if isinstance(exc, PostmarkError) and exc.recipient_error:
                sign_in_log.warning("Postmark refused mail for %s: %s", to, reason)
                return None
            sign_in_log.error("sending %s to %s failed: %s", job.purpose, to, reason)
            self._give_back_inline(job)
            raise DeliveryFailedError() from exc
        sign_in_log.info("sent %s to %s", job.purpose, mask_email(job.recipient))
        return result
