"""Reliability tests (issue 7): many workers, several machines, store outages, hostile load
and background delivery. Marked ``reliability``; traffic stays on 127.0.0.1."""
