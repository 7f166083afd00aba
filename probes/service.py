"""One probe run end to end: config -> targets and keys -> scheduler -> listeners -> run folder.

The listeners are the record sink (every result, ``source=probe``), the Prometheus metrics
(continuous mode) and the console. :meth:`ProbeRun.once` is what ``--once``, cron, CI and
``demo`` use; :meth:`ProbeRun.continuous` is the long-running service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from rich.console import Console

from probes.config import (
    ENV_BASE_URL,
    HarnessConfig,
    TargetConfig,
    apply_overrides,
    load_harness_config,
)
from secton_harness.contract import Contract
from secton_harness.errors import BadInput
from secton_harness.keys import KeyPool, NoKeys, load_keys, resolve_keys
from secton_harness.records import RecordSink
from secton_harness.runfolder import RunFolder

from .console import StateLog, results_table, summary_line
from .exporter import ProbeMetrics
from .runner import CheckResult, ProbeTarget
from .scheduler import ProbeScheduler

SignalInstaller = Callable[[asyncio.Event, list[str]], None]


def probe_targets(config: HarnessConfig, keys_path: str | os.PathLike[str] | None
                  ) -> list[ProbeTarget]:
    """Each configured target with its keys (``--keys`` > target ``keys`` > env)."""
    shared: KeyPool | None = load_keys(keys_path) if keys_path is not None else None
    targets = []
    for target in config.targets:
        pool = shared or _target_keys(target)
        alias = config.probes.key_alias
        probe_key = pool.by_alias(alias) if alias else pool.keys[0]
        targets.append(ProbeTarget(target.label, target.url, pool, probe_key, target.timeout))
    return targets


def _target_keys(target: TargetConfig) -> KeyPool:
    return load_keys(target.keys) if target.keys else resolve_keys(None)


@dataclass
class ProbeRun:
    """Everything resolved and validated before the first request is sent."""

    config: HarnessConfig
    targets: list[ProbeTarget]
    contract: Contract
    out: Path | None
    argv: list[str]
    console: Console

    @classmethod
    def prepare(cls, config_path: Path | None, target_url: str | None, label: str | None,
                keys_path: Path | None, out: Path | None, argv: list[str] | None = None,
                console: Console | None = None) -> ProbeRun:
        loaded = load_harness_config(config_path)
        config = apply_overrides(loaded, target_url, label)
        if not config.enabled_checks():
            raise BadInput(f"{config_path}: probes.checks: every check is disabled")
        contract = Contract.load(config.probes.schema_dir)
        try:
            targets = probe_targets(config, keys_path)
        except NoKeys as error:
            if config is loaded or not any(t.keys for t in loaded.targets):
                raise
            by = "--target" if target_url is not None else ENV_BASE_URL
            raise NoKeys(f"{error} ({by} replaced the [[targets]] of {config_path}, and "
                         "with them their keys = files)") from None
        return cls(config, targets, contract, out, argv or [],
                   console or Console(log_path=False))

    def _start_folder(self) -> tuple[RunFolder, RecordSink]:
        folder = RunFolder.start(self.out, command="probe", argv=self.argv,
                                 config=self.config.model_dump(),
                                 target=self.targets[0].url if self.targets else None)
        folder.update(targets={t.label: t.url for t in self.targets})
        return folder, RecordSink(folder.path, source="probe", flush_interval_s=5.0)

    @staticmethod
    def _recorder(sink: RecordSink) -> Callable[[CheckResult], None]:
        def record(result: CheckResult) -> None:
            if not result.skipped:
                sink.add(result.record())
        return record

    def _log_error(self, line: str) -> None:
        """A run that raised, as one console line (its text is not rich markup)."""
        self.console.log(line, markup=False, highlight=False)

    async def once(self) -> int:
        """Every check once; the table; 0 when nothing failed, else 1."""
        folder, sink = self._start_folder()
        scheduler = ProbeScheduler(self.config, self.targets, self.contract,
                                   [self._recorder(sink)], on_error=self._log_error)
        try:
            results = await scheduler.run_once()
        except BaseException:
            sink.close()
            folder.finish("error")
            raise
        sink.close()
        self.results = results
        self.run_dir = folder.path
        failed = [r for r in results if r.result == "failure"]
        folder.finish("failed" if failed else "passed", summary=_summary(results))
        self.console.print(results_table(results))
        self.console.print(summary_line(results) + f"; records in {folder.path}")
        return 1 if failed else 0

    async def continuous(self, port: int, address: str, duration_s: float | None,
                         install_signals: SignalInstaller | None = None) -> int:
        """Probe on schedule until a signal or ``duration_s``; flush everything; 0/1."""
        folder, sink = self._start_folder()
        log = StateLog(self.console)
        listeners = [self._recorder(sink), log]
        metrics = None
        server = None
        if port:
            metrics = ProbeMetrics(CollectorRegistry(), [s.name for s in
                                                          self.config.enabled_checks()],
                                   [t.label for t in self.targets],
                                   ratelimit_files=self.config.probes.ratelimit_files,
                                   target_urls={t.label: t.url for t in self.targets})
            listeners.insert(0, metrics.observe)
        scheduler = ProbeScheduler(self.config, self.targets, self.contract, listeners,
                                   on_error=self._log_error)
        stop = asyncio.Event()
        stopped_by: list[str] = []
        if install_signals is not None:
            install_signals(stop, stopped_by)
        outcome = "error"
        try:
            if metrics is not None:
                server = metrics.serve(port, address)
                shown = server.server_address
                folder.update(metrics_url=f"http://{shown[0]}:{shown[1]}/metrics")
                self.console.print(f"metrics on http://{shown[0]}:{shown[1]}/metrics")
            for job in scheduler.jobs:
                if job.skip_reason:
                    self.console.print(f"{job.target.label}/{job.settings.name}: skipped, "
                                       f"{job.skip_reason}")
            self.console.print(f"probing {len(self.targets)} target(s), "
                               f"{len(scheduler.active_jobs)} job(s); records in "
                               f"{folder.path}; stop with Ctrl-C or SIGTERM")
            runner = asyncio.create_task(scheduler.run(stop))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration_s)  # None: until a signal
            stop.set()
            await runner
            # a signal is the service's normal end (docs/guarantees.md): its window is
            # judged like one that reached --duration; stopped_by names the signal. It was
            # "interrupted", which the report reads as stopped early (FAILED, exit 1).
            # A window in which no check finished proves nothing: never "passed"
            if not sink.count:
                outcome = "interrupted" if stopped_by else "failed"
            else:
                outcome = "failed" if log.failures() else "passed"
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            sink.close()
            folder.finish(outcome, stopped_by=stopped_by[0] if stopped_by else "duration",
                          records=sink.count, summary=_run_counts(log))
        self.console.print(log.table())
        how = f" (stopped by {stopped_by[0]})" if stopped_by else ""
        self.console.print(f"{outcome}{how}: {sink.count} results recorded in {folder.path}")
        return 1 if outcome == "failed" and not stopped_by else 0


def _summary(results: list[CheckResult]) -> dict[str, dict[str, str]]:
    summary: dict[str, dict[str, str]] = {}
    for r in results:
        shown = r.result if not r.reason else f"{r.result}: {r.reason}"
        summary.setdefault(r.target, {})[r.check] = shown
    return summary


def _run_counts(log: StateLog) -> dict[str, dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for (target, check, result), n in log.runs.items():
        counts.setdefault(target, {}).setdefault(check, {})[result] = n
    return counts
