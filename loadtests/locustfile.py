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

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, events
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from loadtests.live_metrics import REPORT_KEY, LiveMetrics
from loadtests.process_plan import LoadPlan
from loadtests.scenario import DEFAULT_MAX_REQUESTS
from loadtests.users import ChatUser, ModelsUser
from secton_harness.endpoints import BY_NAME
from secton_harness.errors import HarnessError

__all__ = ["ChatUser", "ModelsUser", "ScenarioShape"]

STATE_KEY = "secton_state"
SUMMARY_FILE = "locust-summary.json"
STOP_FILE = "stop-requested"
log = logging.getLogger("secton.load")


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


class _State:
    """Per-process state the event handlers share."""

    plan: LoadPlan | None = None
    metrics: LiveMetrics | None = None
    started: float = 0.0
    worker_states: dict[str, dict[str, Any]] = {}  # noqa: RUF012 - one process, one state
    finished = False


def _worker_label(environment: Any) -> str:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return f"w{max(runner.worker_index, 0)}-{os.getpid()}"
    return f"local-{os.getpid()}"


def _configure_user_counts(plan: LoadPlan) -> None:
    loads = plan.scenario.endpoint_loads()
    for cls in (ModelsUser, ChatUser):
        load = loads.get(cls.endpoint_name)
        cls.fixed_count = load.user_count() if load is not None else 0


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    try:
        plan = LoadPlan.from_options(environment.parsed_options, "pending")
    except HarnessError as error:
        log.error("secton-harness: %s", error)
        environment.process_exit_code = 2
        raise SystemExit(2) from None
    _State.plan = plan
    environment.secton_plan = plan
    _configure_user_counts(plan)
    runner = environment.runner
    if isinstance(runner, MasterRunner | LocalRunner):
        _State.metrics = LiveMetrics()
        port = environment.parsed_options.secton_metrics_port
        if port:
            _State.metrics.serve(environment.parsed_options.secton_metrics_host, port)
        gevent.spawn(_gauges_forever, environment)
    if isinstance(runner, LocalRunner):
        gevent.spawn(_apply_local_deltas_forever)
    if not isinstance(runner, WorkerRunner):
        gevent.signal_handler(signal.SIGTERM, _on_sigterm, environment)


def _on_sigterm(environment: Any) -> None:
    """Stop the run in order (users stopped, records flushed, summary written).

    Locust 2.x installs its own SIGTERM handler only after a headless shape test has
    finished, so until then SIGTERM would kill the process outright and lose the last
    second of records; this handler closes that gap.
    """
    if _State.finished:
        return
    _State.finished = True
    log.warning("secton-harness: SIGTERM, stopping the run (records are kept)")
    gevent.spawn(environment.runner.quit)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    _ensure_recorder(environment)


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
    plan.start_recorder()


@events.spawning_complete.add_listener
def _on_spawned(user_count: int, **_: Any) -> None:
    plan = _State.plan
    if plan is None or _State.started:
        return
    _State.started = time.time()
    plan.started_wall = _State.started
    runner = plan_environment().runner
    if isinstance(runner, MasterRunner):
        return
    _ensure_recorder(plan_environment())
    counts = runner.user_classes_count
    plan.start_pacers({"models": counts.get("ModelsUser", 0), "chat": counts.get("ChatUser", 0)})


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
                       "records": plan.recorder.count}


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
        gevent.sleep(1.0)


def _flush(**_: Any) -> None:
    """Write and count everything recorded so far: a worker's final report (sent right
    after test_stop) must carry every request's metrics."""
    plan = _State.plan
    if plan is not None and plan.recorder is not None:
        plan.recorder.flush()
        plan.recorder.wait()
        _apply_local_deltas()


events.test_stop.add_listener(_flush)
events.quitting.add_listener(_flush)


@events.quit.add_listener
def _on_quit(exit_code: int, **_: Any) -> None:
    plan = _State.plan
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
        (plan.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    linger = environment.parsed_options.secton_metrics_linger if _State.metrics else 0
    if linger > 0:
        gevent.sleep(linger)  # a last scrape sees the final counts


class ScenarioShape(LoadTestShape):
    """All of the scenario's users at once; stop when the schedule is sent and drained."""

    def tick(self) -> tuple[int, float] | None:
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
        if elapsed >= plan.scenario.duration + plan.scenario.drain:
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
