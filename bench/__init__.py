"""Benchmarks of flask_postmark_auth: ``python -m bench`` (``--quick``, ``--write``).

One module per benchmark, each with ``run(config) -> Section``:

1. :mod:`bench.connector`: connector throughput beside a bare ``requests`` floor and postmarker;
2. :mod:`bench.login_cycle`: login-cycle throughput beside a Flask + Flask-Login floor and
   Flask-Security-Too, plus a profile of this package's cycle;
3. :mod:`bench.stores`: the same cycle per store backend;
4. :mod:`bench.latency`: send-path latency under a slow Postmark, sync and background;
5. :mod:`bench.growth`: store size and RSS over 50,000 sign-ins, then ``purge()``;
6. :mod:`bench.timing`: whether one answer's time over HTTP (gunicorn) tells a known address
   from an unknown one, sync and background delivery (app: :mod:`bench.timing_app`).

All Postmark traffic goes to FakePostmark on 127.0.0.1; every loop is bounded.
"""
