"""Load at LLM latencies: the reference server answering in 1.5-2 s, the real CLI and Locust.

What is asserted: the asked rate is held (the user pool grows) or the run fails with one
line saying why; every request that reached the server has exactly one record, including
the requests still open when the run stops (``cancelled``) or past the scenario
``timeout``; CI outputs (progress lines off a terminal, ``--json``, ``--junit``); the
environment variables; one run per folder; the Locust child dies with the CLI. Counts
and verdicts only, never how fast the machine is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import ROOT, cli_row, write_toml

from benchmarks.truth import demo_keys
from loadtests.scenario import Scenario
from loadtests.verdict import default_checks, rate_figures
from secton_harness.error_classes import CANCELLED, HARNESS
from secton_harness.records import read_records, rows_to_table
from secton_harness.runfolder import read_run_info
from simulator.launcher import ReferenceServer

KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
PATHS = {"/v1/models": "models", "/v1/chat/completions": "chat"}
#: The slow target: every answer takes 1.5-2 s (uniform jitter), like an LLM API.
SLOW = {"base_ms": 1500, "per_token_ms": 0, "jitter_ms": 500, "jitter": "uniform"}


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceServer]:
    config = write_toml(tmp_path_factory.mktemp("slow") / "sim.toml", {
        "limits": {"algorithm": "none"}, "latency": SLOW, "admin": {"enabled": True},
        "keys": demo_keys()})
    with ReferenceServer(config) as running:
        yield running


def _admin(server: ReferenceServer, path: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(server.url + path, method=method)
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read() or b"{}")


def server_counts(server: ReferenceServer) -> Counter[str]:
    """Requests the server received, by endpoint name, once nothing is in flight there.

    The server counts a request when its (injected) latency is over, also when the client
    has gone, so wait until the count has been still for longer than the latest answer.
    """
    last, still_since = None, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snapshot = _admin(server, "/_admin/stats")["requests"]
        counts: Counter[str] = Counter()
        for row in snapshot:
            counts[row["endpoint"]] += row["count"]
        if counts != last:
            last, still_since = counts, time.monotonic()
        elif time.monotonic() - still_since > 2.5:
            return counts
        time.sleep(0.25)
    raise AssertionError("the server's counts never settled")


def record_counts(out: Path) -> Counter[str]:
    return Counter(PATHS[e] for e in read_records(out)["endpoint"].to_pylist())


def load(scenario: Path, out: Path, *extra: str, target: str | None = None,
         env: dict[str, str] | None = None, timeout: float = 90
         ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
           "--out", str(out), *extra]
    if target is not None:
        cmd += ["--target", target, "--keys", str(KEYS)]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SECTON_")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


@pytest.mark.slow
def test_pool_grows_to_hold_the_rate_every_request_on_record(slow: ReferenceServer,
                                                            tmp_path: Path) -> None:
    """Default users (6 for 10/s) cannot hold 10 req/s at 1.5-2 s; the pool grows, the run
    passes, records equal the server's counts; CI outputs carry the verdict."""
    _admin(slow, "/_admin/reset", "POST")
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "5s", "endpoints": {"chat": {"rate": "10/s"}, "models": {"rate": "4/s"}},
        "thresholds": {"all": ["error_rate == 0"]}})
    out, junit = tmp_path / "run", tmp_path / "junit.xml"
    done = load(scenario, out, "--json", "-", "--junit", str(junit), target=slow.url)
    assert done.returncode == 0, done.stderr[-3000:]
    verdict = json.loads(done.stdout)
    assert verdict["outcome"] == "passed" and verdict["exit_code"] == 0
    chat = verdict["rates"]["chat"]
    assert chat["sent"] == chat["scheduled"] == 50 and chat["dropped"] == 0
    assert chat["pool"]["peak_users"] > 6  # grew past the starting pool
    assert record_counts(out) == server_counts(slow) == Counter(chat=50, models=20)
    cases = ET.parse(junit).getroot().iter("testcase")
    names = {case.get("name"): case.find("failure") is None for case in cases}
    assert names == {"requests": True, "harness_errors": True, "successes": True,
                     "rate:chat": True, "rate:models": True, "all: error_rate == 0": True}
    progress = [line for line in done.stderr.splitlines() if line.startswith("load ")]
    assert progress and "chat " in progress[-1] and "dropped" in progress[-1]
    info = read_run_info(out)
    assert info["rates"]["chat"]["phases"]["steady"]["sent"] == 50


