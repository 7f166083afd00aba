"""The load users' own transport (``bounded_http.Wire``/``send``) on the paths the hostile
matrix of test_hostile does not take: a ``POST`` (chat, body kept) beside a ``GET`` whose
body is not kept (models, ``validate_sample = 0``: the body cap counted in the parser while
the bytes are dropped).

Each run must classify the misbehaviour on both endpoints, leave exactly one record per
request that reached the target (nothing re-sent on a fresh connection the target closed,
nothing followed), and stay within the time and memory bounds of test_hostile.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import write_toml
from hostile_target import HostileTarget
from test_hostile import _check_run, canary_keys, run_measured  # noqa: F401 - a fixture

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
