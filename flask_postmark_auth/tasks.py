"""Ready ``DELIVERY`` callables for task queues: :func:`celery_delivery` and
:func:`rq_delivery`.

Each seals the job (:mod:`.jobs`: encrypted and authenticated with a key derived from
``SECRET_KEY``, carrying its expiry and the store record it belongs to) and queues it with
the same expiry, keeping no result. The worker opens it with ``SECRET_KEY`` or a fallback,
drops it when it is stale (expired, or its code or link was used or replaced), sends it
otherwise, and retries a transient failure of Postmark while the job is fresh. Celery and RQ
are imported only by the helper that uses them.

The worker process builds the app (``create_app()``): ``init_app`` tells the delivery its
app, and jobs run in that app's context (or in the current one, if the worker already pushed
one, as Flask's Celery pattern does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from flask import Flask, current_app, has_app_context

from .errors import (
    DeliveryFailedError,
    MessageValidationError,
    PostmarkError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from .jobs import FLOW_JOB_TTL, SendJob, fingerprint, seal, still_wanted, unseal
from .mail import MAGIC_LINK, OTP, TAGS
from .state import EXTENSION_KEY, state
from .store import StoreUnavailableError

if TYPE_CHECKING:
    from rq import Queue

__all__ = [
    "RETRY_DELAYS",
    "TASK_NAME",
    "CeleryDelivery",
    "Outcome",
    "QueueDelivery",
    "QueuedSendError",
    "RQDelivery",
    "celery_delivery",
    "rq_delivery",
    "run_sealed",
    "send_from_rq",
]

log = logging.getLogger("flask_postmark_auth")

#: The Celery task's name.
TASK_NAME = "flask_postmark_auth.send"
#: Seconds before each retry of a send that failed for a passing reason (Postmark 5xx or
#: 429, no connection, the store down), after the connector's own three quick retries. A
#: retry that would start after the job expires is not made.
RETRY_DELAYS = (15, 60, 180)
#: Failures worth a retry: Postmark's side or the network, or the store.
TRANSIENT = (ServerError, RateLimitedError, TransportError, StoreUnavailableError)

WORKER_HINT = (
    "no app to run a queued sign-in send in: build your app in the worker process "
    "(create_app(), which calls auth.init_app) or run the worker in its app context"
)

#: The app each RQ queue's jobs run in, by queue name (set by ``init_app``).
_RQ_APPS: dict[str, Flask] = {}


class QueuedSendError(Exception):
    """A queued send failed for a passing reason and is retried (no address, no cause
    attached: queues keep and log the errors of their jobs)."""


@dataclass(frozen=True)
class Outcome:
    """What a worker did with a sealed job. ``status`` is ``"sent"``, ``"dropped"`` (forged,
    expired, or its code or link was used or replaced), ``"failed"`` (for good) or
    ``"retry"`` (a passing failure); ``purpose`` is the job's (``"otp"``, ``"magic_link"``
    or a flow step's; empty when the job could not be opened); ``expires_in`` is how long
    the job still had, in seconds (0 when it could not be opened or had expired)."""

    status: Literal["sent", "dropped", "failed", "retry"]
    purpose: str = ""
    expires_in: float = 0.0


def _secret_keys(app: Flask) -> list[str | bytes]:
    config = app.config
    if not config.get("SECRET_KEY"):
        raise RuntimeError("Queued sends are sealed with app.config['SECRET_KEY']; set it.")
    return [config["SECRET_KEY"], *(config.get("SECRET_KEY_FALLBACKS") or [])]


def _lifetime(job: SendJob, app: Flask) -> float:
    settings = state(app).settings
    if job.purpose == OTP:
        return float(settings.otp_ttl)
    if job.purpose == MAGIC_LINK:
        return float(settings.magic_link_ttl)
    return float(FLOW_JOB_TTL)


class QueueDelivery:
    """A ``DELIVERY`` callable that seals each job and hands it, with its lifetime in
    seconds, to :meth:`enqueue`; the worker passes the sealed text to :func:`run_sealed`.
    Subclass it for another queue."""

    def __init__(self) -> None:
        #: The app this delivery was set up on (the latest, if several).
        self.app: Flask | None = None

    def init_app(self, app: Flask) -> None:
        """Called by the extension's ``init_app``: remember ``app`` (the latest, if several),
        the app whose ``SECRET_KEY`` and store seal jobs queued outside an app context."""
        self.app = app

    def __call__(self, job: SendJob) -> None:
        sealed, ttl = self.seal(job)
        self.enqueue(sealed, ttl)

    def seal(self, job: SendJob) -> tuple[str, float]:
        """``job`` sealed with the current app's ``SECRET_KEY``, and its lifetime: a code's
        or a link's TTL (bound to the record stored for it), or ``FLOW_JOB_TTL``."""
        app = _current_app() if has_app_context() else self.app
        if app is None:
            raise RuntimeError(WORKER_HINT)
        store = state(app).store
        ttl = _lifetime(job, app)
        key = job.release_delete[-1] if job.purpose in TAGS and job.release_delete else None
        record = fingerprint(store.get(key)) if key is not None else None
        sealed = seal(
            job, _secret_keys(app)[0], expires_at=store.clock() + ttl, key=key, record=record
        )
        return sealed, ttl

    def enqueue(self, sealed: str, ttl: float) -> None:
        """Put ``sealed`` on the queue, to be dropped by it after ``ttl`` seconds."""
        raise NotImplementedError