@pytest.mark.slow
def test_capped_pool_fails_loudly_and_the_backlog_is_on_record(slow: ReferenceServer,
                                                             tmp_path: Path) -> None:
    """max_users 4 at 10 req/s and 1.5-2 s: exit 1 with one line saying why; the slots
    that could not start are dropped (counted); the requests still open when the drain
    ends are recorded as cancelled; records equal the server's counts."""
    _admin(slow, "/_admin/reset", "POST")
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "4s", "drain": "0.5s",
        "endpoints": {"chat": {"rate": "10/s", "users": 2, "max_users": 4}}})
    out, junit = tmp_path / "run", tmp_path / "junit.xml"
    done = load(scenario, out, "--junit", str(junit), target=slow.url)
    assert done.returncode == 1, done.stderr[-3000:]
    why = [line for line in done.stderr.splitlines() if line.startswith("failed: ")]
    assert len(why) == 1 and "chat: sent " in why[0] and "of the asked 10 req/s" in why[0]
    assert "all 4 users busy" in why[0] and "raise max_users" in why[0]
    table = read_records(out)
    errors = Counter(table["error"].to_pylist())
    assert errors[CANCELLED] >= 1
    assert record_counts(out) == server_counts(slow)
    info = read_run_info(out)
    rates = info["rates"]["chat"]
    assert rates["dropped"] > 0 and rates["sent"] + rates["dropped"] == rates["scheduled"]
    assert rates["sent"] == table.num_rows
    failures = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")
                if case.find("failure") is not None]
    assert failures == ["rate:chat"]


@pytest.mark.slow
def test_scenario_timeout_bounds_every_request(slow: ReferenceServer, tmp_path: Path) -> None:
    """timeout = 0.5s against 1.5-2 s answers: every request is a timeout record (not
    Locust's 60 s), each one reached the server, and the error threshold fails."""
    _admin(slow, "/_admin/reset", "POST")
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "2s", "timeout": "0.5s",
        "endpoints": {"models": {"rate": "5/s"}},
        "thresholds": {"all": ["error_rate < 0.5"]}})
    out = tmp_path / "run"
    started = time.monotonic()
    done = load(scenario, out, target=slow.url)
    assert done.returncode == 1, done.stderr[-3000:]
    assert time.monotonic() - started < 60  # far below Locust's own 60 s timeout
    table = read_records(out)
    assert set(table["error"].to_pylist()) == {"timeout"}
    assert record_counts(out) == server_counts(slow) == Counter(models=10)


