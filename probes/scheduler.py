"""Run every enabled check on every target, once or on its own interval, never stalling.

Each (target, check) pair is one asyncio task with its own HTTP client and timeout, so a
slow or dead target delays nothing but its own checks. A task awaits its run before it
schedules the next one, so a check never overlaps itself: when a run overruns its
interval the next one starts right after it (no catch-up bursts). Intervals are jittered
(``jitter`` = +- fraction of the interval) and first runs are spread over the first
``jitter x interval`` so checks do not beat in step.

Results go to listeners (the metrics, the record sink, the console), one call per run;
listeners run on the event loop and must not block for long.

A run that raises (a bug in a check, a listener that fails, e.g. a record write) does not
end its loop: the run becomes a failed result with reason ``harness_error`` (so the
metrics show the check failing instead of keeping their last values), ``on_error`` gets a
line saying what raised, and the loop goes on at its next due time. One listener raising
never keeps the others from the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from probes.config import CheckSettings, HarnessConfig
from secton_harness.client import AsyncSectonClient
from secton_harness.contract import Contract
from secton_harness.metrics import HARNESS_ERROR

from .checks import CHECKS
from .runner import CheckResult, ProbeTarget, applicable, run_check

Listener = Callable[[CheckResult], None]
ErrorLog = Callable[[str], None]
#: How long in-flight runs may finish after a stop before they are cancelled.
STOP_GRACE_S = 2.0
#: ``probe --once``: the checks of one target start this far apart (see run_once).
ONCE_STAGGER_S = 0.03


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
                 listeners: list[Listener], rng: random.Random | None = None,
                 on_error: ErrorLog | None = None) -> None:
        self.config = config
        self.contract = contract
        self.listeners = listeners
        self.rng = rng or random.Random()
        self.on_error = on_error or _to_stderr
        self.jobs = [Job(target, settings) for target in targets
                     for settings in config.enabled_checks()]

    @property
    def active_jobs(self) -> list[Job]:
        """Jobs that can run (e.g. org_isolation needs keys of two orgs)."""
        return [job for job in self.jobs if not job.skip_reason]

    def _emit(self, result: CheckResult) -> list[Exception]:
        """Give ``result`` to every listener; what they raised, in order."""
        raised = []
        for listener in self.listeners:
            try:
                listener(result)
            except Exception as error:  # one broken listener, not all
                raised.append(error)
        return raised

    async def _run(self, job: Job, client: AsyncSectonClient,
                   started: asyncio.Event | None = None) -> CheckResult:
        """One run of ``job``, emitted; never raises (a failure becomes harness_error).
        ``started`` is set once the run has taken its start time."""
        ts, start = time.time(), time.perf_counter()
        if started is not None:
            started.set()
        try:
            result = await run_check(CHECKS[job.settings.name], job.settings, job.target,
                                     client, self.contract, self.config.probes)
        except Exception as error:  # reported below; the loop goes on
            return self._crashed(job, ts, time.perf_counter() - start, "the run", error)
        raised = self._emit(result)
        if raised:
            return self._crashed(job, ts, result.duration_s, "a listener", raised[0])
        return result

    def _crashed(self, job: Job, ts: float, duration_s: float, where: str,
                 error: Exception) -> CheckResult:
        """Report what raised (one line; keys redacted) and emit a failed result for it."""
        what = job.target.keys.redact(f"{type(error).__name__}: {error}")
        what = " ".join(what.split())[:300]
        label = f"{job.target.label}/{job.settings.name}"
        self.on_error(f"{label}: {where} raised {what}; the check is marked failing "
                      f"({HARNESS_ERROR}) and runs again at its next interval")
        result = CheckResult(job.settings.name, job.target.label, ts, duration_s, False,
                             reason=HARNESS_ERROR, detail=f"{where} raised {what}")
        for again in self._emit(result):
            self.on_error(f"{label}: a listener raised again on the {HARNESS_ERROR} result: "
                          f"{type(again).__name__}")
        return result

    def _client(self, job: Job) -> AsyncSectonClient:
        return AsyncSectonClient(job.target.url, job.target.timeout_for(job.settings))

    async def run_once(self) -> list[CheckResult]:
        """Every enabled check on every target once, concurrently; results in job order.

        The checks of one target start at least :data:`ONCE_STAGGER_S` apart (each waits
        for the previous one to have started): started together, each one's duration
        held the others' processing in the one event loop (20-60 ms per check where one
        alone takes 5-12 ms). The run still lasts about its slowest check, plus about
        ``checks x ONCE_STAGGER_S``; targets are launched side by side.
        """
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(self._client(job)) for job in self.jobs]
            tasks: list[asyncio.Task[CheckResult] | None] = [None] * len(self.jobs)
            by_target: dict[str, list[int]] = {}
            for index, job in enumerate(self.jobs):
                by_target.setdefault(job.target.label, []).append(index)

            async def launch(indexes: list[int]) -> None:
                for n, index in enumerate(indexes):
                    if n:
                        await asyncio.sleep(ONCE_STAGGER_S)
                    started = asyncio.Event()
                    tasks[index] = asyncio.create_task(
                        self._run(self.jobs[index], clients[index], started))
                    await started.wait()

            await asyncio.gather(*(launch(indexes) for indexes in by_target.values()))
            return list(await asyncio.gather(*(task for task in tasks if task is not None)))

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


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
