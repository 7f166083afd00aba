"""Locust entry point for Secton load tests: ``locust -f loadtests/locustfile.py``.

``secton-harness load`` runs this file in a ``locust`` child process; Locust users can run
it directly, giving the scenario and keys as Locust custom arguments or environment
variables::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 \\
        --secton-scenario examples/capacity.toml --secton-keys secton_cli/demo_inputs/demo-keys.toml

The wiring is all Locust events: ``init`` builds the per-process :class:`LoadPlan`,
``spawning_complete`` starts the pacers (each process paces its share of every endpoint's
rate, in proportion to the users Locust gave it), ``report_to_master``/``worker_report``
carry metric deltas to the master, and ``test_stop``/``quitting``/``quit`` flush records.
:class:`ScenarioShape` spawns the scenario's users and stops the test once the schedule is
done and in-flight requests have drained (or ``drain`` has passed).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust.runners
from locust import LoadTestShape, events
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from loadtests.live_metrics import REPORT_KEY, LiveMetrics
from loadtests.orphaned import alive, finish_orphaned_run
from loadtests.process_plan import LoadPlan
from loadtests.record_shipping import (
    ACK_MESSAGE,
    DONE_MESSAGE,
    RECORDS_MESSAGE,
    Collector,
    Shipper,
)
from loadtests.run_files import (
    PROGRESS_FILE,
    PUSH_FILE,
    STOP_FILE,
    SUMMARY_FILE,
    schedule_file,
)
from loadtests.scenario import DEFAULT_MAX_REQUESTS
from loadtests.users import USER_CLASSES
from secton_harness.atomicfile import write_json_atomic
from secton_harness.endpoints import BY_NAME
from secton_harness.errors import HarnessError

# Locust runs the user classes it finds among a locust file's globals: one per endpoint
globals().update({cls.__name__: cls for cls in USER_CLASSES.values()})
__all__ = [*(cls.__name__ for cls in USER_CLASSES.values()), "ScenarioShape"]

STATE_KEY = "secton_state"
#: How long a worker waits for its own spawn greenlet before it starts pacing anyway.
SPAWN_WAIT_S = 30.0
#: How long a handler that needs the runner waits for Locust to set it.
RUNNER_WAIT_S = 30.0
PARENT_CHECK_S = 0.5
#: After its deadline, a process that has not exited within this is ended outright.
DEADLINE_EXIT_S = 15.0
log = logging.getLogger("secton.load")
#: The process the CLI started (``--processes`` workers are forked from it later).
_MAIN_PID = os.getpid()

#: Missed heartbeats before the master gives a worker up (Locust: 3, one a second). A
#: worker's hub can be busy for seconds while it starts on a loaded machine (imports,
#: spawning users, pyarrow's first use); when every worker is declared missing, Locust
#: stops the test ("the last worker went missing") and the run would end with few or no
#: requests. The default checks fail such a run; this makes it rarer.
locust.runners.HEARTBEAT_LIVENESS = 10


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("secton-harness")
    group.add_argument("--secton-scenario", default=os.environ.get("SECTON_SCENARIO", ""),
                       help="Scenario TOML (or env SECTON_SCENARIO)")
    group.add_argument("--secton-keys", default=os.environ.get("SECTON_KEYS", ""),
                       help="Keys TOML (or env SECTON_KEYS / SECTON_API_KEY)")
    group.add_argument("--secton-run-dir", default=os.environ.get("SECTON_RUN_DIR", ""),
                       help="Run folder for records (default: none, records not kept)")
    group.add_argument("--secton-max-requests", type=int, default=DEFAULT_MAX_REQUESTS,
                       help="Stop issuing requests after this many (all processes)")
    group.add_argument("--secton-metrics-port", type=int, default=0,
                       help="Serve Prometheus metrics on this port (master/standalone)")
    group.add_argument("--secton-metrics-host", default="127.0.0.1")
    group.add_argument("--secton-metrics-linger", type=float, default=0.0,
                       help="Keep serving metrics this many seconds after the run ends")
    group.add_argument("--secton-parent-pid", type=int, default=0,
                       help="Stop the run (records kept) when this process is gone")
    group.add_argument("--secton-deadline", type=float, default=0.0,
                       help="Hard bound in seconds from the start: stop the run, then exit")
    group.add_argument("--secton-max-duration", type=float, default=0.0,
                       help="Cut the scenario's drain so that the run ends by this")
    group.add_argument("--secton-ship-records", action="store_true", default=False,
                       help="Worker: send every record part to the master as well")
    group.add_argument("--secton-no-keep-parts", action="store_true", default=False,
                       help="Worker: delete a local part once the master has it")
    group.add_argument("--secton-collect-records", action="store_true", default=False,
                       help="Master: write the workers' shipped parts into the run folder")
    group.add_argument("--secton-push-gateway", default="",
                       help="Push the final metrics to this Prometheus Pushgateway URL")


class _State:
    """Per-process state the event handlers share."""

    plan: LoadPlan | None = None
    metrics: LiveMetrics | None = None
    started: float = 0.0
    hooked = False
    worker_states: dict[str, dict[str, Any]] = {}  # noqa: RUF012 - one process, one state
    finished = False
    collector: Collector | None = None
    workers_stopped = False
    #: Locust's exit code, set by the quit event: the shutdown in order is complete
    exit_code: int | None = None


def _worker_label(environment: Any) -> str:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return f"w{max(runner.worker_index, 0)}-{os.getpid()}"
    return f"local-{os.getpid()}"


def _configure_user_counts(plan: LoadPlan) -> None:
    loads = plan.scenario.endpoint_loads()
    for cls in USER_CLASSES.values():
        load = loads.get(cls.endpoint_name)
        cls.fixed_count = load.user_count() if load is not None else 0
        # the scenario timeout, not Locust's 60 s, bounds every connect and read
        cls.network_timeout = cls.connection_timeout = plan.scenario.timeout


def _grower(environment: Any, cls: type) -> Any:
    """Start ``n`` more users of ``cls`` in this process (the pool's ``grow``).

    Started straight into the runner's user group, as Locust's own spawning does, so they
    are counted, stopped and killed with the others; the shape's user count is not
    changed, so Locust never rebalances them away.
    """
    def grow(n: int) -> None:
        runner = environment.runner
        for _ in range(n):
            cls(environment).start(runner.user_greenlets)
    return grow


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    """Build this process's plan, then hook the runner (each once)."""
    _ensure_plan(environment)
    _when_runner(environment, _hook_runner)


def _ensure_plan(environment: Any) -> None:
    """The plan needs only the parsed options, so it can be built before the runner exists.

    A ``--processes`` worker connects to the master inside its runner's constructor, before
    ``environment.runner`` is set and before its ``init`` event: on a loaded machine it has
    handled the master's spawn and spawning_complete messages by then. Its test_start and
    spawning_complete came before its plan existed and it never paced (seen: runs with half
    the rate or 0 requests, exit 0). So every event handler builds the plan if need be,
    and what needs the runner waits for it (:func:`_when_runner`).
    """
    if _State.plan is not None:
        return
    _ENV[:] = [environment]
    try:
        plan = LoadPlan.from_options(environment.parsed_options, "pending")
    except HarnessError as error:
        log.error("secton-harness: %s", error)
        environment.process_exit_code = 2
        raise SystemExit(2) from None
    _State.plan = plan
    environment.secton_plan = plan
    _configure_user_counts(plan)


def _when_runner(environment: Any, action: Any) -> None:
    """``action(environment)`` now if the runner is set, else as soon as it is."""
    if environment.runner is not None:
        action(environment)
        return

    def later() -> None:
        deadline = time.monotonic() + RUNNER_WAIT_S
        while environment.runner is None and time.monotonic() < deadline:
            gevent.sleep(0.01)
        action(environment)

    gevent.spawn(later)


def _hook_runner(environment: Any) -> None:
    if _State.hooked:
        return
    _State.hooked = True
    runner = environment.runner
    if isinstance(runner, MasterRunner | LocalRunner):
        _State.metrics = LiveMetrics()
        port = environment.parsed_options.secton_metrics_port
        if port:
            _State.metrics.serve(environment.parsed_options.secton_metrics_host, port)
        gevent.spawn(_gauges_forever, environment)
    if isinstance(runner, LocalRunner):
        gevent.spawn(_apply_local_deltas_forever)
    if isinstance(runner, MasterRunner) and environment.parsed_options.secton_collect_records:
        collector = _State.collector = Collector(_State.plan.run_dir if _State.plan else None)
        runner.register_message(RECORDS_MESSAGE, collector.on_records)
        runner.register_message(DONE_MESSAGE, lambda environment, msg, **_: collector.on_done(
            environment, msg, _State.metrics.apply if _State.metrics else lambda _d: None))
    if not isinstance(runner, WorkerRunner):
        gevent.signal_handler(signal.SIGTERM, _on_sigterm, environment)
    options = environment.parsed_options
    if options.secton_parent_pid:
        gevent.spawn(_watch_parent, environment, options.secton_parent_pid)
    if options.secton_deadline > 0:
        gevent.spawn(_deadline, environment, options.secton_deadline)


def _watch_parent(environment: Any, pid: int) -> None:
    """The CLI that started this run is gone (SIGKILL, crash): stop, keep the records.

    Every process of the run watches the CLI itself (a ``--processes`` worker's parent is
    the Locust master, not the CLI), so none of them keeps loading an orphaned run.
    """
    while alive(pid):
        gevent.sleep(PARENT_CHECK_S)
    log.warning("secton-harness: the CLI (pid %d) is gone; stopping the run", pid)
    _stop_in_order(environment)


def _deadline(environment: Any, seconds: float) -> None:
    """This process's own hard bound: stop in order at the deadline, exit soon after."""
    gevent.sleep(seconds)
    log.warning("secton-harness: deadline of %.0fs reached; stopping the run", seconds)
    _stop_in_order(environment)
    gevent.sleep(DEADLINE_EXIT_S)
    os._exit(1)


def _stop_in_order(environment: Any) -> None:
    if _State.finished:
        return
    _State.finished = True
    runner = environment.runner
    if isinstance(runner, MasterRunner) and _State.collector is not None:
        # stop first: the workers flush and ship their final batches, the master waits
        # for them (test_stop), then everyone quits
        gevent.spawn(lambda: (runner.stop(), runner.quit()))
    else:
        gevent.spawn(runner.quit)


def _on_sigterm(environment: Any) -> None:
    """Stop the run in order (users stopped, records flushed, summary written).

    Locust 2.x installs its own SIGTERM handler only after a headless shape test has
    finished, so until then SIGTERM would kill the process outright and lose the last
    second of records; this handler closes that gap.
    """
    if _State.finished:
        return
    log.warning("secton-harness: SIGTERM, stopping the run (records are kept)")
    _stop_in_order(environment)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    _ensure_plan(environment)  # before the users start: they read it in on_start
    _when_runner(environment, _ensure_recorder)


def _ensure_recorder(environment: Any) -> None:
    """Label this process and open its record parts (idempotent).

    Called on test_start and again on spawning_complete: with ``--processes``, Locust
    occasionally skips a worker's test_start (its state is already "spawning" when the
    spawn message arrives), and a worker without a recorder would drop its records.
    """
    plan = _State.plan
    if plan is None or plan.recorder is not None or isinstance(environment.runner,
                                                                MasterRunner):
        return
    plan.worker = _worker_label(environment)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        workers = max(1, int(getattr(environment.parsed_options, "expect_workers", 1) or 1))
        total = sum(load.user_count() for load in plan.scenario.endpoint_loads().values())
        plan.key_offset = max(runner.worker_index, 0) * -(-total // workers)
    shipper = None
    if isinstance(runner, WorkerRunner) and _own_flag("--secton-ship-records"):
        shipper = Shipper(runner.send_message,
                          keep_parts=not _own_flag("--secton-no-keep-parts"))
        runner.register_message(ACK_MESSAGE, shipper.on_ack)
    plan.start_recorder(shipper)


def _own_flag(flag: str) -> bool:
    """A worker's own command-line flag. Locust copies the master's custom options over a
    worker's parsed options when the test starts, so worker-only flags are read here."""
    return flag in sys.argv


@events.spawning_complete.add_listener
def _on_spawned(user_count: int, **_: Any) -> None:
    """Start pacing once this process's users are all placed.

    A worker's spawning_complete comes from the master (Locust sends it once the master
    has dispatched every user and waited up to 1 s for the workers' reports), and it can
    arrive while the worker's own spawn greenlet is still starting users. A worker that
    counted its users then paced too small a share, or none at all (seen once on a loaded
    machine: a ``--processes 2`` run where one worker never sent), so a worker first
    waits for its spawn greenlet to finish.
    """
    if _ENV:
        _when_runner(plan_environment(), _spawned)


def _spawned(environment: Any) -> None:
    plan = _State.plan
    if plan is None or _State.started:
        return
    _State.started = time.time()
    plan.started_wall = _State.started
    runner = plan_environment().runner
    if isinstance(runner, MasterRunner):
        return
    if isinstance(runner, WorkerRunner):
        gevent.spawn(_start_pacing_after_spawn, plan_environment())
    else:
        _start_pacing(plan_environment())


def _start_pacing_after_spawn(environment: Any) -> None:
    spawning = getattr(environment.runner, "spawning_greenlet", None)
    if spawning is not None and not spawning.ready():
        spawning.join(timeout=SPAWN_WAIT_S)
    _start_pacing(environment)


def _start_pacing(environment: Any) -> None:
    """This process's pacers, for its share of the users (and so of the rate)."""
    plan = _State.plan
    assert plan is not None
    _ensure_recorder(environment)
    counts = environment.runner.user_classes_count
    plan.start_pacers({name: counts.get(cls.__name__, 0) for name, cls in USER_CLASSES.items()})
    for cls in USER_CLASSES.values():
        if cls.endpoint_name in plan.pacers:
            plan.pool(cls.endpoint_name).grow = _grower(environment, cls)


_ENV: list[Any] = []


@events.init.add_listener
def _keep_env(environment: Any, **_: Any) -> None:
    _ENV[:] = [environment]


def plan_environment() -> Any:
    return _ENV[0]


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any]) -> None:
    plan = _State.plan
    if plan is None or plan.recorder is None:
        return
    data[REPORT_KEY] = plan.recorder.deltas.drain()
    data[STATE_KEY] = {"inflight": plan.recorder.inflight, "done": plan.pacing_done,
                       "records": plan.recorder.count, "endpoints": _endpoint_state(plan)}


