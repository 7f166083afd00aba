"""The user pool alone: grows when every user is busy, never past max_users."""

from __future__ import annotations

from loadtests.pool import UserPool


def test_grows_when_all_busy_up_to_the_cap() -> None:
    started: list[int] = []
    pool = UserPool("chat", cap=3, grow=started.append)
    pool.joined()
    pool.joined()
    pool.acquire()            # 1 of 2 busy: someone is free for the next slot
    assert started == []
    pool.acquire()            # 2 of 2 busy: start one more
    assert started == [1] and pool.pending == 1
    pool.acquire()            # 3 busy, 2 + 1 pending = cap: no more
    assert started == [1]
    pool.joined()             # the new user starts
    assert pool.size == 3 and pool.pending == 0 and pool.peak_busy == 3
    pool.acquire()            # all 3 busy at the cap: saturated, never a 4th
    assert started == [1] and pool.snapshot()["max_users"] == 3
    pool.release()
    snap = pool.snapshot()
    assert snap["grown"] == 1 and snap["peak_users"] == 3 and snap["saturated_s"] >= 0


def test_starting_users_still_to_come_are_not_grown_again() -> None:
    started: list[int] = []
    pool = UserPool("models", cap=10, grow=started.append)
    pool.pending = 4          # the pacers started before the spawned users' on_start
    pool.joined()
    pool.acquire()            # 1 busy of 1 started + 3 coming: no growth
    assert started == []


def test_growth_stops_at_what_littles_law_needs() -> None:
    """A saturated generator core makes every user look busy; once requests finish in
    ~0 s, more users cannot raise the rate, so the pool stops at rate x time x 1.5 + 2."""
    started: list[int] = []
    pool = UserPool("models", cap=1000, grow=started.append, peak_rate=100.0)
    pool.joined()
    pool.release(pool.acquire())   # one finished request: ~0 s in flight
    for _ in range(20):            # every user busy again and again
        pool.acquire()
        if pool.pending:
            pool.joined()
    # ceil(100/s x ~0 s x 1.5) + 2 = 3 users at most, where the cap would allow 1000
    assert pool.size + pool.pending <= 3, pool.snapshot()


def test_before_any_request_finishes_the_pool_grows_as_before() -> None:
    """At LLM latencies the first answers take seconds: no bound until one finishes."""
    started: list[int] = []
    pool = UserPool("chat", cap=50, grow=started.append, peak_rate=10.0)
    pool.joined()
    for _ in range(10):
        pool.acquire()
        if pool.pending:
            pool.joined()
    assert len(started) == 10 and pool.size == 11
