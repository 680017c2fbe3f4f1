"""Task queues through real workers (SPEC section 12, "Task queues"): a Celery worker on
Redis and on RabbitMQ, and an RQ worker on Redis, each a process of its own that builds the
app (``task_queue_app.py``) as a deployment's worker does.

The test process asks for codes, a link and a flow email with the workers stopped, reads
what the broker holds (no code, link, address or message text in clear, in any decoding),
then starts the worker and signs in with what FakePostmark received. On the way: a code
replaced before the worker took it is dropped, a Postmark 503 is retried by the queue and
the retried code works, and the queue keeps no result (a control task that keeps one shows
where it would be)."""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_postmark_auth import PostmarkAuth
from flask_postmark_auth.jobs import SEALED_PREFIX
from flask_postmark_auth.tasks import celery_delivery, rq_delivery
from flask_postmark_auth.testing import FakePostmark, RecordedMessage, code_in, link_in
from support.processes import missing
from support.redis_server import delete_prefix, server_url, unique_prefix
from support.workers import WorkerProcess
from tests.reliability import task_queue_app

pytestmark = pytest.mark.reliability

SECRET_KEY = "task-queue-tests-0123456789abcdef"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
FLOW_TEXT = "flow-text-6c1f0e"
#: Who asks for what, in this order; carl asks twice, so his first code is replaced.
ASKS = [
    ("otp", "ann@example.com"),
    ("magic_link", "bob@example.com"),
    ("otp", "carl@example.com"),
    ("otp", "carl@example.com"),
]
FLOW_TO = "erin@example.com"
ADDRESSES = {email for _, email in ASKS} | {FLOW_TO}
ROUTE = {"otp": "/auth/otp", "magic_link": "/auth/magic-link"}


@dataclass
class Run:
    """One run's names, so it shares the machine's Redis and RabbitMQ with nobody."""

    redis_url: str
    tmp_path: Path
    fake: FakePostmark
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def queue(self) -> str:
        return f"postmark-auth-test-{self.token}"

    @property
    def store(self) -> str:
        return f"sqlite:///{self.tmp_path}/auth.db"

    def env(self, kind: str, broker: str, prefix: str = "") -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("POSTMARK_AUTH_", "FLASK_", "CELERY", "TQ_", "SECRET_KEY"))
        }
        env.update(
            SECRET_KEY=SECRET_KEY,
            TQ_KIND=kind,
            TQ_BROKER=broker,
            TQ_QUEUE=self.queue,
            TQ_PREFIX=prefix,
            TQ_BACKEND=self.redis_url,
            TQ_STORE=self.store,
            TQ_API_URL=self.fake.url,
            TQ_TOKEN=self.fake.server_token,
            TQ_RETRY="[1]",
        )
        return env

    def app(self, delivery: Any) -> Flask:
        return task_queue_app.create_app(
            delivery,
            store=self.store,
            api_url=self.fake.url,
            token=self.fake.server_token,
            secret_key=SECRET_KEY,
        )


@pytest.fixture
def run(request: pytest.FixtureRequest, tmp_path: Path, fake_postmark: FakePostmark) -> Run:
    return Run(server_url(request.config), tmp_path, fake_postmark)


def ask_everything(app: Flask) -> None:
    client = app.test_client()
    for method, email in ASKS:
        response = client.post(ROUTE[method], json={"email": email})
        assert response.status_code == 202, response.get_data(as_text=True)
    with app.test_request_context():
        result = PostmarkAuth().run_flow("contact", form={"email": FLOW_TO, "msg": FLOW_TEXT})
    assert [s.status for s in result.steps] == ["queued"]


def assert_nothing_in_clear(payloads: list[str], sealed: list[str]) -> None:
    """What the broker held, in each decoding: sealed jobs only, one per ask and flow."""
    assert len(sealed) == len(ASKS) + 1
    assert all(s.startswith(SEALED_PREFIX) for s in sealed)
    text = "\n".join(payloads)
    for shown in [*ADDRESSES, FLOW_TEXT, "example.com", '"code"', "magic-link/"]:
        assert shown not in text