def _endpoint_state(plan: LoadPlan) -> dict[str, dict[str, int]]:
    """Per endpoint of this process: requests in flight, users, dropped so far."""
    return {name: {"busy": plan.pools[name].busy if name in plan.pools else 0,
                   "users": plan.pools[name].size if name in plan.pools else 0,
                   "dropped": pacer.dropped_total}
            for name, pacer in plan.pacers.items()}


@events.worker_report.add_listener
def _worker_report(client_id: str, data: dict[str, Any]) -> None:
    if _State.metrics is not None and REPORT_KEY in data:
        _State.metrics.apply(data[REPORT_KEY])
    if STATE_KEY in data:
        _State.worker_states[client_id] = data[STATE_KEY]


def _apply_local_deltas_forever() -> None:
    while True:
        gevent.sleep(1.0)
        _apply_local_deltas()


def _apply_local_deltas() -> None:
    plan = _State.plan
    if plan is not None and plan.recorder is not None and _State.metrics is not None:
        _State.metrics.apply(plan.recorder.deltas.drain())


def _gauges_forever(environment: Any) -> None:
    plan = _State.plan
    metrics = _State.metrics
    assert plan is not None and metrics is not None
    while True:
        metrics.users.set(environment.runner.user_count if environment.runner else 0)
        elapsed = time.time() - _State.started if _State.started else -1.0
        for name, load in plan.scenario.endpoint_loads().items():
            metrics.target_rate.labels(BY_NAME[name].path).set(
                load.rate * plan.scenario.multiplier(elapsed) if elapsed >= 0 else 0.0)
        states = _process_states(environment)
        for name in plan.scenario.endpoint_loads():
            path = BY_NAME[name].path
            metrics.inflight.labels(path).set(sum(
                s.get(name, {}).get("busy", 0) for s in states.values()))
            for source, s in states.items():
                metrics.set_dropped(source, path, s.get(name, {}).get("dropped", 0))
        if plan.run_dir is not None:
            with contextlib.suppress(OSError):
                _write_progress(plan, metrics, states, elapsed)
        gevent.sleep(1.0)


