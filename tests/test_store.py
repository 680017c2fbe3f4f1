"""The store contract, run against every backend (memory, SQLite, Redis), plus what only one
backend has to prove: SQLite across processes and when locked or read-only, Redis when down
or restarted, and how :func:`open_store` reads a URI. (Redis Cluster and Sentinel join the
contract in test_store_redis_scaleout.py.)"""

# pytest.approx compares equal to floats, which mypy's strict equality cannot know.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_postmark_auth.links import MagicLinks, new_number, new_waiter
from flask_postmark_auth.store import (
    MemoryStore,
    RedisStore,
    SQLiteStore,
    Store,
    StoreUnavailableError,
    open_store,
)
from flask_postmark_auth.store import sqlite_connections as sqlite_module
from flask_postmark_auth.store.base import member
from flask_postmark_auth.store.redis import DEFAULT_PREFIX
from flask_postmark_auth.testing import FakeClock
from support import redis_server
from tests.helpers import count_round_trips

START = 1_700_000_000.25


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` in ``count`` threads; re-raise the first error in this thread."""
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]


class Waiting(NamedTuple):
    """A browser waiting for its link: its secret, its number, the link's token."""

    secret: str
    number: int
    token: str


texts = st.text(st.characters(codec="utf-8"), max_size=40)


class StoreContract:
    """What every backend promises; subclasses supply the ``store`` fixture, built on the
    ``clock`` fixture."""

    # -- set / get / ttl ------------------------------------------------------------------

    def test_get_of_a_missing_key_is_none(self, store: Store) -> None:
        assert store.get("missing") is None
        assert store.ttl("missing") is None

    def test_set_then_get_and_replace(self, store: Store) -> None:
        store.set("k", "one", 60)
        assert store.get("k") == "one"
        store.set("k", "two", None)
        assert store.get("k") == "two"
        assert store.ttl("k") == math.inf

    def test_entry_expires_exactly_at_its_ttl(self, store: Store, clock: FakeClock) -> None:
        store.set("k", "v", 30)
        clock.advance(29.5)
        assert store.get("k") == "v"
        assert store.ttl("k") == pytest.approx(0.5)
        clock.advance(0.5)
        assert store.get("k") is None
        assert store.ttl("k") is None

    def test_no_ttl_never_expires(self, store: Store, clock: FakeClock) -> None:
        store.set("k", "v", None)
        clock.advance(10 * 365 * 86400)
        assert store.get("k") == "v"
        assert store.ttl("k") == math.inf

    def test_set_replaces_the_ttl_too(self, store: Store, clock: FakeClock) -> None:
        store.set("k", "v", None)
        store.set("k", "w", 10)
        assert store.ttl("k") == pytest.approx(10)
        clock.advance(4)
        assert store.ttl("k") == pytest.approx(6)
        clock.advance(6)
        assert store.get("k") is None

    def test_a_zero_ttl_is_already_expired(self, store: Store) -> None:
        store.set("k", "v", 0)
        assert store.get("k") is None

    def test_awkward_keys_and_values_round_trip(self, store: Store) -> None:
        key = "ключ:with|pipe*?[x]\\ and space"
        for value in ["", "a|b|c", "line\nbreak", "ünïcødé ✉", "123", "*"]:
            store.set(key, value, 60)
            assert store.get(key) == value
            store.push(key, value, 60, 5)
        assert store.items(key) == ["*", "123", "ünïcødé ✉", "line\nbreak", "a|b|c"]

    def test_any_text_round_trips(self, store: Store) -> None:
        @settings(max_examples=25, deadline=None)
        @given(key=texts, value=texts)
        def round_trip(key: str, value: str) -> None:
            store.set(key, value, 60)
            assert store.get(key) == value
            store.push(key, value, 60, 2)
            assert store.items(key)[0] == value
            assert store.pop(key, value) == value
            assert store.get(key) is None

        round_trip()

    # -- add ------------------------------------------------------------------------------

    def test_add_only_when_absent(self, store: Store) -> None:
        assert store.add("k", "first", 60) is True
        assert store.add("k", "second", 60) is False
        assert store.get("k") == "first"

    def test_add_replaces_an_expired_entry(self, store: Store, clock: FakeClock) -> None:
        store.set("k", "old", 5)
        clock.advance(5)
        assert store.add("k", "new", None) is True
        assert store.get("k") == "new"
        assert store.ttl("k") == math.inf

    def test_add_does_not_touch_a_live_entrys_ttl(self, store: Store, clock: FakeClock) -> None:
        store.add("k", "v", 10)
        clock.advance(3)
        assert store.add("k", "w", 100) is False
        assert store.ttl("k") == pytest.approx(7)

    # -- delete ---------------------------------------------------------------------------

    def test_delete(self, store: Store) -> None:
        store.set("k", "v", None)
        store.delete("k")
        assert store.get("k") is None
        store.delete("k")  # absent: no error

    def test_a_value_and_a_list_of_one_name_coexist_and_delete_drops_both(
        self, store: Store
    ) -> None:
        store.set("both", "value", 60)
        store.push("both", "item", 60, 5)
        assert store.get("both") == "value"
        assert store.items("both") == ["item"]
        store.delete("both")
        assert store.get("both") is None
        assert store.items("both") == []
        assert store.size() == 0

    # -- pop ------------------------------------------------------------------------------

    def test_pop_returns_the_value_once(self, store: Store) -> None:
        store.set("k", "v", 60)
        assert store.pop("k") == "v"
        assert store.pop("k") is None
        assert store.get("k") is None

    def test_pop_of_missing_or_expired_is_none(self, store: Store, clock: FakeClock) -> None:
        assert store.pop("missing") is None
        store.set("k", "v", 1)
        clock.advance(1)
        assert store.pop("k") is None
        assert store.pop("k", "v") is None

    def test_pop_with_expected_compares_and_deletes(self, store: Store) -> None:
        store.set("k", "right", 60)
        assert store.pop("k", "wrong") is None
        assert store.get("k") == "right"
        assert store.ttl("k") == pytest.approx(60)
        assert store.pop("k", "right") == "right"
        assert store.get("k") is None

    # -- hit / undo_hit -----------------------------------------------------------------

    def test_hit_counts_within_a_window(self, store: Store, clock: FakeClock) -> None:
        assert store.hit("h", 60) == (1, pytest.approx(60))
        clock.advance(20)
        assert store.hit("h", 60) == (2, pytest.approx(40))
        assert store.hit("h", 60) == (3, pytest.approx(40))
        assert store.hit("other", 60) == (1, pytest.approx(60))

    def test_hit_starts_a_new_window_when_the_old_one_ends(
        self, store: Store, clock: FakeClock
    ) -> None:
        store.hit("h", 10)
        store.hit("h", 10)
        clock.advance(9.99)
        assert store.hit("h", 10)[0] == 3
        clock.advance(0.01)  # exactly at the end: the window is over
        assert store.hit("h", 10) == (1, pytest.approx(10))
        clock.advance(5)
        assert store.hit("h", 10) == (2, pytest.approx(5))

    def test_undo_hit_takes_back_and_floors_at_zero(self, store: Store, clock: FakeClock) -> None:
        store.hit("h", 60)
        store.hit("h", 60)
        store.undo_hit("h")
        assert store.hit("h", 60) == (2, pytest.approx(60))
        for _ in range(5):
            store.undo_hit("h")
        assert store.hit("h", 60)[0] == 1
        clock.advance(10)
        assert store.hit("h", 60) == (2, pytest.approx(50))  # undo_hit kept the window

    def test_undo_hit_of_absent_or_expired_is_a_no_op(
        self, store: Store, clock: FakeClock
    ) -> None:
        store.undo_hit("never")
        assert store.get("never") is None
        assert store.size() == 0
        store.hit("h", 5)
        clock.advance(5)
        store.undo_hit("h")
        assert store.hit("h", 5) == (1, pytest.approx(5))

    def test_hits_count_several_keys_in_their_own_windows(
        self, store: Store, clock: FakeClock
    ) -> None:
        assert store.hits([]) == []
        assert store.hits([("a", 60), ("b", 10)]) == [
            (1, pytest.approx(60)),
            (1, pytest.approx(10)),
        ]
        clock.advance(5)
        assert store.hits([("b", 10), ("a", 60)]) == [
            (2, pytest.approx(5)),
            (2, pytest.approx(55)),
        ]
        clock.advance(5)  # b's window ended, a's goes on
        assert store.hits([("a", 60), ("b", 10)]) == [
            (3, pytest.approx(50)),
            (1, pytest.approx(10)),
        ]
        assert store.hits([("c", 30)]) == [(1, pytest.approx(30))]
        store.undo_hit("a")
        assert store.hit("a", 60) == (3, pytest.approx(50))

    def test_concurrent_hits_of_several_keys_are_all_counted(self, store: Store) -> None:
        workers, each = 8, 25
        barrier = threading.Barrier(workers)
        counts: list[tuple[int, int]] = []

        def hammer(_: int) -> None:
            barrier.wait(timeout=30)
            for _ in range(each):
                (a, _left), (b, _right) = store.hits([("x", 3600), ("y", 3600)])
                counts.append((a, b))

        run_threads(workers, hammer)
        assert sorted(a for a, _ in counts) == list(range(1, workers * each + 1))
        assert sorted(b for _, b in counts) == list(range(1, workers * each + 1))

    # -- many ------------------------------------------------------------------------------

    def test_many_answers_each_operation_in_order(self, store: Store, clock: FakeClock) -> None:
        store.set("old", "o", 60)
        store.set("gone", "g", 60)
        store.hit("count", 60)
        answers = store.many(
            [
                ("get", "old"),
                ("set", "new", "n", 30),
                ("add", "new-too", "t", None),
                ("add", "old-add", "x", 60),
                ("pop", "gone", "g"),
                ("delete", "absent"),
                ("hits", [("count", 60), ("fresh", 10)]),
                ("undo_hit", "other"),
                ("get", "missing"),
            ]
        )
        assert answers == [
            "o",
            None,
            True,
            True,
            "g",
            None,
            [(2, pytest.approx(60)), (1, pytest.approx(10))],
            None,
            None,
        ]
        assert store.get("new") == "n"
        assert store.get("new-too") == "t"
        assert store.get("gone") is None
        clock.advance(30)
        assert store.many(
            [("get", "new"), ("pop", "old", "wrong"), ("add", "old-add", "y", 9)]
        ) == [
            None,
            None,
            False,
        ]
        assert store.many([("undo_hit", "count"), ("pop", "old")]) == [None, "o"]
        assert store.hit("count", 60) == (2, pytest.approx(30))
        assert store.many([]) == []
        assert store.many([("get", "new-too")]) == ["t"]

    @pytest.mark.parametrize("op", [("push", "l", "v", None, 3), ("purge",), (), ("items", "l")])
    def test_many_runs_only_the_batched_operations(
        self, store: Store, op: tuple[Any, ...]
    ) -> None:
        with pytest.raises(ValueError, match=r"Store\.many runs"):
            store.many([("set", "k", "v", None), op])
        assert store.get("k") is None
        assert store.items("l") == []

    def test_concurrent_batches_pop_a_value_exactly_once(self, store: Store) -> None:
        workers = 8
        barrier = threading.Barrier(workers)
        taken: list[str] = []
        for round_ in range(10):
            store.set("secret", f"s{round_}", 60)

            def race(i: int, tries: str = f"tries-{round_}") -> None:
                barrier.wait(timeout=30)
                counted, value, _ = store.many(
                    [("hits", [(tries, 60)]), ("pop", "secret"), ("get", f"x{i}")]
                )
                assert counted[0][0] in range(1, workers + 1)
                if value is not None:
                    taken.append(value)

            run_threads(workers, race)
            assert store.hit(f"tries-{round_}", 60)[0] == workers + 1
        assert sorted(taken) == sorted(f"s{r}" for r in range(10))

    # -- members of a group -----------------------------------------------------------------

    def test_members_of_a_group_are_names_of_their_own(
        self, store: Store, clock: FakeClock
    ) -> None:
        hour, wait = member("send:ann", "hour"), member("send:ann", "resend")
        store.set("send:ann", "plain", 100)  # the group's own name is another name
        assert store.hits([(hour, 3600), (wait, 30)]) == [
            (1, pytest.approx(3600)),
            (1, pytest.approx(30)),
        ]
        assert store.hit(member("send:bob", "hour"), 3600)[0] == 1
        clock.advance(30)  # the resend wait ended, the hour goes on
        assert store.many([("hits", [(hour, 3600), (wait, 30)]), ("get", "send:ann")]) == [
            [(2, pytest.approx(3570)), (1, pytest.approx(30))],
            "plain",
        ]
        store.undo_hit(hour)
        store.delete(wait)
        assert store.get(wait) is None
        assert store.hit(hour, 3600) == (2, pytest.approx(3570))
        store.set(member("send:ann", "note"), "x|y", 10)
        assert store.pop(member("send:ann", "note"), "x|y") == "x|y"
        assert store.add(member("send:ann", "note"), "z", 10) is True
        assert store.get(member("send:ann", "note")) == "z"
        clock.advance(10)
        assert store.get(member("send:ann", "note")) is None
        assert store.get(hour) == "2"
        assert store.get("send:ann") == "plain"  # 40 of its 100 s
        clock.advance(3600)
        assert store.get(hour) is None
        assert store.get("send:ann") is None

    def test_members_are_counted_and_purged_one_by_one(
        self, store: Store, clock: FakeClock
    ) -> None:
        store.hits([(member("g", "a"), 10), (member("g", "b"), 100)])
        assert store.size() == 2
        clock.advance(10)
        assert store.purge() == 1
        assert store.size() == 1
        assert store.get(member("g", "b")) == "1"

    # -- push / items ---------------------------------------------------------------------

    def test_push_keeps_newest_first_and_trims(self, store: Store) -> None:
        assert store.items("l") == []
        for i in range(7):
            store.push("l", f"m{i}", 60, 3)
        assert store.items("l") == ["m6", "m5", "m4"]
        assert store.size() == 3

    def test_list_expires_ttl_after_the_last_push(self, store: Store, clock: FakeClock) -> None:
        store.push("l", "a", 10, 5)
        clock.advance(8)
        store.push("l", "b", 10, 5)
        clock.advance(8)  # 16 s after the first push, 8 after the last
        assert store.items("l") == ["b", "a"]
        clock.advance(2)
        assert store.items("l") == []

    def test_push_after_expiry_starts_a_fresh_list(self, store: Store, clock: FakeClock) -> None:
        store.push("l", "old", 5, 5)
        clock.advance(5)
        store.push("l", "new", None, 5)
        assert store.items("l") == ["new"]
        clock.advance(10**6)
        assert store.items("l") == ["new"]

    def test_push_rejects_max_items_below_one(self, store: Store) -> None:
        with pytest.raises(ValueError, match="max_items"):
            store.push("l", "x", 60, 0)

    # -- purge / size / ping / close ------------------------------------------------------

    def test_size_counts_keys_and_list_items_expired_or_not(
        self, store: Store, clock: FakeClock
    ) -> None:
        assert store.size() == 0
        store.set("a", "1", 10)
        store.set("b", "2", None)
        store.hit("c", 10)
        store.push("l", "x", 10, 5)
        store.push("l", "y", 10, 5)
        assert store.size() == 5
        clock.advance(10)
        assert store.size() == 5

    def test_purge_drops_only_expired_entries(self, store: Store, clock: FakeClock) -> None:
        store.set("short", "1", 10)
        store.set("long", "2", 100)
        store.set("forever", "3", None)
        store.hit("counter", 10)
        for item in "xyz":
            store.push("short-list", item, 10, 5)
        store.push("long-list", "w", 100, 5)
        assert store.purge() == 0
        clock.advance(10)
        assert store.purge() == 5  # short, counter and three list items
        assert store.size() == 3  # long, forever and one list item
        assert store.get("long") == "2"
        assert store.get("forever") == "3"
        assert store.items("long-list") == ["w"]
        assert store.purge() == 0

    def test_ping_and_close_then_reuse(self, store: Store) -> None:
        store.ping()
        store.set("k", "v", None)
        store.close()
        assert store.get("k") == "v"
        store.close()

    # -- concurrency ----------------------------------------------------------------------

    def test_concurrent_pop_gives_the_value_to_exactly_one_thread(self, store: Store) -> None:
        rounds, workers = 25, 8
        for r in range(rounds):
            store.set(f"race:{r}", "token", 600)
        barrier = threading.Barrier(workers)
        winners: list[list[int]] = [[] for _ in range(rounds)]

        def race(i: int) -> None:
            try:
                for r in range(rounds):
                    barrier.wait(timeout=30)
                    if store.pop(f"race:{r}", "token") == "token":
                        winners[r].append(i)
            except BaseException:
                barrier.abort()
                raise

        run_threads(workers, race)
        assert [len(w) for w in winners] == [1] * rounds
        assert store.size() == 0

    def test_concurrent_hits_are_all_counted(self, store: Store) -> None:
        workers, each = 8, 50
        barrier = threading.Barrier(workers)
        counts: list[int] = []

        def hammer(_: int) -> None:
            barrier.wait(timeout=30)
            counts.extend(store.hit("busy", 3600)[0] for _ in range(each))

        run_threads(workers, hammer)
        assert sorted(counts) == list(range(1, workers * each + 1))
        assert store.hit("busy", 3600)[0] == workers * each + 1

    # -- magic links across devices (the races of issue 14, on this backend) --------------

    def _waiting_links(self, store: Store, rounds: int) -> tuple[MagicLinks, list[Waiting]]:
        links = MagicLinks(store, lambda: ["a-key-long-enough-to-sign-links"], 900)
        waiting = []
        for r in range(rounds):
            secret, number = new_waiter(), new_number()
            _, token = links.issue(f"ann{r}@example.com", "/next", secret, number)
            waiting.append(Waiting(secret, number, token))
        return links, waiting

    def test_approving_a_link_from_two_devices_at_once_approves_once(self, store: Store) -> None:
        rounds, workers = 10, 8
        links, waiting = self._waiting_links(store, rounds)
        barrier = threading.Barrier(workers)
        won: list[list[int]] = [[] for _ in range(rounds)]

        def race(i: int) -> None:
            for r, wait in enumerate(waiting):
                barrier.wait(timeout=30)
                if links.approve(wait.token, wait.number) is not None:
                    won[r].append(i)

        run_threads(workers, race)
        assert [len(w) for w in won] == [1] * rounds
        for r, wait in enumerate(waiting):
            assert links.status(wait.secret) == {"email": f"ann{r}@example.com", "next": "/next"}
            assert links.status(wait.secret) is None  # taken once
        assert store.size() == 0

    def test_approving_and_signing_in_on_the_phone_at_once_exclude_each_other(
        self, store: Store
    ) -> None:
        rounds, workers = 10, 8
        links, waiting = self._waiting_links(store, rounds)
        barrier = threading.Barrier(workers)
        approved: list[list[int]] = [[] for _ in range(rounds)]
        taken: list[list[int]] = [[] for _ in range(rounds)]

        def race(i: int) -> None:
            for r, wait in enumerate(waiting):
                barrier.wait(timeout=30)
                if i % 2:
                    if links.approve(wait.token, wait.number) is not None:
                        approved[r].append(i)
                elif links.take(wait.token) is not None:
                    taken[r].append(i)

        run_threads(workers, race)
        assert [len(a) + len(t) for a, t in zip(approved, taken, strict=True)] == [1] * rounds
        for r, wait in enumerate(waiting):
            status = links.status(wait.secret)
            assert (status is not None) == bool(approved[r])  # signed in here, or not at all
            assert status != "pending"
        assert store.size() == 0

    def test_the_waiting_browser_takes_its_approval_once(self, store: Store) -> None:
        workers = 8
        links, [wait] = self._waiting_links(store, 1)
        assert links.status(wait.secret) == "pending"
        assert links.approve(wait.token, wait.number) == ("ann0@example.com", True)
        barrier = threading.Barrier(workers)
        seen: list[object] = []

        def poll(_: int) -> None:
            barrier.wait(timeout=30)
            seen.append(links.status(wait.secret))

        run_threads(workers, poll)
        assert sorted(map(repr, seen)) == sorted(
            [repr({"email": "ann0@example.com", "next": "/next"})] + ["None"] * (workers - 1)
        )

    def test_a_wrong_number_voids_the_link_and_its_wait(self, store: Store) -> None:
        links, [wait] = self._waiting_links(store, 1)
        wrong = 10 + (wait.number - 10 + 1) % 90
        assert links.approve(wait.token, wrong) == ("ann0@example.com", False)
        assert links.approve(wait.token, wait.number) is None
        assert links.take(wait.token) is None
        assert links.status(wait.secret) is None

    # -- exact keys -----------------------------------------------------------------------

    def test_keys_differing_only_by_case_accents_or_sharp_s_are_distinct(
        self, store: Store
    ) -> None:
        # What a folding collation takes for one key (issue 10): each must stay its own.
        keys = [
            "user:ann@strasse.example",
            "user:ann@straße.example",
            "user:Ann@strasse.example",
            "user:ANN@STRASSE.EXAMPLE",
            "user:ann@strässe.example",
            "user:ann@stra\u0301sse.example",  # a combining accent
            "user:ann@strasse.example ",  # a trailing space (PAD SPACE collations)
        ]
        for i, key in enumerate(keys):
            assert store.add(key, str(i), 60) is True
            store.push(key, f"item{i}", 60, 5)
        assert [store.get(key) for key in keys] == [str(i) for i in range(len(keys))]
        assert [store.items(key) for key in keys] == [[f"item{i}"] for i in range(len(keys))]
        assert store.pop(keys[1]) == "1"
        store.delete(keys[2])
        assert store.hit(keys[2], 60)[0] == 1  # a counter of its own, not a neighbour's
        assert [store.get(key) for key in keys] == ["0", None, "1", "3", "4", "5", "6"]
        assert store.items(keys[2]) == []
        assert store.size() == 6 + 6  # six values (one a counter) and six list items


# -- memory ---------------------------------------------------------------------------------


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self, clock: FakeClock) -> MemoryStore:
        return MemoryStore(clock)


# -- SQLite ---------------------------------------------------------------------------------


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path, clock: FakeClock) -> Iterator[SQLiteStore]:
        store = SQLiteStore(str(tmp_path / "store.db"), clock)
        yield store
        store.close()

    def test_file_is_in_wal_mode_and_its_directory_is_made(self, tmp_path: Path) -> None:
        path = tmp_path / "nested" / "dir" / "auth.db"
        store = SQLiteStore(str(path))
        try:
            store.set("k", "v", None)
        finally:
            store.close()
        assert path.exists()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT value FROM kv WHERE key = 'k'").fetchone()[0] == "v"
        conn.close()

    def test_two_stores_on_one_file_share_entries(self, tmp_path: Path) -> None:
        path = str(tmp_path / "shared.db")
        first, second = SQLiteStore(path), SQLiteStore(path)
        try:
            first.set("k", "v", 60)
            assert second.pop("k") == "v"
            assert first.get("k") is None
        finally:
            first.close()
            second.close()

    def test_processes_racing_pop_get_the_value_exactly_once(self, tmp_path: Path) -> None:
        path, rounds = str(tmp_path / "race.db"), 10
        store = SQLiteStore(path)
        try:
            for r in range(rounds):
                store.set(f"race:{r}", "token", 600)
        finally:
            store.close()
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(2)
        results = ctx.Queue()
        workers = [
            ctx.Process(target=pop_in_process, args=(path, rounds, barrier, results))
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        got: list[tuple[int, str | None]] = []
        deadline = time.monotonic() + 60
        try:
            while len(got) < 2 * rounds and time.monotonic() < deadline:
                try:
                    got.append(results.get(timeout=0.2))
                except queue.Empty:
                    if all(worker.exitcode is not None for worker in workers):
                        break  # both died: fail below rather than wait
        finally:
            for worker in workers:
                worker.join(timeout=30)
            results.close()
            results.join_thread()
        assert [worker.exitcode for worker in workers] == [0, 0]
        for r in range(rounds):
            assert sorted(str(value) for rr, value in got if rr == r) == ["None", "token"]

    def test_read_only_database_is_unavailable(self, tmp_path: Path) -> None:
        path = tmp_path / "ro.db"
        writer = SQLiteStore(str(path))
        writer.set("k", "v", None)
        writer.close()
        reader = SQLiteStore(f"file:{path}?mode=ro")
        try:
            assert reader.get("k") == "v"
            with pytest.raises(StoreUnavailableError, match="readonly") as info:
                reader.set("k", "w", None)
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            with pytest.raises(StoreUnavailableError):
                reader.pop("k")
            assert reader.get("k") == "v"
        finally:
            reader.close()

    def test_locked_database_is_unavailable_then_recovers(self, tmp_path: Path) -> None:
        path = str(tmp_path / "locked.db")
        store = SQLiteStore(path, timeout=0.05)
        store.set("k", "v", None)
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="locked"):
                store.set("k", "w", None)
            with pytest.raises(StoreUnavailableError):
                store.hit("h", 60)
            assert time.monotonic() - started < 2
            locker.execute("ROLLBACK")
            store.set("k", "w", None)
            assert store.get("k") == "w"
        finally:
            locker.close()
            store.close()

    def test_a_write_waits_for_a_lock_held_elsewhere_and_runs_once(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        """Another process's transaction holds the write lock: the store's own naps (not
        SQLite's busy handler, which is off) wait for it; the write then runs once."""
        path = str(tmp_path / "busy.db")
        store = SQLiteStore(path, clock, timeout=5)
        store.hit("h", 60)
        assert store._connection().execute("PRAGMA busy_timeout").fetchone() == (0,)
        locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.2, lambda: locker.execute("COMMIT"))
        release.start()
        try:
            assert store.hits([("h", 60), ("i", 60)]) == [(2, 60.0), (1, 60.0)]
            assert store.many([("set", "k", "v", 60), ("delete", "i")]) == [None, None]
            assert store.hit("h", 60)[0] == 3
        finally:
            release.join()
            locker.close()
            store.close()

    def test_a_file_that_cannot_be_opened_is_unavailable(self, tmp_path: Path) -> None:
        store = SQLiteStore(str(tmp_path))  # a directory
        try:
            with pytest.raises(StoreUnavailableError):
                store.ping()
        finally:
            store.close()
        missing = SQLiteStore(f"file:{tmp_path / 'absent.db'}?mode=ro")
        with pytest.raises(StoreUnavailableError, match="unable to open"):
            missing.get("k")
        missing.close()

    def test_each_thread_has_its_own_connection_closed_when_it_ends(
        self, store: SQLiteStore
    ) -> None:
        connections: list[sqlite3.Connection] = []

        def use(_: int) -> None:
            store.set("k", "v", None)
            connections.append(store._connection())

        run_threads(2, use)
        gc.collect()
        assert connections[0] is not connections[1]
        assert store._connection() not in connections
        for conn in connections:
            with pytest.raises(sqlite3.ProgrammingError, match="closed"):
                conn.execute("SELECT 1")

    def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents(
        self, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store.set("k", "v", None)
        parents = store._connection()
        real_pid = os.getpid()
        with monkeypatch.context() as patch:
            patch.setattr(os, "getpid", lambda: real_pid + 1)  # as seen in a child
            assert store.get("k") == "v"
            child = store._connection()
            assert child is not parents
            assert parents.execute("SELECT 1").fetchone() == (1,)  # not closed in the child
            store.close()
        assert parents in sqlite_module._INHERITED
        sqlite_module._INHERITED.remove(parents)
        parents.close()


def pop_in_process(path: str, rounds: int, barrier: Any, results: Any) -> None:
    """In a spawned process: race for ``race:<r>`` each round and report what was won."""
    store = SQLiteStore(path)
    try:
        for r in range(rounds):
            barrier.wait(timeout=30)
            results.put((r, store.pop(f"race:{r}", "token")))
    finally:
        store.close()


# -- Redis ----------------------------------------------------------------------------------


@pytest.mark.redis
class TestRedisStore(StoreContract):
    @pytest.fixture
    def store(self, redis_base_url: str, clock: FakeClock) -> Iterator[RedisStore]:
        store = RedisStore(redis_base_url, clock, prefix=redis_server.unique_prefix())
        yield store
        store.close()

    def test_native_expiry_follows_the_logical_one(self, store: RedisStore) -> None:
        store.set("k", "v", 100)
        assert 99_000 < store.client.pttl(store._key("k")) <= 100_000
        store.set("k", "v", None)
        assert store.client.pttl(store._key("k")) == -1
        store.push("l", "x", 50, 5)
        assert 49_000 < store.client.pttl(store._list("l")) <= 50_000

    def test_a_logically_expired_entry_is_deleted_when_read(
        self, store: RedisStore, clock: FakeClock
    ) -> None:
        store.set("k", "v", 100)
        clock.advance(100)
        assert store.client.exists(store._key("k")) == 1  # Redis itself still has it
        assert store.get("k") is None
        assert store.client.exists(store._key("k")) == 0

    def test_prefixes_keep_stores_apart_even_with_glob_characters(
        self, redis_base_url: str, clock: FakeClock
    ) -> None:
        base = redis_server.unique_prefix()
        star, plain = (
            RedisStore(redis_base_url, clock, prefix=f"{base}{p}") for p in ("*:", "x:")
        )
        try:
            star.set("k", "star", None)
            plain.set("k", "plain", None)
            plain.push("l", "item", None, 5)
            assert star.get("k") == "star"
            assert plain.get("k") == "plain"
            assert star.size() == 1
            assert plain.size() == 2
        finally:
            star.close()
            plain.close()

    def test_check_moves_keys_of_the_earlier_layout_once(self, store: RedisStore) -> None:
        old = store.prefix
        store.client.hset(f"{old}k:user:ann@example.com", mapping={"v": "token-a"})
        store.client.hset(f"{old}k:otp:bob@example.com", mapping={"v": "stale", "e": "1e12"})
        store.client.lpush(f"{old}l:outbox", "|first")
        store.set("otp:bob@example.com", "fresh", 60)  # written after the upgrade: it wins
        store.check()
        assert store.get("user:ann@example.com") == "token-a"
        assert store.get("otp:bob@example.com") == "fresh"
        assert store.items("outbox") == ["first"]
        assert store.client.exists(f"{old}k:user:ann@example.com", f"{old}l:outbox") == 0
        assert store.client.exists(f"{old}k:otp:bob@example.com") == 0
        assert store.client.get(f"{old}layout") == "hash-tagged"
        store.client.hset(f"{old}k:user:late@example.com", mapping={"v": "t"})
        store.check()  # done once: not scanned again
        assert store.get("user:late@example.com") is None
        assert store.size() == 3

    def test_the_members_of_a_group_share_one_hash_that_expires_with_the_last(
        self, store: RedisStore
    ) -> None:
        store.hits([(member("g", "hour"), 3600), (member("g", "wait"), 30)])
        key = store._key(member("g", "hour"))
        assert store.client.type(key) == "hash"
        assert store.client.hlen(key) == 2
        assert 3_599_000 < store.client.pttl(key) <= 3_600_000
        with pytest.raises(ValueError, match="must expire"):
            store.set(member("g", "forever"), "v", None)
        with pytest.raises(ValueError, match="no list"):
            store.push(member("g", "list"), "v", 10, 3)

    def test_a_batch_is_one_round_trip(
        self, store: RedisStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store.set("k", "v", 60)
        sent = count_round_trips(monkeypatch)
        store.many(
            [("get", "k"), ("hits", [("a", 60), ("b", 60)]), ("pop", "k"), ("set", "n", "1", 5)]
        )
        assert len(sent) == 1
        store.get("k")
        assert len(sent) == 2

    def test_a_batch_after_a_script_flush_loads_the_scripts_again(self) -> None:
        server = redis_server.RedisServer()
        try:
            server.start()
        except redis_server.RedisUnavailableError as exc:
            redis_server.unavailable(str(exc))
        store = RedisStore(server.url, prefix=redis_server.unique_prefix())
        try:
            store.set("k", "v", 60)
            store.client.script_flush()
            assert store.many([("hits", [("h", 60)]), ("pop", "k"), ("get", "k")]) == [
                [(1, pytest.approx(60, abs=1))],
                "v",
                None,
            ]
            assert store.hit("h", 60)[0] == 2  # counted once, not again with the reload
        finally:
            store.close()
            server.stop()

    def test_restarted_redis_is_used_again_by_the_same_store(self) -> None:
        server = redis_server.RedisServer()
        try:
            server.start()
        except redis_server.RedisUnavailableError as exc:
            redis_server.unavailable(str(exc))
        store = RedisStore(server.url, prefix=redis_server.unique_prefix(), socket_timeout=0.5)
        try:
            store.set("k", "v", 60)
            assert store.get("k") == "v"
            server.stop()
            with pytest.raises(StoreUnavailableError):
                store.get("k")
            with pytest.raises(StoreUnavailableError):
                store.ping()
            server.start()
            assert store.get("k") is None  # no persistence; the script is loaded again
            store.set("k", "back", 60)
            assert store.pop("k", "back") == "back"
            assert store.hit("h", 60)[0] == 1
        finally:
            store.close()
            server.stop()


def test_redis_at_a_closed_port_is_unavailable_quickly() -> None:
    store = RedisStore(
        f"redis://127.0.0.1:{redis_server.free_port()}/0", prefix="x:", socket_timeout=0.2
    )
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailableError) as info:
            store.ping()
        with pytest.raises(StoreUnavailableError):
            store.set("k", "v", 10)
        with pytest.raises(StoreUnavailableError):
            store.size()
    finally:
        store.close()
    assert time.monotonic() - started < 2
    assert info.value.__cause__ is not None


def test_redis_store_without_redis_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r'pip install "flask-postmark-auth\[redis\]"'):
        RedisStore("redis://127.0.0.1:6379/0")


# -- open_store -----------------------------------------------------------------------------


def test_open_store_memory(clock: FakeClock) -> None:
    store = open_store("memory://", instance_path="/unused", clock=clock)
    assert isinstance(store, MemoryStore)
    assert store.clock is clock


def test_open_store_sqlite_relative_to_the_instance_folder(tmp_path: Path) -> None:
    store = open_store("sqlite:///sub/auth.db", instance_path=str(tmp_path))
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / "sub" / "auth.db")
    try:
        store.set("k", "v", None)
    finally:
        store.close()
    assert (tmp_path / "sub" / "auth.db").exists()


def test_open_store_sqlite_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    store = open_store(f"sqlite:///{path}", instance_path="/elsewhere")
    assert isinstance(store, SQLiteStore)
    assert store.path == str(path)
    store.close()


def test_open_store_redis_takes_the_prefix_out_of_the_url() -> None:
    store = open_store("redis://cache.internal:6380/2?prefix=app1%3A", instance_path="/x")
    assert isinstance(store, RedisStore)
    try:
        assert store.prefix == "app1:"
        kwargs = store.client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.internal", 6380, 2)
        assert "prefix" not in kwargs
    finally:
        store.close()


def test_open_store_redis_forms() -> None:
    plain = open_store("redis://localhost", instance_path="/x")
    tls = open_store("rediss://localhost:6390/1?prefix=t:", instance_path="/x")
    unix = open_store("unix:///run/redis.sock?db=3&prefix=u:", instance_path="/x")
    try:
        assert isinstance(plain, RedisStore)
        assert isinstance(tls, RedisStore)
        assert isinstance(unix, RedisStore)
        assert plain.prefix == DEFAULT_PREFIX
        assert tls.prefix == "t:"
        assert "SSL" in tls.client.connection_pool.connection_class.__name__
        assert unix.prefix == "u:"
        kwargs = unix.client.connection_pool.connection_kwargs
        assert (kwargs["path"], kwargs["db"]) == ("/run/redis.sock", 3)
    finally:
        for store in (plain, tls, unix):
            store.close()


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://localhost/db",
        "auth.db",
        "sqlite://auth.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "memory://something",
    ],
)
def test_open_store_rejects_other_uris(uri: str) -> None:
    with pytest.raises(ValueError, match=r"memory://|sqlite:///"):
        open_store(uri, instance_path="/x")
