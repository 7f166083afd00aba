"""Run a load scenario: Locust in a child process, then thresholds on the merged records.

Why a child process: importing Locust monkey-patches the whole interpreter with gevent,
and ``--processes`` forks from Locust's own ``main``. Running ``python -m locust -f
loadtests/locustfile.py`` keeps the CLI process plain, gives ``--processes``,
``--master``/``--worker`` and ``--ui`` exactly Locust's behaviour, and leaves the CLI free
to watch the clock, forward signals, and judge the run from the records on disk (every
process writes its own part files into the run folder; nothing travels in memory).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.run_files import PUSH_FILE, STOP_FILE, SUMMARY_FILE, WORKERS_FILE
from loadtests.scenario import (
    DEFAULT_MAX_REQUESTS,
    Scenario,
    load_scenario,
    scenario_summary,
    spread_keys,
)
from loadtests.thresholds import ThresholdResult
from secton_harness.atomicfile import write_text_atomic
from secton_harness.config import parse_http_url, require_loopback
from secton_harness.endpoints import api_base
from secton_harness.errors import BadInput, HarnessError
from secton_harness.keys import resolve_keys
from secton_harness.records import (
    PARTS_DIR,
    RECORDS_FILE,
    merge_parts,
    read_records,
    warm_up,
)
from secton_harness.runfolder import RUN_FILE, RunFolder

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STARTUP_ALLOWANCE_S = 30.0
KILL_AFTER_S = 20.0
ABORT_CHECK_S = 2.0
#: The CLI's watch: progress, deadline and stop checks this often (the child's exit is
#: seen at once, not at the next tick).
WATCH_EVERY_S = 0.25
#: Target-down detection (scenario ``stop_when_down``): over the last DOWN_WINDOW_S of
#: records, at least DOWN_MIN_REQUESTS and DOWN_SHARE of them without answer or with a 5xx.
DOWN_WINDOW_S = 10.0
DOWN_MIN_REQUESTS = 20
DOWN_SHARE = 0.9
DOWN_GRACE_S = 3.0


@dataclass(frozen=True)
class LoadOptions:
    scenario: Path
    target: str
    keys: Path | None = None
    out: Path | None = None
    processes: int = 0
    master: bool = False
    worker: bool = False
    master_host: str = "127.0.0.1"
    master_port: int = 5557
    expect_workers: int = 1
    ui: bool = False
    web_port: int = 8089
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    metrics_linger_s: float = 0.0
    max_requests: int = DEFAULT_MAX_REQUESTS
    max_duration_s: float = 3600.0
    allow_remote: bool = False
    overwrite: bool = False
    push_gateway: str | None = None
    keep_parts: bool = True


def validate(options: LoadOptions) -> tuple[Scenario, str]:
    """Everything a user can get wrong, checked before anything starts (BadInput)."""
    scenario = load_scenario(options.scenario)
    try:
        target = parse_http_url(options.target)
    except ValueError as error:
        raise BadInput(f"--target: {error}") from None
    # the API's base URL with or without /v1, as probe and ratelimit take it (the paths
    # sent carry /v1 themselves: http://host/v1 would have loaded /v1/v1/models)
    target = api_base(target)
    require_loopback(target, options.allow_remote, "a load test would load it")
    if scenario.duration > options.max_duration_s:
        raise BadInput(f"{options.scenario}: duration {scenario.duration:g}s exceeds "
                       f"--max-duration {options.max_duration_s:g}s; raise --max-duration")
    scenario = scenario.capped(options.max_duration_s)
    if options.max_requests < 1:
        raise BadInput("--max-requests must be >= 1")
    slots = scenario.expected_slots()
    asked = sum(slots.values())
    if asked > options.max_requests:
        # the cap would cut the schedule short: a run that cannot do what the scenario
        # asks is refused, not run (each endpoint gets its part of the cap in proportion
        # to its slots, so a total that fits never cuts one endpoint short; a cut that
        # still happens, e.g. Poisson arrivals above their mean, fails the rate check)
        each = ", ".join(f"{name} {n:,}" for name, n in slots.items())
        raise BadInput(f"{options.scenario}: the scenario asks for {asked:,} requests "
                       f"({each}), over --max-requests {options.max_requests:,}; raise "
                       "--max-requests or shorten the scenario")
    for flag, value, low in (("--metrics-port", options.metrics_port, 0),
                             ("--web-port", options.web_port, 1),
                             ("--master-port", options.master_port, 1)):
        if not low <= value <= 65535:
            raise BadInput(f"{flag} {value}: a port is {low}-65535")
    for flag, value, low in (("--processes", options.processes, 0),
                             ("--expect-workers", options.expect_workers, 1)):
        if value < low:
            raise BadInput(f"{flag} {value}: must be >= {low}")
    if options.processes and (options.master or options.worker):
        raise BadInput("--processes cannot be combined with --master or --worker")
    if options.master and options.worker:
        raise BadInput("--master and --worker exclude each other")
    if options.push_gateway:
        try:
            parse_http_url(options.push_gateway)
        except ValueError as error:
            raise BadInput(f"--push-gateway: {error}") from None
    # the key selection too: a scenario naming an org or alias the keys file lacks failed
    # inside the Locust child, as a table of "no data" and "see locust.log"
    spread_keys(resolve_keys(options.keys), scenario.keys.aliases, scenario.keys.orgs)
    check_out(options.out, options.overwrite)
    return scenario, target


def check_out(out: Path | None, overwrite: bool) -> None:
    """One run per folder: an existing run folder is refused unless ``--overwrite``,
    which empties it first (old records are never merged into a new run)."""
    if out is None or not out.exists():
        return
    if not out.is_dir():
        raise BadInput(f"--out {out}: exists and is not a directory")
    if not any(out.iterdir()):
        return
    is_run = (out / RUN_FILE).exists() or (out / RECORDS_FILE).exists() or (
        out / PARTS_DIR).exists()
    if not overwrite:
        what = "an existing run folder" if is_run else "a non-empty directory"
        raise BadInput(f"--out {out}: {what}; choose a new folder or pass --overwrite")
    if not is_run:
        raise BadInput(f"--out {out}: not a run folder (no run.json); refusing to overwrite "
                       "it, choose a new folder")
    import shutil

    try:
        for entry in out.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    except OSError as error:
        raise BadInput(f"--out {out}: cannot overwrite: {error.strerror}") from None


def child_deadline_s(options: LoadOptions, scenario: Scenario) -> float:
    """The Locust processes' own hard bound (the CLI's watch adds its startup allowance)."""
    if options.ui or options.master or options.worker:
        return options.max_duration_s + STARTUP_ALLOWANCE_S
    return scenario.duration + scenario.drain_s + STARTUP_ALLOWANCE_S


def locust_command(options: LoadOptions, scenario: Scenario, target: str,
                   run_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target,
           "--secton-scenario", str(options.scenario.resolve()),
           "--secton-run-dir", str(run_dir.resolve()),
           "--secton-max-requests", str(options.max_requests),
           "--secton-metrics-port", str(options.metrics_port),
           "--secton-metrics-host", options.metrics_host,
           "--secton-metrics-linger", str(options.metrics_linger_s),
           "--secton-parent-pid", str(os.getpid()),
           "--secton-deadline", f"{child_deadline_s(options, scenario):.3f}",
           "--secton-max-duration", f"{options.max_duration_s:.3f}",
           "--exit-code-on-error", "0", "--loglevel", "WARNING",
           "--logfile", str(run_dir / "locust.log")]
    if options.keys is not None:
        cmd += ["--secton-keys", str(options.keys.resolve())]
    if options.ui:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(options.web_port)]
    else:
        # no --run-time: ScenarioShape ends the run; the CLI's deadline is the hard bound
        cmd += ["--headless", "--only-summary"]
    if options.processes:
        # a private port: workers of another run on this machine must never join this one
        port = _free_port()
        cmd += ["--processes", str(options.processes), "--master-bind-port", str(port),
                "--master-port", str(port), "--master-bind-host", "127.0.0.1"]  # not "*"
    if options.push_gateway and not options.worker:
        cmd += ["--secton-push-gateway", options.push_gateway]
    if options.master:
        cmd += ["--secton-collect-records"]
        cmd += ["--master", "--master-bind-host", options.master_host,
                "--master-bind-port", str(options.master_port),
                "--expect-workers", str(options.expect_workers)]
    if options.worker:
        cmd = [c for c in cmd if c not in ("--headless", "--only-summary")]
        cmd += ["--worker", "--master-host", options.master_host,
                "--master-port", str(options.master_port), "--secton-ship-records"]
        if not options.keep_parts:
            cmd += ["--secton-no-keep-parts"]
    return cmd


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunResult:
    run_dir: Path
    outcome: str
    results: list[ThresholdResult]
    summary: dict[str, Any]
    locust: dict[str, Any]
    aborted: list[str]
    exit_code: int
    checks: list[Any] = field(default_factory=list)
    rates: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """One line: why the run did not pass ("" when it passed)."""
        if self.outcome == "passed":
            return ""
        if self.outcome == "interrupted":
            return "interrupted (SIGINT/SIGTERM); every record taken is kept"
        if self.outcome == "error":
            return f"the Locust process failed; see {self.run_dir / 'locust.log'}"
        failed = [c.detail for c in self.checks if not c.passed]
        failed += [f"threshold {r.threshold.scope}: {r.describe()}" for r in self.results
                   if not r.passed]
        return "; ".join(self.aborted + failed) or self.outcome


class _Signals:
    """SIGINT/SIGTERM in the CLI: remember it and ask Locust to stop (records kept)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received = signum
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)