def _process_states(environment: Any) -> dict[str, dict[str, Any]]:
    """Per process that runs users: its per-endpoint state (see :func:`_endpoint_state`)."""
    if isinstance(environment.runner, MasterRunner):
        return {client: state.get("endpoints", {})
                for client, state in _State.worker_states.items()}
    plan = _State.plan
    return {"local": _endpoint_state(plan)} if plan is not None else {}


def _write_progress(plan: LoadPlan, metrics: LiveMetrics, states: dict[str, Any],
                    elapsed: float) -> None:
    """``progress.json``: the live figures the CLI prints (every second, atomically)."""
    endpoints = {}
    for name, load in plan.scenario.endpoint_loads().items():
        path = BY_NAME[name].path
        endpoints[name] = {
            "requests": metrics.requests[path], "errors": metrics.errors[path],
            "ratelimited": metrics.limited[path], "dropped": metrics.dropped_total(path),
            "inflight": sum(s.get(name, {}).get("busy", 0) for s in states.values()),
            "users": sum(s.get(name, {}).get("users", 0) for s in states.values()),
            "asked_rps": load.rate * plan.scenario.multiplier(elapsed) if elapsed >= 0 else 0.0,
            "p95_bound_s": metrics.p95_bound(path)}
    assert plan.run_dir is not None
    write_json_atomic(Path(plan.run_dir) / PROGRESS_FILE,
                      {"at": time.time(), "elapsed_s": elapsed, "endpoints": endpoints})


