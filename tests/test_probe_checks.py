"""Probes against the real reference server, clean and with each fault at rate 1.0.

Each case states exactly which checks fail and why; every other check must pass. The
scheduler runs in-process (asyncio), the server in its own process.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from probes.config import CHECK_NAMES, HarnessConfig
from probes.runner import CheckResult
from probes.scheduler import ONCE_STAGGER_S, ProbeScheduler
from probes.service import probe_targets
from secton_harness.contract import default_contract
from secton_harness.records import read_records
from simulator.config import DEFAULT_CONFIG

DEMO_KEYS = Path(__file__).resolve().parent.parent / "secton_cli" / "demo_inputs" / "demo-keys.toml"


def server_config(**faults: Any) -> dict[str, Any]:
    config = tomllib.loads(DEFAULT_CONFIG.read_text())
    config["faults"] = faults
    return config


def harness(targets: list[dict[str, Any]], **probes: Any) -> HarnessConfig:
    return HarnessConfig.model_validate({"targets": targets, "probes": probes})


def run_once(config: HarnessConfig, keys: Path = DEMO_KEYS) -> dict[str, CheckResult]:
    scheduler = ProbeScheduler(config, probe_targets(config, keys), default_contract(), [])
    return {r.check: r for r in asyncio.run(scheduler.run_once())}


def verdicts(results: dict[str, CheckResult]) -> dict[str, str]:
    """check -> '' (pass) or its failure reason."""
    return {name: r.reason if not r.success else "" for name, r in results.items()}


def test_every_check_passes_against_the_reference_server(default_server: Any) -> None:
    results = run_once(harness([{"label": "ref", "url": default_server.url}]))
    # the checks of a target start ONCE_STAGGER_S apart (started together, each one's
    # duration held the others' processing: 20-60 ms where one alone takes 5-12 ms); a
    # lower bound, which a loaded machine can only make larger
    starts = [r.ts for r in results.values()]
    assert all(later - earlier >= ONCE_STAGGER_S - 0.002
               for earlier, later in itertools.pairwise(starts)), starts
    assert list(results) == list(CHECK_NAMES)
    assert verdicts(results) == dict.fromkeys(CHECK_NAMES, ""), {
        n: r.detail for n, r in results.items()}
    assert not any(r.skipped for r in results.values())
    assert results["org_isolation"].status == 200
    assert results["auth_invalid"].status == 401
    assert all(r.target == "ref" for r in results.values())


FAULT_CASES = {
    "schema_break": ({"schema_break": 1.0}, {"models_list": "schema",
                                              "chat_completion": "schema"}),
    "error_500": ({"error_500": 1.0}, {"auth_valid": "status", "models_list": "status",
                                        "chat_completion": "status",
                                        "org_isolation": "status",
                                        "ratelimit_headers": "status"}),
    "wrong_content_type": ({"wrong_content_type": 1.0}, {
        "auth_valid": "content_type", "models_list": "content_type",
        "chat_completion": "content_type", "org_isolation": "content_type"}),
    "auth_open": ({"auth_open": True}, {"auth_invalid": "status",
                                         "org_isolation": "invariant"}),
    "slow": ({"slow": 1.0, "slow_s": 0.6}, {
        "auth_valid": "latency", "models_list": "latency", "chat_completion": "latency",
        "org_isolation": "latency", "ratelimit_headers": "latency"}),
    "slow_past_timeout": ({"slow": 1.0, "slow_s": 1.5}, {
        "auth_valid": "timeout", "models_list": "timeout", "chat_completion": "timeout",
        "org_isolation": "timeout", "ratelimit_headers": "timeout"}),
    # the quick start: "All responses are in JSON": auth_valid's 200 must parse too
    "malformed_json": ({"malformed_json": 1.0}, {"auth_valid": "schema",
                                                  "models_list": "schema",
                                                  "chat_completion": "schema",
                                                  "org_isolation": "schema"}),
    "drop_connection": ({"drop_connection": 1.0}, {
        "auth_valid": "reset", "models_list": "reset", "chat_completion": "reset",
        "org_isolation": "reset", "ratelimit_headers": "reset"}),
}


@pytest.mark.parametrize("case", list(FAULT_CASES))
def test_each_fault_fails_exactly_the_right_checks(case: str, reference_server: Any) -> None:
    faults, expected = FAULT_CASES[case]
    server = reference_server(server_config(**faults))
    timeout = "0.8s" if case == "slow_past_timeout" else "5s"
    results = run_once(harness([{"label": "ref", "url": server.url}], degraded="0.2s",
                               failed="0.4s", timeout=timeout))
    want = dict.fromkeys(CHECK_NAMES, "") | expected
    assert verdicts(results) == want, {n: r.detail for n, r in results.items()}
    for name in expected:  # the failure explains itself with the resolved value
        assert results[name].detail, name


def test_failure_detail_shows_resolved_values(reference_server: Any) -> None:
    server = reference_server(server_config(error_500=1.0, auth_open=True))
    results = run_once(harness([{"label": "ref", "url": server.url}]))
    assert results["auth_valid"].detail == "expected [STATUS] == 200, got 500"
    assert results["auth_invalid"].detail.startswith("expected [STATUS] == 401, got ")
    assert results["auth_invalid"].status in (200, 500)


def test_degraded_is_a_success_with_a_flag(reference_server: Any) -> None:
    server = reference_server(server_config(slow=1.0, slow_s=1.0))
    results = run_once(harness([{"label": "ref", "url": server.url}], degraded="0.5s",
                               failed="3s"))
    assert results["models_list"].success and results["models_list"].degraded
    assert results["models_list"].result == "degraded"
    assert results["auth_missing"].result == "success"  # 401s are not slowed


def test_org_isolation_is_skipped_with_keys_of_one_org(default_server: Any,
                                                      tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nalias = "a1"\nkey = "sk-demo-alpha-1"\norg = "org_alpha"\n')
    results = run_once(harness([{"label": "ref", "url": default_server.url}]), keys)
    assert results["org_isolation"].skipped
    assert "2 orgs" in results["org_isolation"].detail
    assert all(r.success for r in results.values())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_slow_and_dead_targets_never_stall_the_other_checks(reference_server: Any) -> None:
    """Continuous mode: one slow target (1 s answers), one dead one; the 401 checks, which
    are not slowed, keep their 0.25 s schedule while the slowed check is still waiting on
    its answers; each check never overlaps itself; the dead target fails with connect.

    Event-driven, not a fixed 3 s: it runs until the slowed check has finished three
    times (about 3 s on a quiet machine, bounded at 60 s), so a loaded machine only makes
    it longer. If the checks of a target were serialised behind the slow one, the 401
    checks could not run more than about once per slow answer; they must run at least
    twice as often."""
    server = reference_server(server_config(slow=1.0, slow_s=1.0))
    dead = f"http://127.0.0.1:{_closed_port()}"
    config = harness([{"label": "slow", "url": server.url}, {"label": "dead", "url": dead}],
                     interval="0.25s", jitter=0.1, timeout="3s", degraded="0.5s",
                     failed="2s")
    results: list[CheckResult] = []
    scheduler = ProbeScheduler(config, probe_targets(config, DEMO_KEYS), default_contract(),
                               [results.append])

    def slow_runs() -> int:
        return sum(1 for r in results if (r.target, r.check) == ("slow", "models_list"))

    async def run_until_three_slow_answers() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop))
        deadline = time.monotonic() + 60
        while slow_runs() < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(run_until_three_slow_answers())
    runs: dict[tuple[str, str], list[CheckResult]] = defaultdict(list)
    for r in results:
        runs[(r.target, r.check)].append(r)
    slowed = len(runs[("slow", "models_list")])
    assert slowed >= 3, slowed
    for check in ("auth_missing", "auth_invalid", "auth_malformed"):
        assert len(runs[("slow", check)]) >= 2 * slowed, (check, len(runs[("slow", check)]))
        assert len(runs[("dead", check)]) >= 2 * slowed, (check, len(runs[("dead", check)]))
    assert all(r.reason == "connect" for key, rs in runs.items() if key[0] == "dead"
               for r in rs)
    assert all(r.success and r.degraded for r in runs[("slow", "models_list")])
    for rs in runs.values():  # never overlaps itself
        ordered = sorted(rs, key=lambda r: r.ts)
        for before, after in itertools.pairwise(ordered):
            assert after.ts >= before.ts + before.duration_s - 0.01


def test_records_of_a_once_run(default_server: Any, tmp_path: Path) -> None:
    from probes.service import ProbeRun

    run = ProbeRun.prepare(None, default_server.url, "ref", DEMO_KEYS, tmp_path / "run")
    assert asyncio.run(run.once()) == 0
    table = read_records(tmp_path / "run").to_pylist()
    assert sorted(r["check"] for r in table) == sorted(CHECK_NAMES)
    row = next(r for r in table if r["check"] == "chat_completion")
    assert row["source"] == "probe" and row["target"] == "ref" and row["success"]
    assert row["key_alias"] == "a1" and row["org"] == "org_alpha" and row["status"] == 200
    assert row["endpoint"] == "/v1/chat/completions" and row["total_tokens"] > 0
    raw = b"".join(p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert b"sk-demo" not in raw