def _current_app() -> Flask:
    found: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return found


def _worker_app(app: Flask | None) -> Flask:
    if has_app_context() and EXTENSION_KEY in current_app.extensions:
        return _current_app()
    if app is None:
        raise RuntimeError(WORKER_HINT)
    return app


def run_sealed(sealed: str, app: Flask | None = None) -> Outcome:
    """Carry out a sealed job in a worker and say what came of it: open ``sealed`` (the text
    :meth:`QueueDelivery.seal` made), drop it when forged or stale, else send it
    (``service.run_job``). A failed send is an :class:`Outcome` too, never an exception.

    Runs in the current app's context when the extension is set up there, else in
    ``app``'s; raises :class:`RuntimeError` when there is neither, or no ``SECRET_KEY``."""
    target = _worker_app(app)
    with target.app_context():
        return _carry_out(target, sealed)


def _carry_out(app: Flask, sealed: str) -> Outcome:
    st = state(app)
    opened = unseal(sealed, _secret_keys(app))
    if opened is None:
        log.warning(
            "dropped a queued send: it is not sealed with this app's SECRET_KEY or a "
            "fallback (tampered with, or another app's)"
        )
        return Outcome("dropped")
    purpose = opened.job.purpose
    left = opened.expires_at - st.store.clock()
    if left <= 0:
        log.info("dropped a queued %s send: it expired before a worker took it", purpose)
        return Outcome("dropped", purpose)
    try:
        if not still_wanted(opened, st.store):
            log.info(
                "dropped a queued %s send: its code or link was used, replaced or expired",
                purpose,
            )
            return Outcome("dropped", purpose, left)
        st.service.run_job(opened.job)
    except DeliveryFailedError as exc:  # logged and signalled by run_job
        transient = isinstance(exc.__cause__, TRANSIENT)
    except TRANSIENT as exc:
        if isinstance(exc, StoreUnavailableError):
            log.warning("queued %s send: the store is unavailable", purpose)
        transient = True
    except (PostmarkError, MessageValidationError):  # a flow step's, logged by run_job
        transient = False
    except Exception as exc:
        # The app's own code (its find_user, say) failed; no traceback, which could hold
        # the address in a driver's parameters.
        log.error("queued %s send failed: %s", purpose, type(exc).__name__)
        transient = False
    else:
        return Outcome("sent", purpose, left)
    return Outcome("retry" if transient else "failed", purpose, left)


def _next_delay(attempt: int, outcome: Outcome, delays: Sequence[int]) -> int | None:
    """Seconds before retry ``attempt`` (0 for the first), or ``None`` to give up."""
    if attempt < len(delays) and delays[attempt] < outcome.expires_in:
        return delays[attempt]
    log.error("queued %s send: gave up after %d retries", outcome.purpose, attempt)
    return None


# -- Celery ---------------------------------------------------------------------------------


def _celery_send(task: Any, sealed: str) -> None:
    outcome = run_sealed(sealed, getattr(task, "flask_app", None))
    if outcome.status != "retry":
        return
    delays: Sequence[int] = getattr(task, "retry_delays", RETRY_DELAYS)
    delay = _next_delay(int(task.request.retries or 0), outcome, delays)
    if delay is not None:
        raise task.retry(
            countdown=delay,
            max_retries=len(delays),
            exc=QueuedSendError(f"sending {outcome.purpose} failed; retrying in {delay} s"),
        )