def _flush(**_: Any) -> None:
    """Write and count everything recorded so far: a worker's final report (sent right
    after test_stop) must carry every request's metrics. The users are stopped by now, so
    the schedule is closed (what was never sent counts as dropped) and written."""
    plan = _State.plan
    if plan is not None and plan.recorder is not None:
        plan.finish_pacers()
        plan.recorder.flush()
        plan.recorder.wait()
        _apply_local_deltas()
        if plan.run_dir is not None:
            with contextlib.suppress(OSError):
                write_json_atomic(Path(plan.run_dir) / schedule_file(plan.worker),
                                  plan.schedule())
        if plan.recorder.shipper is not None:
            _ship_final(plan)


def _ship_final(plan: LoadPlan) -> None:
    """A remote worker's last word: the queued parts, then ``secton_done`` with its
    counts, schedule and last metric deltas (sent on every test_stop/quitting; the master
    keeps the latest)."""
    recorder = plan.recorder
    assert recorder is not None and recorder.shipper is not None
    shipper = recorder.shipper
    shipper.finish()
    plan_environment().runner.send_message(DONE_MESSAGE, {
        "worker": plan.worker, "records": recorder.count, **shipper.report(),
        "deltas": recorder.deltas.drain(),
        "schedule": plan.schedule()})