def assert_delivered_and_sign_in(app: Flask, fake: FakePostmark) -> list[str]:
    """Wait for the worker: one mail per address (carl's replaced code never goes out),
    each of which signs in. Returns the secrets that were mailed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and {m.to for m in fake.messages} != ADDRESSES:
        time.sleep(0.1)
    time.sleep(0.5)  # anything still to come (it must not) would come now
    messages = list(fake.messages)
    assert sorted(m.to for m in messages) == sorted(ADDRESSES), [m.to for m in messages]
    by_to: dict[str, RecordedMessage] = {m.to: m for m in messages}
    client = app.test_client()
    secrets = []
    for method, email in ASKS[:3]:
        message = by_to[email]
        if method == "otp":
            code = code_in(message)
            answer = client.post("/auth/otp/verify", json={"email": email, "code": code})
            secrets.append(code)
        else:
            path = link_in(message)
            answer = client.post(path, json={})
            secrets.append(path.rsplit("/", 1)[-1])
        assert answer.status_code == 200, (email, answer.get_data(as_text=True))
    assert FLOW_TEXT in (by_to[FLOW_TO].text_body or "")
    return secrets


# -- Celery ---------------------------------------------------------------------------------


def amqp_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def celery_worker(run: Run, broker: str, prefix: str) -> WorkerProcess:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.reliability.task_queue_app:celery_app",
        "worker",
        "--queues",
        run.queue,
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "--hostname",
        f"{run.queue}@localhost",
        "--loglevel",
        "INFO",
    ]
    return WorkerProcess(
        f"celery-{run.token}",
        argv,
        run.env("celery", broker, prefix),
        run.tmp_path,
        ready="ready.",
    )


def redis_messages(run: Run, prefix: str) -> tuple[list[str], list[str]]:
    """Kombu's messages in the queue's Redis list: the raw entries and their decoded bodies,
    and the sealed jobs they carry."""
    import redis

    client = redis.Redis.from_url(run.redis_url, decode_responses=True)
    try:
        raw = [str(item) for item in client.lrange(f"{prefix}{run.queue}", 0, -1)]
    finally:
        client.close()
    payloads, sealed = list(raw), []
    for item in raw:
        body = base64.b64decode(json.loads(item)["body"]).decode()
        payloads.append(body)
        sealed.extend(json.loads(body)[0])
    return payloads, sealed


def amqp_connection() -> Any:
    from kombu.connection import Connection

    return Connection(AMQP_URL)  # type: ignore[no-untyped-call]


def amqp_messages(run: Run) -> tuple[list[str], list[str]]:
    """The queue's messages as RabbitMQ holds them (bodies and headers), read without an
    ack so that closing the channel puts them back."""
    payloads: list[str] = []
    sealed: list[str] = []
    with amqp_connection() as connection:
        channel = connection.channel()
        try:
            while (message := channel.basic_get(run.queue, no_ack=False)) is not None:
                body = message.body.decode() if isinstance(message.body, bytes) else message.body
                payloads += [body, json.dumps(message.headers, default=str)]
                sealed.extend(json.loads(body)[0])
        finally:
            channel.close()
    return payloads, sealed


def amqp_cleanup(run: Run) -> None:
    with amqp_connection() as connection:
        channel = connection.channel()
        try:
            channel.queue_delete(run.queue)
            channel.exchange_delete(run.queue)
        finally:
            channel.close()


def result_keys(run: Run, prefix: str) -> set[str]:
    import redis

    client = redis.Redis.from_url(run.redis_url)
    try:
        pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
        keys = {key.decode() for key in client.scan_iter(match=pattern, count=1000)}
        queued = client.llen(f"{prefix}{run.queue}")
    finally:
        client.close()
    assert queued == 0  # every message was taken and acknowledged
    return {key for key in keys if "celery-task-meta-" in key}


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_celery_worker_delivers_sealed_jobs_that_sign_in_and_keeps_nothing(
    run: Run, broker: str, report: Callable[[str], None]
) -> None:
    if broker == "rabbitmq" and not amqp_reachable():
        missing("RabbitMQ", "start rabbitmq-server on 127.0.0.1:5672 (guest/guest)")
    prefix = unique_prefix()
    broker_url = run.redis_url if broker == "redis" else AMQP_URL
    celery_app = task_queue_app.make_celery(broker_url, run.queue, prefix, run.redis_url)
    try:
        app = run.app(celery_delivery(celery_app, queue=run.queue, retry_delays=[1]))
        ask_everything(app)
        if broker == "redis":
            payloads, sealed = redis_messages(run, prefix)
        else:
            payloads, sealed = amqp_messages(run)
        assert_nothing_in_clear(payloads, sealed)
        run.fake.fail(503, times=4)  # the first job fails, with the connector's 3 retries
        started = time.monotonic()
        with celery_worker(run, broker_url, prefix) as worker:
            secrets = assert_delivered_and_sign_in(app, run.fake)
            took = time.monotonic() - started
            assert len(run.fake.requests) == len(ADDRESSES) + 4
            log = worker.log()
            assert "Retry in 1s" in log, log[-3000:]
            assert "its code or link was used, replaced or expired" in log, log[-3000:]
            # The control task keeps its result where ours would be: only it is there.
            control = celery_app.send_task(task_queue_app.CONTROL_TASK, queue=run.queue)
            assert control.get(timeout=30) == "kept"
            [kept] = result_keys(run, prefix)  # the control's, and no other
            assert kept.startswith(prefix)
            assert kept.endswith(f"celery-task-meta-{control.id}")
            control.forget()
            for secret in secrets:
                assert secret not in log
            assert not any(address in log for address in ADDRESSES)
        report(
            f"celery ({broker}): {len(sealed)} sealed jobs, delivered and signed in "
            f"{took:.1f} s after the worker was started (one 503 retried after 1 s)"
        )
    finally:
        # Celery's close() leaves its connections open: close them, then the app.
        celery_app.amqp.producer_pool.force_close_all()
        celery_app.pool.force_close_all()
        celery_app.close()
        delete_prefix(run.redis_url, prefix)
        if broker == "rabbitmq":
            amqp_cleanup(run)


# -- RQ -------------------------------------------------------------------------------------


def rq_keys(connection: Any, run: Run, job_ids: list[str]) -> set[str]:
    found = {key.decode() for key in connection.scan_iter(match=f"rq:*{run.queue}*", count=1000)}
    for job_id in job_ids:
        found |= {key.decode() for key in connection.scan_iter(match=f"rq:*{job_id}*")}
    return found


def test_rq_worker_delivers_sealed_jobs_that_sign_in_and_keeps_nothing(
    run: Run, report: Callable[[str], None]
) -> None:
    from redis import Redis
    from rq import Queue
    from rq.job import Job
    from rq.results import Result

    connection = Redis.from_url(run.redis_url)
    queue = Queue(run.queue, connection=connection)
    job_ids: list[str] = []
    try:
        app = run.app(rq_delivery(queue, retry_delays=[1]))
        ask_everything(app)
        job_ids = list(queue.job_ids)
        payloads: list[str] = []
        sealed: list[str] = []
        for job_id in job_ids:
            stored = connection.hgetall(f"rq:job:{job_id}")
            payloads += [repr(value) for value in stored.values()]
            data = stored[b"data"]
            assert isinstance(data, bytes)
            payloads.append(repr(zlib.decompress(data)))
            sealed.extend(Job.fetch(job_id, connection=connection).args)
        assert_nothing_in_clear(payloads, sealed)
        run.fake.fail(503, times=4)
        started = time.monotonic()
        worker = WorkerProcess(
            f"rq-{run.token}",
            [sys.executable, "-m", "tests.reliability.task_queue_app"],
            run.env("rq", run.redis_url),
            run.tmp_path,
            ready="Listening on",
        )
        with worker:
            secrets = assert_delivered_and_sign_in(app, run.fake)
            took = time.monotonic() - started
            assert len(run.fake.requests) == len(ADDRESSES) + 4
            # The control job keeps its result where ours would be: only it is there.
            control = queue.enqueue("os.getpid", result_ttl=60)
            deadline = time.monotonic() + 30
            while control.latest_result() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert control.latest_result() is not None
            left = rq_keys(connection, run, [*job_ids, control.id])
            assert not any(job_id in key for key in left for job_id in job_ids), left
            assert Result.get_key(control.id) in left  # type: ignore[no-untyped-call]
            log = worker.log()
            assert "its code or link was used, replaced or expired" in log, log[-3000:]
            for secret in secrets:
                assert secret not in log
            assert not any(address in log for address in ADDRESSES)
        report(
            f"rq: {len(sealed)} sealed jobs, delivered and signed in {took:.1f} s after the "
            "worker was started (one 503 retried after 1 s)"
        )
    finally:
        queue.delete(delete_jobs=True)
        for key in rq_keys(connection, run, job_ids):
            connection.delete(key)
        connection.close()
