"""A count no record column can hold, sent by the target, through every command end to end.

``X-RateLimit-Remaining: 99999999999999999999`` (or the same in ``RateLimit``) once
overflowed the Parquet write: the batch was lost, ``probe`` and ``ratelimit`` died with a
traceback and 0 records, ``load`` recorded nothing and exited 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_toml
from odd_header_server import serving

from secton_harness.ratelimit_headers import parse_ratelimit
from secton_harness.records import read_records

HUGE = "99999999999999999999"
HEADERS = [{"X-RateLimit-Remaining": HUGE}, {"RateLimit": f"limit=10, remaining={HUGE}"}]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secton_harness", *args], capture_output=True,
                          text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("headers", HEADERS)
def test_probe_once_records_every_check(headers: dict[str, str], demo_keys_file: Path,
                                        tmp_path: Path) -> None:
    with serving(headers) as url:
        done = cli("probe", "--once", "--target", url, "--keys", str(demo_keys_file),
                   "--out", str(tmp_path / "run"))
    assert done.returncode == 1, done.stdout + done.stderr  # the checks fail, honestly
    assert "Traceback" not in done.stderr, done.stderr
    rows = read_records(tmp_path / "run").to_pylist()
    assert {r["check"] for r in rows} >= {"auth_valid", "models_list", "ratelimit_headers"}
    assert all(r["ratelimit_remaining"] is None for r in rows)
    headers_check = next(r for r in rows if r["check"] == "ratelimit_headers")
    assert not headers_check["success"] and "out of range" in headers_check["detail"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["outcome"] == "failed"


@pytest.mark.slow
@pytest.mark.parametrize("headers", HEADERS)
def test_load_records_every_request(headers: dict[str, str], demo_keys_file: Path,
                                    tmp_path: Path) -> None:
    """Every request recorded, its rate-limit figures read by the core's one parser (the
    figures the mapper and the probe read: 10 from ``RateLimit``, the huge count dropped)."""
    expected = parse_ratelimit(headers)
    assert expected.remaining is None and "out of range" in expected.problems[0]
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "2s", "endpoints": {"models": {"rate": "5/s", "users": 1}}})
    with serving(headers) as url:
        done = cli("load", "--scenario", str(scenario), "--target", url, "--keys",
                   str(demo_keys_file), "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    rows = read_records(tmp_path / "run").to_pylist()
    summary = json.loads((tmp_path / "run" / "locust-summary.json").read_text())
    assert len(rows) == summary["requests"] >= 5
    assert all(r["ratelimit_remaining"] is None and r["status"] == 200 for r in rows)
    assert all(r["ratelimit_limit"] == expected.limit for r in rows)


@pytest.mark.slow
def test_ratelimit_records_every_request(demo_keys_file: Path, tmp_path: Path) -> None:
    with serving(HEADERS[1]) as url:
        done = cli("ratelimit", "--target", url, "--keys", str(demo_keys_file), "--out",
                   str(tmp_path / "run"), "--max-requests", "40", "--max-duration", "20s")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    rows = read_records(tmp_path / "run").to_pylist()
    assert len(rows) == 40
    assert all(r["ratelimit_remaining"] is None and r["ratelimit_limit"] == 10 for r in rows)
    assert json.loads((tmp_path / "run" / "ratelimit.json").read_text())
