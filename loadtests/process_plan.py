"""The per-process state every load user shares: scenario, keys, pacers, recorder.

Built once per Locust process from the custom arguments (``--secton-scenario`` and
friends, see ``loadtests/locustfile.py``). Users find it as ``environment.secton_plan``.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent.event

from loadtests.pacing import Pacer
from loadtests.pool import UserPool
from loadtests.record_shipping import Shipper
from loadtests.recorder import Recorder
from loadtests.scenario import DEFAULT_MAX_REQUESTS, Scenario, load_scenario, spread_keys
from secton_harness.errors import BadInput
from secton_harness.keys import ApiKey, resolve_keys


@dataclass
class LoadPlan:
    scenario: Scenario
    keys: list[ApiKey]
    run_dir: Path | None
    worker: str
    max_requests: int
    contract: Any = None
    recorder: Recorder | None = None
    pacers: dict[str, Pacer] = field(default_factory=dict)
    pools: dict[str, UserPool] = field(default_factory=dict)
    #: per endpoint: this process's share of the scenario's rate (its users / all users)
    shares: dict[str, float] = field(default_factory=dict)
    pacing_started: gevent.event.Event = field(default_factory=gevent.event.Event)
    started_wall: float = 0.0
    key_offset: int = 0
    _next_user: itertools.count = field(default_factory=itertools.count)
    _next_rng: itertools.count = field(default_factory=itertools.count)

    @classmethod
    def from_options(cls, options: Any, worker: str) -> LoadPlan:
        scenario_path = getattr(options, "secton_scenario", "") or os.environ.get(
            "SECTON_SCENARIO", "")
        if not scenario_path:
            raise BadInput("no scenario: pass --secton-scenario FILE or set SECTON_SCENARIO")
        scenario = load_scenario(scenario_path)
        max_duration = float(getattr(options, "secton_max_duration", 0) or 0)
        if max_duration > 0:  # the CLI's --max-duration: the same cut drain as the CLI's
            scenario = scenario.capped(max_duration)
        keys_path = getattr(options, "secton_keys", "") or os.environ.get("SECTON_KEYS") or None
        pool = resolve_keys(keys_path)
        keys = spread_keys(pool, scenario.keys.aliases, scenario.keys.orgs)
        run_dir_text = getattr(options, "secton_run_dir", "") or os.environ.get(
            "SECTON_RUN_DIR", "")
        run_dir = Path(run_dir_text) if run_dir_text else None
        max_requests = int(getattr(options, "secton_max_requests", 0) or DEFAULT_MAX_REQUESTS)
        plan = cls(scenario, keys, run_dir, worker, max_requests)
        if scenario.validate_sample > 0:
            plan.contract = _load_contract()
        return plan

    def start_recorder(self, shipper: Shipper | None = None) -> None:
        if self.recorder is None and self.run_dir is not None:
            self.recorder = Recorder(self.run_dir, self.worker, shipper)

    def next_key(self) -> ApiKey:
        """Round-robin over the org-interleaved keys; workers start at different offsets."""
        return self.keys[(next(self._next_user) + self.key_offset) % len(self.keys)]

    def user_rng(self) -> random.Random:
        return random.Random(f"{self.scenario.seed}-{self.worker}-{next(self._next_rng)}")

    def pool(self, endpoint: str) -> UserPool:
        """The user pool of ``endpoint`` in this process (made on first use; its cap is
        set to this process's share of ``max_users`` when the pacers start)."""
        found = self.pools.get(endpoint)
        if found is None:
            found = self.pools[endpoint] = UserPool(endpoint, self.scenario.max_users_of(
                endpoint))
        return found

    def start_pacers(self, users_by_endpoint: dict[str, int]) -> None:
        """One pacer per endpoint for this process's share of the users (and rate), and
        of the endpoint's part of ``--max-requests`` (:meth:`Scenario.request_caps`)."""
        loads = self.scenario.endpoint_loads()
        caps = self.scenario.request_caps(self.max_requests)
        for index, (name, load) in enumerate(loads.items()):
            own = users_by_endpoint.get(name, 0)
            if own <= 0 or name in self.pacers:
                continue
            share = own / load.user_count()
            base = load.rate * share
            self.shares[name] = share
            pool = self.pool(name)
            pool.cap = max(own, round(self.scenario.max_users_of(name) * share))
            pool.peak_rate = base * self.scenario.peak_factor()
            pool.pending = max(0, own - pool.size)  # spawned users whose on_start is to come

            def rate_at(elapsed: float, base: float = base) -> float:
                return base * self.scenario.multiplier(elapsed)

            self.pacers[name] = Pacer(
                rate_at, self.scenario.phase_at, self.scenario.duration,
                arrival=self.scenario.arrival,
                seed=f"{self.scenario.seed}-{self.key_offset}-{index}",
                # this process's part of the endpoint's part of the cap, rounded down so
                # the parts never add up to more than --max-requests
                max_tickets=math.floor(caps[name] * share + 1e-6),
                breakpoints=self.scenario.rate_breakpoints(),
                late_tolerance_s=self.scenario.late_tolerance,
            ).start()
        self.pacing_started.set()

    def finish_pacers(self) -> None:
        """The run stops: every slot not claimed yet is on record as dropped."""
        for pacer in self.pacers.values():
            pacer.finish()

    def schedule(self) -> dict[str, Any]:
        """Per endpoint: the schedule's slots and drops by phase, and the pool's figures
        (written per process as ``schedule-<worker>.json``; the CLI sums them)."""
        out: dict[str, Any] = {}
        for name, pacer in self.pacers.items():
            pool = self.pools.get(name)
            out[name] = {"asked": dict(pacer.asked), "dropped": dict(pacer.dropped),
                         "capped": dict(pacer.capped),
                         "share": self.shares.get(name, 0.0),
                         "pool": pool.snapshot() if pool is not None else {}}
        return out

    @property
    def dropped(self) -> int:
        return sum(pacer.dropped_total for pacer in self.pacers.values())

    @property
    def pacing_done(self) -> bool:
        """Pacing started and every pacer of this process is done. A ``--processes``
        worker that Locust gave no user (``users = 1`` over two workers) has no pacer and
        nothing to send: it is done as soon as pacing starts. (It used to count as never
        done, so the master waited out the whole drain: a 4 s run took 40 s.)"""
        return self.pacing_started.is_set() and all(p.done for p in self.pacers.values())


def _load_contract() -> Any:
    """The shared contract validator (loaded once per process, off the import path)."""
    from secton_harness.contract import default_contract

    return default_contract()