def _await_workers(**_: Any) -> None:
    """Master: wait (bounded) for every live worker's final batches, then account."""
    collector = _State.collector
    if collector is None:
        return
    collector.wait(plan_environment().runner, set(_State.worker_states))
    with contextlib.suppress(OSError):
        collector.write(_State.worker_states)


events.test_stop.add_listener(_flush)
events.quitting.add_listener(_flush)
events.test_stop.add_listener(_await_workers)


@events.quit.add_listener
def _on_quit(exit_code: int, **_: Any) -> None:
    plan = _State.plan
    _State.exit_code = exit_code
    if plan is None:
        return
    if plan.recorder is not None:
        plan.recorder.close()
        _apply_local_deltas()
    environment = plan_environment()
    if plan.run_dir is not None and not isinstance(environment.runner, WorkerRunner):
        total = environment.runner.stats.total
        per_endpoint = {entry.name: {"requests": entry.num_requests,
                                     "failures": entry.num_failures}
                        for entry in environment.runner.stats.entries.values()}
        summary = {"requests": total.num_requests, "failures": total.num_failures,
                   "endpoints": per_endpoint, "exit_code": exit_code}
        write_json_atomic(Path(plan.run_dir) / SUMMARY_FILE, summary)
    if _State.metrics is not None and environment.parsed_options.secton_push_gateway:
        _push(plan, _State.metrics, environment.parsed_options.secton_push_gateway)
    linger = environment.parsed_options.secton_metrics_linger if _State.metrics else 0
    if linger > 0:
        gevent.sleep(linger)  # a last scrape sees the final counts


