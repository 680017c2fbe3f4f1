"""The app of ``test_task_queues.py``, on both sides of the queue: the test process builds it
to ask for codes and links, and the worker processes build it from the environment, as a
deployment's worker builds its app.

- Celery: ``celery -A tests.reliability.task_queue_app:celery_app worker ...`` with
  ``TQ_KIND=celery`` (this module then makes the Celery app and the Flask app at import);
- RQ: ``python -m tests.reliability.task_queue_app`` with ``TQ_KIND=rq``.

``TQ_BROKER``, ``TQ_QUEUE``, ``TQ_PREFIX`` (Redis key prefix), ``TQ_BACKEND`` (Celery's result
backend), ``TQ_STORE``, ``TQ_API_URL``/``TQ_TOKEN`` (FakePostmark), ``TQ_RETRY`` (JSON list of
retry delays) and ``SECRET_KEY`` configure it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from flask import Flask

from flask_postmark_auth import PostmarkAuth, PostmarkConnector
from flask_postmark_auth.tasks import celery_delivery, rq_delivery

FROM = "Acme <login@acme.example>"
#: A task that keeps its result: the control showing where results would be found.
CONTROL_TASK = "tests.control"


def make_celery(broker: str, queue: str, prefix: str, backend: str) -> Any:
    """A Celery app on ``broker`` whose keys (Redis) carry ``prefix`` and whose only queue
    and exchange are ``queue``; results, if any task kept one, would go to ``backend``."""
    from celery import Celery

    celery_app = Celery(
        "postmark-auth-tests", broker=broker, backend=backend, set_as_current=False
    )
    celery_app.conf.update(
        task_default_queue=queue,
        task_default_exchange=queue,
        task_default_routing_key=queue,
        result_backend_transport_options={"global_keyprefix": prefix},
        broker_connection_retry_on_startup=True,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_prefetch_multiplier=1,
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0},
    )
    if broker.startswith("redis"):
        celery_app.conf.broker_transport_options = {"global_keyprefix": prefix}
    celery_app.task(name=CONTROL_TASK, shared=False)(_control)
    return celery_app


def _control() -> str:
    return "kept"


def create_app(delivery: Any, *, store: str, api_url: str, token: str, secret_key: str) -> Flask:
    """The Flask app, with ``delivery`` as ``DELIVERY`` and FakePostmark as Postmark."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        TESTING=True,
        WTF_CSRF_ENABLED=False,
        POSTMARK_AUTH_CONNECTORS={
            "default": PostmarkConnector(
                "default", server_token=token, from_email=FROM, api_url=api_url, backoff=0
            )
        },
        POSTMARK_AUTH_DEV_OUTBOX=False,
        POSTMARK_AUTH_STORE=store,
        POSTMARK_AUTH_DELIVERY=delivery,
        POSTMARK_AUTH_RESEND_INTERVAL=0,
        POSTMARK_AUTH_IP_REQUESTS_PER_HOUR=10_000,
        POSTMARK_AUTH_FLOWS={
            "contact": {
                "steps": [
                    {"to": "{{ form.email }}", "subject": "Thanks", "text": "{{ form.msg }}"}
                ]
            }
        },
    )
    PostmarkAuth(app)
    return app


def _retry() -> Sequence[int]:
    delays: list[int] = json.loads(os.environ.get("TQ_RETRY", "[15, 60, 180]"))
    return delays


def _app_from_env(delivery: Any) -> Flask:
    return create_app(
        delivery,
        store=os.environ["TQ_STORE"],
        api_url=os.environ["TQ_API_URL"],
        token=os.environ["TQ_TOKEN"],
        secret_key=os.environ["SECRET_KEY"],
    )


if os.environ.get("TQ_KIND") == "celery":
    celery_app = make_celery(
        os.environ["TQ_BROKER"],
        os.environ["TQ_QUEUE"],
        os.environ["TQ_PREFIX"],
        os.environ["TQ_BACKEND"],
    )
    flask_app = _app_from_env(
        celery_delivery(celery_app, queue=os.environ["TQ_QUEUE"], retry_delays=_retry())
    )


def rq_worker() -> None:
    """The RQ worker: the app built first, then the worker (with its scheduler, which runs
    the retries)."""
    from redis import Redis
    from rq import Queue, Worker

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    connection = Redis.from_url(os.environ["TQ_BROKER"])
    queue = Queue(os.environ["TQ_QUEUE"], connection=connection)
    _app_from_env(rq_delivery(queue, retry_delays=_retry()))
    worker = Worker([queue], connection=connection, name=f"{queue.name}-worker")
    worker.work(with_scheduler=True)


if __name__ == "__main__":
    rq_worker()