def run_load(options: LoadOptions, progress: Any = None,
             checked: tuple[Scenario, str] | None = None) -> RunResult:
    """Run the scenario and judge it; ``progress(elapsed, total, records)`` is optional;
    ``checked`` is what :func:`validate` returned when the caller ran it first."""
    scenario, target = checked if checked is not None else validate(options)
    run = _start_folder(options, scenario, target)
    run_dir = run.path
    cmd = locust_command(options, scenario, target, run_dir)
    signals = _Signals()
    signals.install()
    aborted: list[str] = []
    try:
        with open(run_dir / "locust.out", "wb") as out:
            child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)
            signals.child = child
            aborted = _watch(child, scenario, options, run_dir, signals, progress)
        _reap_group(child)
    finally:
        signals.restore()
    return _finish(run, scenario, child.returncode, signals.received, aborted, options)


def _die_with_parent() -> None:
    """In the Locust child before exec: SIGTERM when the CLI dies, even by SIGKILL.

    Linux's parent-death signal; the child also watches the CLI's pid and keeps its own
    deadline (``--secton-parent-pid``, ``--secton-deadline``), which covers the forked
    ``--processes`` workers and systems without prctl.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_folder(options: LoadOptions, scenario: Scenario, target: str) -> RunFolder:
    try:
        return RunFolder.start(options.out, command="load", target=target, config={
        "scenario_file": str(options.scenario), "scenario": scenario_summary(scenario),
        "processes": options.processes, "master": options.master, "worker": options.worker,
        "max_requests": options.max_requests, "max_duration_s": options.max_duration_s,
        "keys_file": str(options.keys) if options.keys else None, "ui": options.ui})
    except OSError as error:
        raise BadInput(f"--out {options.out}: cannot write the run folder: "
                       f"{error.strerror or error}") from None


def _watch(child: subprocess.Popen[bytes], scenario: Scenario, options: LoadOptions,
           run_dir: Path, signals: _Signals, progress: Any) -> list[str]:
    started = time.monotonic()
    deadline = started + child_deadline_s(options, scenario) + STARTUP_ALLOWANCE_S
    thresholds = scenario.threshold_set()
    next_abort_check = started + scenario.abort_grace
    next_down_check = started + DOWN_GRACE_S
    aborted: list[str] = []
    stop_sent_at: float | None = None
    warm_up()  # while Locust starts: the merge after a signal must not pay for it
    while not _exited(child, WATCH_EVERY_S):
        now = time.monotonic()
        if progress is not None:
            progress(now - started, scenario.duration, run_dir)
        if now > deadline and stop_sent_at is None:
            child.send_signal(signal.SIGTERM)
            stop_sent_at = now
        if signals.received is not None and stop_sent_at is None:
            stop_sent_at = now
        if stop_sent_at is not None and now - stop_sent_at > KILL_AFTER_S:
            _kill_group(child)
        if (scenario.abort_on_fail and len(thresholds) and not aborted
                and now >= next_abort_check):
            next_abort_check = now + ABORT_CHECK_S
            aborted = [f"{text} (abort_on_fail)" for text in _failing(thresholds, run_dir)]
            if aborted:
                write_text_atomic(run_dir / STOP_FILE, "\n".join(aborted) + "\n")
        if (scenario.stop_when_down and not aborted and not options.worker
                and now >= next_down_check):
            next_down_check = now + ABORT_CHECK_S
            aborted = _target_down(run_dir)
            if aborted:
                write_text_atomic(run_dir / STOP_FILE, "\n".join(aborted) + "\n")
    return aborted


def _exited(child: subprocess.Popen[bytes], within_s: float) -> bool:
    """Wait up to ``within_s`` for the child; True as soon as it has exited (a sleep of
    the whole interval cost up to 0.25 s of every stop, on a signal too)."""
    try:
        child.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def _target_down(run_dir: Path) -> list[str]:
    """``["target down: ..."]`` when the recent records show the target is not answering.

    Reads only the part files written in the last window (by mtime), so the check stays
    cheap however long the run is.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from secton_harness.records import PARTS_DIR

    horizon = time.time() - DOWN_WINDOW_S
    tables = []
    for part in (run_dir / PARTS_DIR).glob("*.parquet"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime >= horizon:
                with contextlib.suppress(Exception):
                    tables.append(pq.read_table(part, columns=["ts", "status"]))
    statuses = [t.filter(pc.greater_equal(t["ts"], horizon))["status"] for t in tables]
    total = sum(len(s) for s in statuses)
    if total < DOWN_MIN_REQUESTS:
        return []
    failed = sum(pc.sum(pc.or_(pc.equal(s, 0), pc.greater_equal(s, 500))).as_py() or 0
                 for s in statuses)
    if failed / total < DOWN_SHARE:
        return []
    return [f"target down: {failed} of the last {total} requests got no answer or a 5xx "
            f"(stop_when_down)"]


def _failing(thresholds: Any, run_dir: Path) -> list[str]:
    try:
        table = read_records(run_dir)
    except HarnessError:
        return []
    if table.num_rows == 0:
        return []
    return [r.describe() for r in thresholds.evaluate(table) if not r.passed]


def _reap_group(child: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Wait for Locust's worker processes (same process group) to finish their last
    flush after the master exited; kill what is left after ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(child.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    _kill_group(child)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def read_workers(run_dir: Path) -> list[dict[str, Any]]:
    """The master's account of its workers (``workers.json``; [] when none was written)."""
    data = _read_json(run_dir / WORKERS_FILE)
    workers = data.get("workers") if isinstance(data, dict) else None
    return workers if isinstance(workers, list) else []


def workers_check(workers: list[dict[str, Any]], expected: int) -> Any:
    """``workers``: every worker's records arrived; a lost one makes the run incomplete."""
    from loadtests.verdict import Check

    lost = [w for w in workers if not w.get("complete")]
    if lost:
        named = "; ".join(f"worker {w.get('worker') or w.get('client_id')}: {w.get('problem')}"
                          for w in lost)
        return Check("workers", False, f"incomplete run: {named}")
    if len(workers) < expected:
        return Check("workers", False, f"incomplete run: {len(workers)} of {expected} "
                     "workers sent records")
    received = sum(int(w.get("received_records", 0)) for w in workers)
    return Check("workers", True, f"{len(workers)} workers, all {received} records received")


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finish(run: RunFolder, scenario: Scenario, returncode: int | None,
            signal_received: int | None, aborted: list[str],
            options: LoadOptions) -> RunResult:
    import json

    from loadtests.summary import summarize
    from loadtests.verdict import default_checks, rate_figures, read_schedules

    run_dir = run.path
    if options.worker:
        # the master judges the load; a worker says only whether its own part ran
        crashed = returncode not in (0, None) and not signal_received
        outcome = "interrupted" if signal_received else ("error" if crashed else "passed")
        note = ("worker: records were sent to the master, which judges the run"
                + (" (a copy of every part is kept here)" if options.keep_parts else ""))
        if crashed:
            note = f"worker: Locust exited with code {returncode} (see locust.log); " + note
        run.finish(outcome, note=note)
        code = 130 if signal_received else (2 if crashed else 0)
        return RunResult(run_dir, outcome, [], {}, {}, [], code)
    merge_parts(run_dir)
    table = read_records(run_dir)
    locust_summary: dict[str, Any] = {}
    if (run_dir / SUMMARY_FILE).exists():
        locust_summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    results = scenario.threshold_set().evaluate(table)
    summary = summarize(table, scenario)
    rates = rate_figures(table, scenario, read_schedules(run_dir))
    checks = default_checks(table, scenario, rates, scenario.duration, options.max_requests)
    workers = read_workers(run_dir) if options.master else None
    if workers is not None:
        checks.append(workers_check(workers, options.expect_workers))
    pushed = _read_json(run_dir / PUSH_FILE)
    crashed = returncode not in (0, None) and not signal_received and not locust_summary
    if signal_received is not None:
        outcome, code = "interrupted", 130
    elif crashed:
        outcome, code = "error", 2
    elif workers is not None and not checks[-1].passed:
        outcome, code = "incomplete", 1
    elif aborted or not all(r.passed for r in results) or not all(c.passed for c in checks):
        outcome, code = "failed", 1
    else:
        outcome, code = "passed", 0
    result = RunResult(run_dir, outcome, results, summary, locust_summary, aborted, code,
                       checks, rates)
    run.finish(outcome, records=table.num_rows, summary=summary, rates=rates,
               locust=locust_summary, aborted_on=aborted, locust_exit_code=returncode,
               reason=result.reason,
               **({"workers": workers} if workers is not None else {}),
               **({"pushgateway": pushed} if pushed else {}),
               checks=[{"check": c.name, "passed": c.passed, "detail": c.detail}
                       for c in checks],
               thresholds=[{"scope": r.threshold.scope, "threshold": r.threshold.text,
                            "actual": r.actual, "passed": r.passed,
                            "resolved": r.describe()} for r in results])
    return result