def _push(plan: LoadPlan, metrics: LiveMetrics, url: str) -> None:
    """The final counters and histograms to a Pushgateway, grouped by run, so a short
    run is never lost between two scrapes; the outcome goes to ``pushgateway.json``."""
    from loadtests.push import push_final

    result = push_final(url, metrics.registry, plan.run_dir)
    if plan.run_dir is not None:
        with contextlib.suppress(OSError):
            write_json_atomic(Path(plan.run_dir) / PUSH_FILE, result)


def _finish_if_orphaned() -> None:
    """At exit of the process the CLI started: if the CLI is gone, finish run.json.

    Registered at import, before Locust registers its own exit handlers, so it runs
    after them: a ``--processes`` master has waited for its workers' last flush by then.
    Forked workers skip it (another pid). See :mod:`loadtests.orphaned`.
    """
    plan = _State.plan
    parent = getattr(_ENV[0].parsed_options, "secton_parent_pid", 0) if _ENV else 0
    if os.getpid() != _MAIN_PID or plan is None or plan.run_dir is None or not parent:
        return
    try:
        if finish_orphaned_run(plan.run_dir, parent):
            log.warning("secton-harness: the CLI is gone; run.json finished as interrupted")
    except Exception as error:  # the last act of a dying process: one line, no traceback
        log.error("secton-harness: could not finish run.json: %s", error)


def _exit_now() -> None:
    """A single Locust process skips the interpreter's teardown once it shut down in order.

    Everything the run keeps is on disk by now (records closed and waited for, summary,
    schedule, Locust's own exit handlers run: they were registered after this one); what
    is left is freeing gevent, pyarrow and pandas object by object, 0.25-0.3 s that every
    stop waited for (the CLI merges and judges only once this process is gone). Only a
    ``LocalRunner``: a master or worker still has ZeroMQ messages to deliver in that
    teardown (final batches, stop and quit), and a master's workers may still be
    reporting (tests/test_distributed.py lost the workers' account without it).
    """
    if _State.exit_code is None or not _ENV or not isinstance(_ENV[0].runner, LocalRunner):
        return  # not a lone process's shutdown in order: exit normally
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(_State.exit_code)


def _at_exit() -> None:
    _finish_if_orphaned()
    _exit_now()


atexit.register(_at_exit)


class ScenarioShape(LoadTestShape):
    """All of the scenario's users at once; stop when the schedule is sent and drained."""

    def tick(self) -> tuple[int, float] | None:
        tick = self._tick()
        if tick is None and _State.collector is not None and not _State.workers_stopped:
            # Locust's headless shape quits without telling the workers to stop, so their
            # last flush (and final batch) would come after the master stopped listening.
            # Stop them first: they flush and ship; the master waits for it in test_stop.
            _State.workers_stopped = True
            plan_environment().runner.stop()
        return tick

    def _tick(self) -> tuple[int, float] | None:
        plan = _State.plan
        if plan is None:
            return None
        total = sum(load.user_count() for load in plan.scenario.endpoint_loads().values())
        if plan.run_dir is not None and (Path(plan.run_dir) / STOP_FILE).exists():
            return None  # the CLI asked for an early stop (abort_on_fail)
        if not _State.started:
            return total, max(total, 100)
        elapsed = time.time() - _State.started
        if elapsed < plan.scenario.duration:
            return total, max(total, 100)
        if elapsed >= plan.scenario.duration + plan.scenario.drain_s:
            return None
        return None if _drained() else (total, max(total, 100))


def _drained() -> bool:
    """Every process has sent its whole schedule and has nothing in flight."""
    plan = _State.plan
    runner = plan_environment().runner
    if isinstance(runner, MasterRunner):
        states = _State.worker_states
        return bool(states) and len(states) >= len(runner.clients) and all(
            s["done"] and s["inflight"] == 0 for s in states.values())
    recorder = plan.recorder if plan else None
    return bool(plan and plan.pacing_done and recorder is not None and recorder.inflight == 0)
