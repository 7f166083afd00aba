"""The load users' own transport (``bounded_http.Wire``/``send``) on the paths the hostile
matrix of test_hostile does not take: a ``POST`` (chat, body kept) beside a ``GET`` whose
body is not kept (models, ``validate_sample = 0``: the body cap counted in the parser while
the bytes are dropped).

Each run must classify the misbehaviour on both endpoints, leave exactly one record per
request that reached the target (nothing re-sent on a fresh connection the target closed,
nothing followed), and stay within the time and memory bounds of test_hostile.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import line_worker, write_toml
from hostile_target import HostileTarget
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile import (  # noqa: F401 - canary_keys is a fixture
    KEY,
    REDACTOR,
    _check_run,
    answers,
    canary_keys,
    leaks_in,
    run_measured,
)

from secton_harness.error_classes import ERROR_CLASSES
from secton_harness.ratelimit_headers import MAX_COUNT

#: mode -> the error class both endpoints' records must hold
MODES = {"big_body": "too_large", "close": "reset", "trickle": "timeout",
         "reset_body": "reset"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_get_unkept_and_post_kept(mode: str, tmp_path: Path, canary_keys: Path) -> None:  # noqa: F811
    scenario = write_toml(tmp_path / "scenario.toml", {
        "duration": "2s", "timeout": "2s", "drain": "8s", "validate_sample": 0.0,
        "endpoints": {"models": {"rate": "3/s"}, "chat": {"rate": "2/s"}}})
    with HostileTarget(mode) as target:
        code, out, took, peak = run_measured(
            ["load", "--scenario", str(scenario), "--target", target.url, "--keys",
             str(canary_keys), "--out", "load", "--max-requests", "40"], tmp_path, 90)
        _check_run("load", code, out, took, peak, 60)
        sent = target.requests
    rows = pq.read_table(tmp_path / "load" / "records.parquet",
                         columns=["endpoint", "error"]).to_pylist()
    assert {(r["endpoint"], r["error"]) for r in rows} == {
        ("/v1/models", MODES[mode]), ("/v1/chat/completions", MODES[mode])}
    assert sent == len(rows), f"{sent} requests reached the target, {len(rows)} records"
    assert code == 1, "a run whose every answer was an error must not pass"


# ---------------------------------------------------------------- response-side fuzzing
@pytest.fixture(scope="module")
def scripted() -> Iterator[HostileTarget]:
    with HostileTarget("scripted") as target:
        yield target


@pytest.fixture(scope="module")
def worker() -> Iterator[subprocess.Popen[str]]:
    """The load transport in its own process (Locust's monkey-patching stays there)."""
    yield from line_worker("load_transport_worker.py")


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(answer=answers(), keep=st.booleans())
def test_any_answer_through_the_load_transport(scripted: HostileTarget,
                                               worker: subprocess.Popen[str], answer: bytes,
                                               keep: bool) -> None:
    """Whatever head and body a target sends (any status, headers echoing the key, lying
    or no framing), the load users' transport (``bounded_http.send``) returns without
    raising, puts exactly one request on the wire, keeps a body only when asked, and
    what a record takes from the answer (class, redacted detail, rate-limit figures) is
    known and free of the key."""
    assert worker.stdin is not None and worker.stdout is not None
    scripted.script = answer
    before = scripted.requests
    worker.stdin.write(json.dumps({"url": scripted.url, "key": KEY, "keep": keep}) + "\n")
    worker.stdin.flush()
    got = json.loads(worker.stdout.readline())
    assert not got["raised"], got
    assert scripted.requests - before == 1, "sent again, or not at all"
    assert got["error"] in ("", *ERROR_CLASSES), got
    assert not leaks_in(json.dumps(got).encode(), "load transport result"), got
    assert keep or not got["kept"]
    # fits the records' int64 (a negative count is kept: the probes flag it as broken)
    assert got["remaining"] is None or abs(got["remaining"]) <= MAX_COUNT


# ---------------------------------------------------------- dropped keep-alive connections
@pytest.mark.slow
def test_a_dropped_reused_connection_is_one_reset_never_a_resend(tmp_path: Path,
                                                                reference_server) -> None:
    """The reference server reads each request and then, for 30 % of them, resets the
    connection without a byte of answer, also on a keep-alive connection that answered
    before. geventhttpclient re-sent such a GET on a reused connection (the review's run:
    53 requests served, 40 records, 23 drops but 10 resets): here every request the
    server received is one record, and every drop one ``reset`` record."""
    from secton_harness.records import read_records

    stats = tmp_path / "stats.json"
    server = reference_server({
        "seed": 3, "limits": {"algorithm": "none"},
        "latency": {"base_ms": 2, "jitter_ms": 0, "per_token_ms": 0},
        "faults": {"drop_connection": 0.3},
        "keys": [{"alias": "a1", "key": "sk-demo-alpha-1", "org": "org_alpha"}]},
        stats_file=stats)
    scenario = write_toml(tmp_path / "scenario.toml", {
        "duration": "4s", "drain": "5s", "validate_sample": 0.0,
        "endpoints": {"models": {"rate": "10/s", "users": 2}}})
    keys = Path(__file__).parent.parent / "secton_cli" / "demo_inputs" / "demo-keys.toml"
    done = subprocess.run(
        [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
         "--target", server.url, "--keys", str(keys), "--out", str(tmp_path / "run"),
         "--max-requests", "100"], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    server.stop()  # the stats file is written at shutdown
    truth = json.loads(stats.read_text())
    drops = sum(row["count"] for row in truth["requests"] if row["status"] == 0)
    rows = read_records(tmp_path / "run", columns=["error", "reason", "status"]).to_pylist()
    resets = [r for r in rows if r["error"] == "reset"]
    assert drops > 0, "the fault never fired"
    assert len(rows) == truth["requests_total"], (len(rows), truth["requests_total"])
    assert len(resets) == drops, (len(resets), drops)
    assert all(r["status"] == 0 and "closed before answering" in r["reason"] for r in resets)
