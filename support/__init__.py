"""What the test suite and the benchmarks both need to run real processes on loopback: a
Redis found or started on a free port (``redis_server``), and example-app servers under
gunicorn with visitors driving them (``processes``). Not part of the package."""
