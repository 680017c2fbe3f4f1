"""Task-queue delivery (SPEC section 12, "Task queues"): sealed jobs (encrypted and
authenticated with a key from SECRET_KEY, fallbacks accepted), dropped when forged, expired,
used or replaced; a queue that refuses a job answers 503 ``delivery_failed``; the Celery and
RQ helpers. Real workers: tests/reliability/test_task_queues.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from flask_postmark_auth import PostmarkAuth, PostmarkConnector, SendJob, signals
from flask_postmark_auth.jobs import FLOW_JOB_TTL, SEALED_PREFIX, fingerprint, seal, unseal
from flask_postmark_auth.tasks import QueueDelivery, celery_delivery, rq_delivery, run_sealed
from flask_postmark_auth.testing import FakeClock, FakePostmark, code_in, link_in
from support.redis_server import free_port
from tests.helpers import AppFactory

ANN = "ann@example.com"
FROM = "Acme <login@acme.example>"
KEY = "test-secret"
OLD_KEY = "an-older-secret-key-0123456789"
ROUTE = {"otp": "/auth/otp", "magic_link": "/auth/magic-link"}
CONTACT = {
    "steps": [{"to": "{{ form.email }}", "subject": "Thanks", "text": "We got: {{ form.msg }}"}]
}


class Captured(QueueDelivery):
    """A queue that keeps what it was given: (sealed job, lifetime in seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[tuple[str, float]] = []

    def enqueue(self, sealed: str, ttl: float) -> None:
        self.queued.append((sealed, ttl))

    @property
    def sealed(self) -> list[str]:
        return [sealed for sealed, _ in self.queued]


class Refusing(QueueDelivery):
    """A queue whose broker is down."""

    def enqueue(self, sealed: str, ttl: float) -> None:
        raise ConnectionError("Error 111 connecting to redis://user:hunter2@127.0.0.1:1/0.")


@pytest.fixture
def queue() -> Captured:
    return Captured()


@pytest.fixture
def app(make_app: AppFactory, connector: PostmarkConnector, queue: Captured) -> Flask:
    return make_app(CONNECTORS={"default": connector}, DELIVERY=queue, FLOWS={"contact": CONTACT})


def ask(app: Flask, method: str, email: str = ANN) -> None:
    response = app.test_client().post(ROUTE[method], json={"email": email})
    assert response.status_code == 202, response.get_data(as_text=True)


def sign_in(app: Flask, method: str, message: Any, email: str = ANN) -> TestResponse:
    client = app.test_client()
    if method == "otp":
        return client.post("/auth/otp/verify", json={"email": email, "code": code_in(message)})
    return client.post(link_in(message), json={})


# -- sealing --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["otp", "magic_link"])
def test_a_queued_job_is_sealed_and_signs_in_once_opened(
    app: Flask, queue: Captured, fake_postmark: FakePostmark, method: str
) -> None:
    ask(app, method)
    [(sealed, ttl)] = queue.queued
    assert ttl == (600 if method == "otp" else 900)  # the queue drops it with its secret
    assert fake_postmark.requests == []  # nothing sent on the request path
    assert run_sealed(sealed, app).status == "sent"
    [message] = fake_postmark.messages
    assert message.to == ANN
    # At rest the job shows neither the secret nor the address, in any decoding.
    secret = code_in(message) if method == "otp" else link_in(message).rsplit("/", 1)[-1]
    assert sealed.startswith(SEALED_PREFIX)
    assert json.loads(json.dumps(sealed)) == sealed  # plain text for any serializer
    # Only strings too long to turn up by chance in base64 (a three-letter
    # fragment such as "ann" does, about once in a thousand runs).
    for shown in (secret, ANN, "example.com"):
        assert shown not in sealed
    assert sign_in(app, method, message).status_code == 200


def test_sealing_round_trips_and_every_seal_differs() -> None:
    job = SendJob("default", "otp", ANN, {}, ("resend:x", "otp:ann"), ("quota",), {"code": "1"})
    first = seal(job, KEY, expires_at=123.5, key="otp:ann", record="fp")
    again = seal(job, KEY, expires_at=123.5, key="otp:ann", record="fp")
    assert first != again  # a fresh nonce each time
    opened = unseal(first, [KEY])
    assert opened is not None
    assert (opened.job, opened.expires_at, opened.key, opened.record) == (
        job,
        123.5,
        "otp:ann",
        "fp",
    )


@pytest.mark.parametrize(
    "forge",
    ["flip-a-byte", "truncate", "another-app", "no-prefix", "not-text", "garbage"],
)
def test_a_forged_or_foreign_job_is_dropped_unopened(forge: str) -> None:
    job = SendJob("default", "otp", ANN, {}, context={"code": "123456"})
    sealed = seal(job, KEY, expires_at=1e12)
    body = sealed[len(SEALED_PREFIX) :]
    forged: object = {
        "flip-a-byte": SEALED_PREFIX + body[:30] + ("A" if body[30] != "A" else "B") + body[31:],
        "truncate": sealed[:-4],
        "another-app": seal(job, "another-apps-secret-key-000", expires_at=1e12),
        "no-prefix": body,
        "not-text": sealed.encode(),
        "garbage": SEALED_PREFIX + "%%%",
    }[forge]
    assert unseal(sealed, [KEY]) is not None
    assert unseal(forged, [KEY]) is None


def test_a_tampered_job_sends_nothing(
    app: Flask, queue: Captured, fake_postmark: FakePostmark, caplog: pytest.LogCaptureFixture
) -> None:
    ask(app, "otp")
    sealed = queue.sealed[0]
    tampered = sealed[:-6] + ("AAAAAA" if not sealed.endswith("AAAAAA") else "BBBBBB")
    with caplog.at_level(logging.WARNING, logger="flask_postmark_auth"):
        assert run_sealed(tampered, app).status == "dropped"
    assert fake_postmark.requests == []
    assert any("not sealed with this app's SECRET_KEY" in r.getMessage() for r in caplog.records)


def test_a_job_queued_before_a_key_rotation_still_goes_out(
    make_app: AppFactory,
    clock: FakeClock,
    connector: PostmarkConnector,
    queue: Captured,
    fake_postmark: FakePostmark,
) -> None:
    auth = PostmarkAuth(clock=clock)
    app = make_app(
        auth=auth,
        config={"SECRET_KEY": OLD_KEY},
        CONNECTORS={"default": connector},
        DELIVERY=queue,
    )
    ask(app, "magic_link")
    [sealed] = queue.sealed
    app.config.update(SECRET_KEY="the-new-secret-key-0123456789", SECRET_KEY_FALLBACKS=[])
    assert run_sealed(sealed, app).status == "dropped"  # the old key is gone: unreadable
    app.config["SECRET_KEY_FALLBACKS"] = [OLD_KEY]
    assert run_sealed(sealed, app).status == "sent"
    [message] = fake_postmark.messages
    assert sign_in(app, "magic_link", message).status_code == 200
    # New jobs are sealed with the new key only.
    ask(app, "otp")
    opened = unseal(queue.sealed[-1], ["the-new-secret-key-0123456789"])
    assert opened is not None
    assert unseal(queue.sealed[-1], [OLD_KEY]) is None


# -- stale jobs -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["otp", "magic_link"])
def test_a_job_past_its_expiry_is_dropped(
    app: Flask,
    clock: FakeClock,
    queue: Captured,
    fake_postmark: FakePostmark,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    ask(app, method)
    [(sealed, ttl)] = queue.queued
    clock.advance(ttl + 1)
    with caplog.at_level(logging.INFO, logger="flask_postmark_auth"):
        assert run_sealed(sealed, app).status == "dropped"
    assert fake_postmark.requests == []
    assert any("expired before a worker took it" in r.getMessage() for r in caplog.records)


def test_a_job_carries_its_expiry_even_when_the_store_would_keep_it(
    app: Flask, clock: FakeClock, queue: Captured, fake_postmark: FakePostmark
) -> None:
    """The expiry inside the job, not the store's, decides: a stored record that outlives
    the job's lifetime does not make a stale job go out."""
    ask(app, "otp")
    [(sealed, ttl)] = queue.queued
    store = app.extensions["postmark_auth"].store
    raw = store.get(f"otp:{ANN}")
    clock.advance(ttl + 1)
    store.set(f"otp:{ANN}", raw, 600)  # the very record, kept alive
    assert run_sealed(sealed, app).status == "dropped"
    assert fake_postmark.requests == []


def test_a_replaced_code_is_dropped_and_the_new_one_signs_in(
    make_app: AppFactory,
    connector: PostmarkConnector,
    queue: Captured,
    fake_postmark: FakePostmark,
) -> None:
    app = make_app(CONNECTORS={"default": connector}, DELIVERY=queue, RESEND_INTERVAL=0)
    ask(app, "otp")
    ask(app, "otp")  # asked again before a worker took the first job
    first, second = queue.sealed
    assert run_sealed(first, app).status == "dropped"
    assert fake_postmark.requests == []
    assert run_sealed(second, app).status == "sent"
    [message] = fake_postmark.messages
    assert sign_in(app, "otp", message).status_code == 200


@pytest.mark.parametrize("method", ["otp", "magic_link"])
def test_a_job_whose_secret_was_used_is_not_sent_again(
    app: Flask, queue: Captured, fake_postmark: FakePostmark, method: str
) -> None:
    """A redelivered job (a worker lost its ack, a retry) after the person signed in."""
    ask(app, method)
    [sealed] = queue.sealed
    assert run_sealed(sealed, app).status == "sent"
    [message] = fake_postmark.messages
    assert sign_in(app, method, message).status_code == 200
    assert run_sealed(sealed, app).status == "dropped"
    assert len(fake_postmark.requests) == 1


def test_the_job_is_bound_to_the_record_it_was_queued_for(app: Flask, queue: Captured) -> None:
    ask(app, "otp")
    opened = unseal(queue.sealed[0], [KEY])
    assert opened is not None
    store = app.extensions["postmark_auth"].store
    assert opened.key == f"otp:{ANN}"
    assert opened.record == fingerprint(store.get(f"otp:{ANN}"))


# -- failures in the worker -----------------------------------------------------------------


def test_a_passing_postmark_failure_asks_for_a_retry_that_then_signs_in(
    app: Flask, queue: Captured, fake_postmark: FakePostmark
) -> None:
    ask(app, "otp")
    [sealed] = queue.sealed
    fake_postmark.fail(503, times=4)  # the first attempt and the connector's 3 retries
    outcome = run_sealed(sealed, app)
    assert (outcome.status, outcome.purpose) == ("retry", "otp")
    assert 0 < outcome.expires_in <= 600
    # Nothing was given back or deleted: the retry delivers a code that works.
    assert run_sealed(sealed, app).status == "sent"
    [message] = fake_postmark.messages
    assert sign_in(app, "otp", message).status_code == 200


def test_a_lasting_postmark_failure_is_not_retried(
    app: Flask, queue: Captured, fake_postmark: FakePostmark
) -> None:
    ask(app, "otp")
    fake_postmark.server_token = "another-token"  # a bad token: retrying cannot help
    assert run_sealed(queue.sealed[0], app).status == "failed"
    assert len(fake_postmark.requests) == 1


def test_a_retry_after_the_code_was_replaced_is_dropped(
    make_app: AppFactory,
    connector: PostmarkConnector,
    queue: Captured,
    fake_postmark: FakePostmark,
) -> None:
    app = make_app(CONNECTORS={"default": connector}, DELIVERY=queue, RESEND_INTERVAL=0)
    ask(app, "otp")
    fake_postmark.fail(503, times=4)
    assert run_sealed(queue.sealed[0], app).status == "retry"
    ask(app, "otp")  # the person asked again meanwhile
    assert run_sealed(queue.sealed[0], app).status == "dropped"
    assert run_sealed(queue.sealed[1], app).status == "sent"
    [message] = fake_postmark.messages
    assert sign_in(app, "otp", message).status_code == 200


def test_a_worker_without_an_app_says_how_to_give_it_one() -> None:
    job = SendJob("default", "otp", ANN, {})
    with pytest.raises(RuntimeError, match="create_app"):
        run_sealed(seal(job, KEY, expires_at=1e12))


# -- the queue refuses the job --------------------------------------------------------------


def assert_delivery_failed(response: TestResponse, *, as_json: bool) -> None:
    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "hunter2" not in text
    if as_json:
        assert response.json == {
            "error": "delivery_failed",
            "message": "We could not send the email just now. Please try again shortly.",
        }
    else:
        assert response.mimetype == "text/html"
        assert "could not send" in text
        assert "<form" in text


def down_celery() -> Any:
    from celery import Celery

    celery_app = Celery("down", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    celery_app.conf.update(
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0},
    )
    return celery_app


def down_delivery(kind: str) -> Any:
    if kind == "celery":
        return celery_delivery(down_celery(), name=f"down.{free_port()}")
    if kind == "rq":
        from redis import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        from rq import Queue

        # No retries: redis-py's default ones take seconds to give up.
        connection = Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
        return rq_delivery(Queue("down", connection=connection))
    return Refusing()


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
@pytest.mark.parametrize("method", ["otp", "magic_link"])
@pytest.mark.parametrize("kind", ["celery", "rq", "own"])
def test_a_broker_that_is_down_answers_delivery_failed_and_uses_up_nothing(
    make_app: AppFactory,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    method: str,
    as_json: bool,
) -> None:
    app = make_app(DELIVERY=down_delivery(kind), RESEND_INTERVAL=30)
    client = app.test_client()
    seen: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        seen.append(kwargs)

    with signals.delivery_failed.connected_to(receiver, app), caplog.at_level(logging.ERROR):
        for _ in range(2):  # the second is not 429: the resend interval was given back
            if as_json:
                response = client.post(ROUTE[method], json={"email": ANN})
            else:
                response = client.post(ROUTE[method], data={"email": ANN})
            assert_delivery_failed(response, as_json=as_json)
    assert [(s["email"], s["purpose"]) for s in seen] == [(ANN, method)] * 2
    store = app.extensions["postmark_auth"].store
    if method == "otp":
        assert store.get(f"otp:{ANN}") is None  # no code left that nobody got
    logged = [r.getMessage() for r in caplog.records if "could not queue" in r.getMessage()]
    assert len(logged) == 2
    assert all("hunter2" not in line and ANN not in line for line in logged)


def test_a_flow_step_the_broker_refuses_fails_alone(make_app: AppFactory) -> None:
    app = make_app(DELIVERY=Refusing(), FLOWS={"contact": CONTACT})
    with app.test_request_context():
        result = PostmarkAuth().run_flow("contact", form={"email": ANN, "msg": "hi"})
    assert [s.status for s in result.steps] == ["failed"]
    assert not result.ok


# -- flows and the helpers ------------------------------------------------------------------


def test_a_flow_step_goes_through_the_queue_sealed(
    app: Flask, clock: FakeClock, queue: Captured, fake_postmark: FakePostmark
) -> None:
    with app.test_request_context():
        result = PostmarkAuth().run_flow("contact", form={"email": ANN, "msg": "s3cret words"})
    assert [s.status for s in result.steps] == ["queued"]
    [(sealed, ttl)] = queue.queued
    assert ttl == FLOW_JOB_TTL
    assert "s3cret" not in sealed
    assert ANN not in sealed
    clock.advance(FLOW_JOB_TTL - 1)
    assert run_sealed(sealed, app).status == "sent"
    [message] = fake_postmark.messages
    assert message.to == ANN
    assert "We got: s3cret words" in (message.text_body or "")
    clock.advance(2)
    assert run_sealed(sealed, app).status == "dropped"  # past its hour


def test_celery_delivery_queues_a_sealed_job_with_its_expiry_and_no_result(
    make_app: AppFactory, connector: PostmarkConnector, fake_postmark: FakePostmark
) -> None:
    from celery import Celery

    celery_app = Celery("unit", broker="memory://", set_as_current=False)
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    delivery = celery_delivery(celery_app, name="unit.send", queue="mail")
    task = celery_app.tasks["unit.send"]
    assert task.ignore_result is True
    assert task.serializer == "json"
    sent: list[dict[str, Any]] = []
    original = task.apply_async

    def spy(args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        sent.append({"args": args, **options})
        return original(args, kwargs, **options)

    task.apply_async = spy
    app = make_app(CONNECTORS={"default": connector}, DELIVERY=delivery)
    assert task.flask_app is app  # init_app told the task its app
    ask(app, "otp")
    [call] = sent
    assert call["expires"] == 600
    assert call["queue"] == "mail"
    assert call["ignore_result"] is True
    [sealed] = call["args"]
    assert sealed.startswith(SEALED_PREFIX)
    [message] = fake_postmark.messages  # the eager task ran it
    assert code_in(message) not in sealed
    assert sign_in(app, "otp", message).status_code == 200


@pytest.mark.redis
def test_rq_delivery_enqueues_with_expiry_retries_and_no_result_kept(
    make_app: AppFactory, redis_url: str
) -> None:
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(redis_url.split("?", 1)[0])
    name = f"postmark-auth-unit-{free_port()}"
    rq_queue = Queue(name, connection=connection)
    try:
        app = make_app(DELIVERY=rq_delivery(rq_queue, retry_delays=(5, 7)))
        ask(app, "magic_link")
        [job] = rq_queue.get_jobs()
        assert job.func_name == "flask_postmark_auth.tasks.send_from_rq"
        assert (job.ttl, job.result_ttl, job.failure_ttl) == (900, 0, 900)
        assert (job.retries_left, job.retry_intervals) == (2, [5, 7])
        [sealed] = job.args
        assert unseal(sealed, [KEY]) is not None
        assert ANN not in sealed
    finally:
        rq_queue.delete(delete_jobs=True)
        connection.close()


def test_the_package_exports_send_job_and_loads_no_queue_or_cipher_until_used() -> None:
    code = (
        "import sys, flask_postmark_auth, flask_postmark_auth.tasks;"
        "from flask_postmark_auth import SendJob;"
        "from flask_postmark_auth.delivery import SendJob as Same; assert SendJob is Same;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('celery', 'kombu', 'rq', 'cryptography')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_checklist_names_the_queue(make_app: AppFactory) -> None:
    from celery import Celery

    from flask_postmark_auth.checklist import run_checks

    celery_app = Celery("checked", broker="memory://", set_as_current=False)
    app = make_app(DELIVERY=celery_delivery(celery_app, queue="mail"))
    settings = app.extensions["postmark_auth"].settings
    [line] = [c for c in run_checks(app, settings) if c.name == "Delivery"]
    assert line.verdict == "PASS"
    assert "celery_delivery(task='flask_postmark_auth.send', queue='mail')" in line.detail
