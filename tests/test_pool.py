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