@pytest.mark.slow
def test_env_target_and_key_and_one_run_per_folder(slow: ReferenceServer,
                                                   tmp_path: Path) -> None:
    """SECTON_BASE_URL + SECTON_API_KEY (+ SECTON_ORG) name the target and key; the base
    URL may end in /v1 as for probe and ratelimit (it loaded /v1/v1/models: all 404s); a
    second run into the same --out is refused, and with --overwrite holds only its own
    records."""
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "2s", "endpoints": {"models": {"rate": "3/s"}}})
    env = {"SECTON_BASE_URL": slow.url + "/v1/", "SECTON_API_KEY": "sk-demo-alpha-1",
           "SECTON_ORG": "org_alpha"}
    out = tmp_path / "run"
    first = load(scenario, out, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert set(read_records(out)["status"].to_pylist()) == {200}
    again = load(scenario, out, env=env)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    replaced = load(scenario, out, "--overwrite", env=env)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert read_records(out).num_rows == 6 == read_run_info(out)["records"]


@pytest.mark.slow
def test_sigint_keeps_in_flight_requests_on_record(slow: ReferenceServer,
                                                    tmp_path: Path) -> None:
    _admin(slow, "/_admin/reset", "POST")
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "60s", "endpoints": {"chat": {"rate": "8/s"}}})
    out = tmp_path / "run"
    base = {k: v for k, v in os.environ.items() if not k.startswith("SECTON_")}
    child = subprocess.Popen(
        [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
         "--target", slow.url, "--keys", str(KEYS), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**base, "COLUMNS": "200"})
    deadline = time.monotonic() + 40
    while not list(out.glob("records.parts/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # requests in flight now: each takes 1.5-2 s
    child.send_signal(signal.SIGINT)
    cli, err = child.communicate(timeout=60)
    assert child.returncode == 130, err[-2000:]
    assert read_run_info(out)["outcome"] == "interrupted"
    # requests in flight at the signal are recorded (as answered or as cancelled, which
    # one depends on timing): what counts is that none is missing, including those of
    # users the pool grew beyond Locust's spawn count (once lost: 26 records, 27 sent).
    # A request cancelled while its bytes were still on the way may never be counted by
    # the server, so: every answered record was a request, every request has a record.
    errors = read_records(out)["error"].to_pylist()
    sent = server_counts(slow)["chat"]
    assert len(errors) - errors.count("cancelled") <= sent <= len(errors), (sent, errors)
    assert "cancelled" in errors
    rates = read_run_info(out)["rates"]["chat"]
    assert rates["dropped"] <= 16  # the rest of the 60 s schedule was never due: not dropped
    _cancelled_apart(out, errors, cli + err, tmp_path)


def _cancelled_apart(out: Path, errors: list[str], cli: str, tmp_path: Path) -> None:
    """The requests the signal cut are counted apart, neither errors nor latencies, with
    one figure in run.json, the CLI table and the report (every answer was a 200 here, so
    an interrupted run has no errors at all: it once "failed" error_rate on the cut)."""
    from reports.build import build_report

    figures = read_run_info(out)["summary"]["all"]
    cut = errors.count(CANCELLED)
    failed = sum(1 for e in errors if e and e != CANCELLED)
    assert (figures["cancelled"], figures["errors"]) == (cut, failed), (figures, errors)
    assert figures["error_rate"] == failed / len(errors)
    assert figures["ok"] + figures["errors"] + figures["ratelimited"] + cut == len(errors)
    latency = read_records(out)["latency_s"].to_pylist()
    answered = sorted(v for v, e in zip(latency, errors, strict=True) if e != CANCELLED)
    assert figures["p50_latency_s"] >= answered[0] >= 1.4  # no cut request's partial wait
    cells = cli_row(cli, "all")
    assert (cells[8], cells[9], cells[11]) == (str(failed), f"{failed / len(errors) * 100:.2f}",
                                               str(cut)), cli
    report = build_report([out], out=tmp_path / "report")
    capacity = json.loads(report.summary_path.read_text())["capacity"]
    assert (capacity["cancelled"], capacity["errors"]) == (cut, failed)
    assert capacity["error_rate"] == figures["error_rate"]
    assert capacity["latency"]["p50"] == pytest.approx(figures["p50_latency_s"], rel=1e-12)
    markdown = report.markdown.read_text()
    assert f"| {figures['error_rate'] * 100:.2f} % |" in markdown
    assert f"{cut} cancelled by the stop" in markdown


@pytest.mark.slow
def test_locust_child_dies_with_the_cli(slow: ReferenceServer, tmp_path: Path) -> None:
    """SIGKILL of the CLI: the Locust child stops by itself (parent-death signal and its
    own watch), keeping what it recorded, and closes the run folder: run.json says
    ``interrupted`` and why (it said ``running`` forever), with every request the server
    got on record, and ``report`` reads the run as stopped early."""
    _admin(slow, "/_admin/reset", "POST")
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "120s", "endpoints": {"models": {"rate": "5/s"}}})
    out = tmp_path / "run"
    cli = subprocess.Popen(
        [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
         "--target", slow.url, "--keys", str(KEYS), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 40
    while not list(out.glob("records.parts/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # requests in flight now: each takes 1.5-2 s
    children = _children(cli.pid)
    assert children, "no Locust child found"
    cli.kill()
    cli.wait()
    deadline = time.monotonic() + 40
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)]
    info = read_run_info(out)
    assert info["outcome"] == "interrupted", info
    assert info["stopped_by"] == "cli_gone"
    assert "was killed" in info["reason"] and "not judged" in info["reason"]
    assert "thresholds" not in info and "checks" not in info  # nothing it could judge
    errors = read_records(out)["error"].to_pylist()
    assert info["records"] == len(errors) > 0
    # every request the server got is on record (those cut off may never reach its count)
    sent = server_counts(slow)["models"]
    assert len(errors) - errors.count("cancelled") <= sent <= len(errors), (sent, errors)
    report = subprocess.run(
        [sys.executable, "-m", "secton_harness", "report", str(out), "--out",
         str(tmp_path / "report")], capture_output=True, text=True, timeout=120)
    assert report.returncode == 1, report.stderr[-2000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "STOPPED EARLY" in text and "was killed" in text


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ------------------------------------------------------------------ the default checks


def _scenario(**extra: Any) -> Scenario:
    return Scenario.model_validate({"duration": "10s", "endpoints": {
        "chat": {"rate": "2/s"}}, **extra})


def _table(errors: list[str]) -> pa.Table:
    return rows_to_table([{"ts": 1.0 + i, "endpoint": "/v1/chat/completions",
                           "phase": "steady", "status": 0 if e else 200, "latency_s": 0.1,
                           "error": e} for i, e in enumerate(errors)])


def test_a_run_without_requests_fails() -> None:
    scenario = _scenario()
    table = _table([])
    checks = default_checks(table, scenario, rate_figures(table, scenario, {}), 10.0)
    assert [c.name for c in checks if not c.passed] == ["requests", "rate:chat"]


def test_mostly_harness_errors_fail_and_the_rate_check_can_be_removed() -> None:
    scenario = _scenario(min_rate_ratio=0)
    table = _table([HARNESS] * 11 + [""] * 9)
    checks = default_checks(table, scenario, rate_figures(table, scenario, {}), 10.0)
    assert [(c.name, c.passed) for c in checks] == [
        ("requests", True), ("harness_errors", False), ("successes", True)]
    assert "11 of 20 records are harness errors" in checks[1].detail


def test_a_run_where_nothing_succeeded_fails_and_says_why() -> None:
    """Every answer a 404 (a wrong base URL) or a 401 (keys the target does not know): the
    run sent what was asked, but measured nothing; with no threshold it used to pass."""
    scenario = _scenario()
    for status, hint in ((404, "is --target the API's base URL?"),
                         (401, "does the target know these keys?")):
        table = rows_to_table([{"ts": 1.0 + i, "endpoint": "/v1/chat/completions",
                                "phase": "steady", "status": status, "latency_s": 0.01,
                                "error": "http"} for i in range(20)])
        checks = {c.name: c for c in default_checks(table, scenario,
                                                     rate_figures(table, scenario, {}), 10.0)}
        assert not checks["successes"].passed
        assert checks["successes"].detail == (
            f"none of 20 requests got an ok answer (20 x {status} http); {hint}")
    ok_once = _table(["http"] * 19 + [""])
    checks = {c.name: c for c in default_checks(ok_once, scenario,
                                                 rate_figures(ok_once, scenario, {}), 10.0)}
    assert checks["successes"].passed and checks["successes"].detail == "1 of 20 requests ok"


def test_rate_check_uses_the_schedule() -> None:
    scenario = _scenario()
    table = _table([""] * 18)
    schedule = {"chat": {"asked": {"steady": 20}, "dropped": {"steady": 2}, "share": 1.0,
                         "pool": {"max_users": 3, "peak_users": 3, "grown": 1,
                                  "saturated_s": 5.0}}}
    rates = rate_figures(table, scenario, schedule)
    assert rates["chat"]["ratio"] == pytest.approx(0.9)
    assert rates["chat"]["held_rps"] == pytest.approx(1.8)
    [_, _, _, rate] = default_checks(table, scenario, rates, 10.0)
    assert not rate.passed
    assert rate.detail.startswith(
        "chat: sent 90 % of the asked 2 req/s (18 of 20 scheduled, 2 dropped)")
    assert "all 3 users busy 50% of the run" in rate.detail


def test_a_share_of_the_rate_that_never_ran_is_a_shortfall() -> None:
    """Two processes, one never started pacing (its schedule file is empty): its half of
    the rate counts as asked and not sent, so the rate check fails."""
    scenario = _scenario()
    table = _table([""] * 10)
    schedule = {"chat": {"asked": {"steady": 10}, "dropped": {}, "share": 0.5,
                         "pool": {"max_users": 2, "peak_users": 2, "grown": 0,
                                  "saturated_s": 0.0}}}
    rates = rate_figures(table, scenario, schedule)
    assert rates["chat"]["scheduled"] == 20 and rates["chat"]["ratio"] == pytest.approx(0.5)
    assert not default_checks(table, scenario, rates, 10.0)[-1].passed


def test_a_dropped_spike_fails_even_when_the_run_as_a_whole_reaches_the_bar() -> None:
    """A spike phase that sent 20 of 40 scheduled while the phases around it sent all
    theirs: overall 400 of 420 (95.2 %) would pass; the spike phase fails the rate check
    and names itself. A phase's bar is rounded down to whole requests."""
    scenario = Scenario.model_validate({
        "duration": "100s", "shape": "spike", "endpoints": {"chat": {"rate": "4/s"}},
        "spike": {"at": "40s", "length": "5s", "factor": 3}})
    assert list(scenario.phase_windows()) == ["before", "spike", "after"]
    sent = {"before": 160, "spike": 20, "after": 220}

    def rows(counts: dict[str, int]) -> pa.Table:
        return rows_to_table([{"ts": 1.0 + i, "endpoint": "/v1/chat/completions",
                               "phase": phase, "status": 200, "latency_s": 0.1, "error": ""}
                              for phase, n in counts.items() for i in range(n)])

    schedule = {"chat": {"asked": {"before": 160, "spike": 40, "after": 220},
                         "dropped": {"spike": 20}, "share": 1.0,
                         "pool": {"max_users": 3, "peak_users": 3, "grown": 0,
                                  "saturated_s": 0.0}}}
    table = rows(sent)
    rates = rate_figures(table, scenario, schedule)
    assert rates["chat"]["ratio"] == pytest.approx(400 / 420)
    rate = default_checks(table, scenario, rates, 100.0)[-1]
    assert rate.name == "rate:chat" and not rate.passed
    assert ("phase spike: sent 50 % of the asked 12 req/s (20 of 40 scheduled, 20 dropped)"
            in rate.detail)
    assert "phase before" not in rate.detail and "phase after" not in rate.detail
    # the spike's bar is floor(0.95 x 40) = 38 requests
    for spike_sent, passes in ((38, True), (37, False)):
        table = rows({**sent, "spike": spike_sent})
        schedule["chat"]["dropped"] = {"spike": 40 - spike_sent}
        check = default_checks(table, scenario, rate_figures(table, scenario, schedule),
                               100.0)[-1]
        assert check.passed is passes, (spike_sent, check.detail)


def test_requests_our_own_code_failed_to_send_are_not_load() -> None:
    """9 of 20 records are harness errors (under the 50 % harness check): the rate check
    counts the 11 that reached the target, not 20 of 20 (review finding)."""
    scenario = _scenario()
    table = _table([HARNESS] * 9 + [""] * 11)
    schedule = {"chat": {"asked": {"steady": 20}, "dropped": {}, "share": 1.0,
                         "pool": {"max_users": 3, "peak_users": 3, "grown": 0,
                                  "saturated_s": 0.0}}}
    rates = rate_figures(table, scenario, schedule)
    assert rates["chat"]["sent"] == 11 and rates["chat"]["ratio"] == pytest.approx(0.55)
    checks = default_checks(table, scenario, rates, 10.0)
    assert [(c.name, c.passed) for c in checks] == [
        ("requests", True), ("harness_errors", True), ("successes", True),
        ("rate:chat", False)]
