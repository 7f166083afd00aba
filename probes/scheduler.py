"""Run every enabled check on every target, once or on its own interval, never stalling.

Each (target, check) pair is one asyncio task with its own HTTP client and timeout, so a
slow or dead target delays nothing but its own checks. A task awaits its run before it
schedules the next one, so a check never overlaps itself: when a run overruns its
interval the next one starts right after it (no catch-up bursts). Intervals are jittered
(``jitter`` = +- fraction of the interval) and first runs are spread over the first
``jitter x interval`` so checks do not beat in step.

Results go to listeners (the metrics, the record sink, the console), one call per run;
listeners run on the event loop and must not block for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from probes.config import CheckSettings, HarnessConfig
from secton_harness.client import AsyncSectonClient
from secton_harness.contract import Contract

from .checks import CHECKS
from .runner import CheckResult, ProbeTarget, applicable, run_check

Listener = Callable[[CheckResult], None]
#: How long in-flight runs may finish after a stop before they are cancelled.
STOP_GRACE_S = 2.0


@dataclass(frozen=True)
class Job:
    """One (target, check) pair: what a task runs, forever or once."""

    target: ProbeTarget
    settings: CheckSettings

    @property
    def skip_reason(self) -> str:
        return applicable(CHECKS[self.settings.name], self.target)


class ProbeScheduler:
    """Owns the clients and the tasks; ``run_once()`` or ``run(stop)``."""

    def __init__(self, config: HarnessConfig, targets: list[ProbeTarget], contract: Contract,
                 listeners: list[Listener], rng: random.Random | None = None) -> None:
        self.config = config
        self.contract = contract
        self.listeners = listeners
        self.rng = rng or random.Random()
        self.jobs = [Job(target, settings) for target in targets
                     for settings in config.enabled_checks()]

    @property
    def active_jobs(self) -> list[Job]:
        """Jobs that can run (e.g. org_isolation needs keys of two orgs)."""
        return [job for job in self.jobs if not job.skip_reason]

    def _emit(self, result: CheckResult) -> None:
        for listener in self.listeners:
            listener(result)

    async def _run(self, job: Job, client: AsyncSectonClient) -> CheckResult:
        spec = CHECKS[job.settings.name]
        result = await run_check(spec, job.settings, job.target, client, self.contract,
                                 self.config.probes)
        self._emit(result)
        return result

    def _client(self, job: Job) -> AsyncSectonClient:
        return AsyncSectonClient(job.target.url, job.target.timeout_for(job.settings))

    async def run_once(self) -> list[CheckResult]:
        """Every enabled check on every target once, concurrently; results in job order."""
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(self._client(job)) for job in self.jobs]
            return list(await asyncio.gather(*(self._run(job, client)
                                               for job, client in zip(self.jobs, clients,
                                                                      strict=True))))

    async def run(self, stop: asyncio.Event) -> None:
        """Run every applicable job on its schedule until ``stop`` is set."""
        async with contextlib.AsyncExitStack() as stack:
            tasks = []
            for job in self.active_jobs:
                client = await stack.enter_async_context(self._client(job))
                tasks.append(asyncio.create_task(self._loop(job, client, stop),
                                                 name=f"{job.target.label}/{job.settings.name}"))
            await stop.wait()
            _done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _loop(self, job: Job, client: AsyncSectonClient, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        interval, jitter = job.settings.interval, self.config.probes.jitter
        due = loop.time() + self.rng.uniform(0, jitter * interval)
        while not stop.is_set():
            wait = due - loop.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                if stop.is_set():
                    return
            started = loop.time()
            await self._run(job, client)
            due = max(started + interval * (1 + self.rng.uniform(-jitter, jitter)), loop.time())
