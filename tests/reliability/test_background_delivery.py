"""Background delivery (issue 7, item 3), what ``tests/test_delivery.py`` does not cover: the
queue is bounded (overflow is dropped and logged, never sent inline, never unbounded), and
sends still queued when the process exits normally go out, their failures reaching the
``delivery_failed`` signal and the log."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from flask_postmark_auth.delivery import BackgroundPool, SendJob
from flask_postmark_auth.testing import FakePostmark
from support.processes import REPO, app_env

pytestmark = pytest.mark.reliability

SCRIPT = Path(__file__).with_name("background_exit_app.py")


def job(recipient: str) -> SendJob:
    return SendJob(connector="default", purpose="otp", recipient=recipient, message={})


def test_the_background_queue_is_bounded_and_overflow_is_dropped_not_sent_inline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full queue drops the job and says so: sending it inline would make the answers of
    addresses that get mail slower, and so tell them apart."""
    pool = BackgroundPool(workers=1, queue=4)
    app = Flask(__name__)
    release = threading.Event()
    ran: list[tuple[str, str]] = []
    lock = threading.Lock()
    caller = threading.current_thread().name

    def runner(sent: SendJob) -> None:
        assert release.wait(10)  # the pool's thread is stuck: its queue fills up
        if sent.recipient == "r3":
            raise RuntimeError("Postmark is down for ann@example.com")
        with lock:
            ran.append((sent.recipient, threading.current_thread().name))

    caplog.set_level(logging.INFO, logger="flask_postmark_auth")
    try:
        for n in range(10):
            pool.submit(app, runner, job(f"r{n}"))  # never blocks, never raises
        # Four jobs hold the queue's four slots; the other six were dropped, none inline.
        assert ran == []
        messages = [r.getMessage() for r in caplog.records]
        assert sum("queue is full; dropped" in m for m in messages) == 6
        release.set()
        assert pool.flush(timeout=10)
        assert sorted(r for r, _ in ran) == ["r0", "r1", "r2"]
        assert all(thread != caller for _, thread in ran)
        failed = [r for r in caplog.records if "background send (otp) failed" in r.getMessage()]
        assert len(failed) == 1
        assert failed[0].exc_info is None  # no traceback: it could carry an address
        assert "ann@example.com" not in failed[0].getMessage()
        # The slots came back: four more jobs queue again.
        for n in range(10, 14):
            pool.submit(app, runner, job(f"r{n}"))
        assert pool.flush(timeout=10)
        assert len(ran) == 7
    finally:
        release.set()
        pool.shutdown()


def test_queued_sends_go_out_when_the_process_exits_and_failures_are_reported(
    fake_postmark: FakePostmark, report: Callable[[str], None]
) -> None:
    codes, links = 12, 4
    fake_postmark.slow(0.25)  # every send takes a while: most are still queued at exit
    finished = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            fake_postmark.url,
            fake_postmark.server_token,
            str(codes),
            str(links),
        ],
        cwd=REPO,
        env=app_env(None, {}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out, err = finished.stdout, finished.stderr
    assert finished.returncode == 0, err[-3000:]
    assert "QUEUED pending=True" in out, out
    # Every code went out after the script's last line ran.
    assert sorted(m.to for m in fake_postmark.messages) == sorted(
        f"code-{n}@example.com" for n in range(codes)
    )
    assert len(fake_postmark.requests) == codes + links  # the links were tried, once each
    # Each refused link reached the signal and the log, with the address masked.
    assert out.count("SIGNAL delivery_failed magic_link InvalidTokenError") == links, out
    assert len(
        re.findall(r"LOG ERROR flask_postmark_auth: sending magic_link .* failed", err)
    ) == (links), err[-3000:]
    assert "background send (magic_link) failed" in err
    assert "link-0@example.com" not in err
    report(
        f"background delivery: {codes + links} sends queued, process exited with them "
        f"pending: {codes} delivered at exit, {links} failures reported by signal and log"
    )
