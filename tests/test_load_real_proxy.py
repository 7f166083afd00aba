"""``load`` through a server the project did not write: nginx ``limit_req`` in front of
the reference server. The load users send on their own transport (``bounded_http.Wire``,
not Locust's session), so its keep-alive, head and body handling is checked against
nginx's, and nginx's own 429s (its body, its headers) must be recorded as rate limited:
every request has one record, the 2xx records equal what reached the backend, the rest
are nginx's 429s, and the run's verdict says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import real_limiters
from conftest import write_toml

from secton_harness.records import read_records
from secton_harness.runfolder import read_run_info

pytestmark = pytest.mark.slow
KEY = {"alias": "a1", "key": "sk-proxy-alpha-1", "org": "org_alpha"}


@pytest.fixture
def stops():
    started: list[real_limiters.Stopper] = []
    yield started
    for stop in reversed(started):
        stop()


def test_load_through_nginx_every_request_on_record(reference_server: Any, stops,
                                                    tmp_path: Path) -> None:
    backend = reference_server({"limits": {"algorithm": "none"}, "admin": {"enabled": True},
                                "latency": {"base_ms": 5, "per_token_ms": 0, "jitter_ms": 0},
                                "keys": [KEY]})
    # 10/s with a burst of 5 per key, asked 20/s for 3 s: about half refused by nginx
    url = real_limiters.nginx(tmp_path / "nginx", backend.url, 10.0, 5, stops)
    keys = write_toml(tmp_path / "keys.toml", {"keys": [KEY]})
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "3s", "validate_sample": 1.0,
        "endpoints": {"models": {"rate": "20/s"}}})
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
         "--target", url, "--keys", str(keys), "--out", str(out)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    table = read_records(out)
    statuses = Counter(table["status"].to_pylist())
    assert set(statuses) == {200, 429}, statuses
    with urllib.request.urlopen(backend.url + "/_admin/stats", timeout=5) as answer:
        reached = sum(row["count"] for row in json.loads(answer.read())["requests"])
    assert statuses[200] == reached  # every request that passed nginx, and only those
    # nginx's 429 page is HTML: rate limited, not a contract error, never an error
    limited = [e for s, e in zip(table["status"].to_pylist(), table["error"].to_pylist(),
                                 strict=True) if s == 429]
    assert set(limited) <= {"", None}, Counter(limited)
    info = read_run_info(out)
    rates = info["rates"]["models"]
    assert rates["sent"] == table.num_rows == rates["scheduled"]
    assert info["summary"]["all"]["ratelimited"] == statuses[429]