class CeleryDelivery(QueueDelivery):
    """``DELIVERY`` through a Celery task (see :func:`celery_delivery`, which makes it):
    ``task`` is the registered task, ``queue`` the queue each job is sent to (``None``: the
    task's default routing)."""

    def __init__(self, task: Any, queue: str | None = None) -> None:
        super().__init__()
        #: The registered Celery task.
        self.task = task
        self.queue = queue

    def __repr__(self) -> str:
        return f"celery_delivery(task={self.task.name!r}, queue={self.queue!r})"

    def init_app(self, app: Flask) -> None:
        """:meth:`QueueDelivery.init_app`, and the task learns ``app``: a worker that pushed
        no app context of its own runs the jobs in it."""
        super().init_app(app)
        self.task.flask_app = app

    def enqueue(self, sealed: str, ttl: float) -> None:
        options: dict[str, Any] = {"expires": ttl, "serializer": "json", "ignore_result": True}
        if self.queue is not None:
            options["queue"] = self.queue
        self.task.apply_async((sealed,), **options)


def celery_delivery(
    celery_app: Any,
    *,
    name: str = TASK_NAME,
    queue: str | None = None,
    retry_delays: Sequence[int] = RETRY_DELAYS,
) -> CeleryDelivery:
    """A ``DELIVERY`` callable that sends through ``celery_app``: it registers the task
    ``name`` (no result kept, JSON only) and queues each sealed job on ``queue`` (default:
    Celery's), expiring with its code or link; a passing failure is retried after each of
    ``retry_delays`` seconds in turn while the job is fresh."""
    task = celery_app.task(
        name=name,
        bind=True,
        shared=False,
        lazy=False,
        ignore_result=True,
        serializer="json",
        max_retries=len(retry_delays),
    )(_celery_send)
    task.retry_delays = tuple(retry_delays)
    return CeleryDelivery(task, queue)


# -- RQ -------------------------------------------------------------------------------------


def send_from_rq(sealed: str) -> None:
    """The RQ job function: :func:`run_sealed` of ``sealed`` in the app set up on the job's
    queue. A passing failure raises :class:`QueuedSendError` while a retry is left that
    starts before the job expires, so RQ retries it; any other outcome returns, and RQ
    counts the job as finished (a ``failed`` one included: the log tells)."""
    from rq import get_current_job

    job = get_current_job()
    outcome = run_sealed(sealed, _RQ_APPS.get(job.origin) if job is not None else None)
    if outcome.status != "retry" or job is None:
        return
    delays = list(job.retry_intervals or ())
    delay = _next_delay(len(delays) - (job.retries_left or 0), outcome, delays)
    if delay is not None:  # RQ schedules the retry that many seconds later
        raise QueuedSendError(f"sending {outcome.purpose} failed; retrying in {delay} s")


class RQDelivery(QueueDelivery):
    """``DELIVERY`` through an RQ queue (see :func:`rq_delivery`, which makes it): ``queue``
    is the :class:`rq.Queue` jobs go on, ``retry_delays`` the seconds before each retry of a
    passing failure."""

    def __init__(self, queue: Queue, retry_delays: Sequence[int] = RETRY_DELAYS) -> None:
        super().__init__()
        self.queue = queue
        self.retry_delays = tuple(retry_delays)

    def __repr__(self) -> str:
        return f"rq_delivery(queue={self.queue.name!r})"

    def init_app(self, app: Flask) -> None:
        """:meth:`QueueDelivery.init_app`, and ``app`` becomes the app :func:`send_from_rq`
        runs this queue's jobs in, by queue name: per process, the latest app set up on a
        queue of that name wins."""
        super().init_app(app)
        _RQ_APPS[self.queue.name] = app

    def enqueue(self, sealed: str, ttl: float) -> None:
        from rq import Retry

        seconds = max(1, int(ttl))
        self.queue.enqueue(
            send_from_rq,
            sealed,
            ttl=seconds,
            result_ttl=0,
            failure_ttl=seconds,
            retry=Retry(max=len(self.retry_delays), interval=list(self.retry_delays)),
            description="flask_postmark_auth send",
        )


def rq_delivery(queue: Queue, *, retry_delays: Sequence[int] = RETRY_DELAYS) -> RQDelivery:
    """A ``DELIVERY`` callable that queues each sealed job on the RQ ``queue``: no result
    kept, expiring with its code or link; a passing failure is retried after each of
    ``retry_delays`` seconds in turn while the job is fresh (RQ's scheduler runs the
    retries: ``Worker(...).work(with_scheduler=True)``)."""
    return RQDelivery(queue, retry_delays)
