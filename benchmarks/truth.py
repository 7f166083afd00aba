"""Measurement truth: compare what a load run recorded with what the server really saw.

The reference server's ground truth (``GET /_admin/stats`` with ``[admin] enabled``, or
the ``--stats-file`` it writes at shutdown) counts every request by key alias, org,
endpoint and status and keeps every latency it injected. These helpers put a run's
records beside it: counts must match exactly, latency percentiles of the records must
sit within ``5 % + 1 ms`` of the injected ones, and the gap between them is the
client-side overhead. Also: burstiness (coefficient of variation of per-10 ms arrival
counts) for judging arrival processes. Used by ``tests/test_truth_*.py`` and
``benchmarks/bench_truth.py``; pure numpy/pyarrow, no Locust.
"""

from __future__ import annotations

import json
import math
import tomllib
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from secton_harness.endpoints import ENDPOINTS

DEMO_KEYS_FILE = (Path(__file__).resolve().parent.parent / "secton_cli" / "demo_inputs"
                  / "demo-keys.toml")


def demo_keys() -> list[dict[str, Any]]:
    """The demo keys (secton_cli/demo_inputs/demo-keys.toml) as reference-server
    ``[[keys]]`` entries."""
    keys: list[dict[str, Any]] = tomllib.loads(DEMO_KEYS_FILE.read_text())["keys"]
    return keys


#: The ground-truth server of the tests and the benchmark: seeded latency large enough for
#: a 5 % + 1 ms comparison; b2 may send 3 per second (it gets ~1/5 of 30/s, so about half
#: of its requests are 429), everything else is far below its limits.
TRUTH_SERVER: dict[str, Any] = {
    "seed": 7,
    "limits": {"algorithm": "fixed_window", "key": {"limit": 1000, "window_s": "1s"},
               "org": {"limit": 1000, "window_s": "1s"}},
    "latency": {"base_ms": 40, "per_token_ms": 0, "jitter_ms": 20, "jitter": "exponential"},
    "admin": {"enabled": True},
    "keys": [dict(k, limit=3, window_s="1s") if k["alias"] == "b2" else k
             for k in demo_keys()],
}

#: endpoint path in the records -> endpoint name in the server's ground truth
SERVER_ENDPOINT = {endpoint.path: endpoint.name for endpoint in ENDPOINTS}
PERCENTILES = (50.0, 95.0, 99.0)
REL_TOLERANCE = 0.05
ABS_TOLERANCE_S = 0.001
BIN_S = 0.01

CountKey = tuple[str, str, str, int]  # (key_alias, org, endpoint name, status)


def fetch_stats(base_url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The server's ground truth snapshot (``GET /_admin/stats``, loopback only)."""
    with urllib.request.urlopen(f"{base_url.rstrip('/')}/_admin/stats",
                                timeout=timeout_s) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def server_counts(snapshot: dict[str, Any]) -> Counter[CountKey]:
    """``(alias, org, endpoint, status) -> count`` from a ground-truth snapshot."""
    return Counter({(r["key_alias"], r["org"], r["endpoint"], int(r["status"])): r["count"]
                    for r in snapshot["requests"] if r["endpoint"] in SERVER_ENDPOINT.values()})


def record_counts(table: pa.Table) -> Counter[CountKey]:
    """The same counts from a run's records (status 0 = no response)."""
    columns = table.select(["key_alias", "org", "endpoint", "status"]).to_pydict()
    return Counter((alias, org, SERVER_ENDPOINT.get(endpoint, endpoint), int(status or 0))
                   for alias, org, endpoint, status in zip(
                       columns["key_alias"], columns["org"], columns["endpoint"],
                       columns["status"], strict=True))


def by_status(counts: Counter[CountKey]) -> Counter[int]:
    out: Counter[int] = Counter()
    for (_, _, _, status), count in counts.items():
        out[status] += count
    return out


def by_alias(counts: Counter[CountKey]) -> Counter[str]:
    out: Counter[str] = Counter()
    for (alias, _, _, _), count in counts.items():
        out[alias] += count
    return out


def ok_latencies(table: pa.Table, endpoint_path: str) -> np.ndarray:
    """Recorded latency (s) of the 2xx responses of one endpoint: the requests the server
    injected a latency into (it injects none into a 429)."""
    frame = table.select(["endpoint", "status", "latency_s"]).to_pydict()
    return np.array([lat for ep, status, lat in zip(frame["endpoint"], frame["status"],
                                                    frame["latency_s"], strict=True)
                     if ep == endpoint_path and status and 200 <= status < 300], dtype=float)


def compare_latency(recorded: np.ndarray, injected: np.ndarray,
                    percentiles: tuple[float, ...] = PERCENTILES) -> dict[str, Any]:
    """Percentiles of recorded vs injected latency with the ``5 % + 1 ms`` verdict.

    Both are sets over the same requests, so the difference at each quantile is the
    client-side overhead there (distribution level: the server's list is in completion
    order and carries no request id). ``overhead_median_s`` is the median of the
    quantile-by-quantile differences at 1..99 %.
    """
    rows = []
    for q in percentiles:
        rec = float(np.percentile(recorded, q))
        inj = float(np.percentile(injected, q))
        allowed = REL_TOLERANCE * inj + ABS_TOLERANCE_S
        rows.append({"percentile": q, "recorded_s": rec, "injected_s": inj,
                     "error_s": rec - inj, "error_rel": (rec - inj) / inj if inj else None,
                     "allowed_s": allowed, "within": abs(rec - inj) <= allowed})
    grid = np.arange(1, 100)
    shift = np.percentile(recorded, grid) - np.percentile(injected, grid)
    return {"n_recorded": int(recorded.size), "n_injected": int(injected.size),
            "percentiles": rows, "overhead_median_s": float(np.median(shift)),
            "overhead_min_s": float(shift.min()), "overhead_max_s": float(shift.max()),
            "within": all(row["within"] for row in rows)}


def burstiness(times: np.ndarray, bin_s: float = BIN_S, trim_s: float = 0.5) -> float:
    """Coefficient of variation of arrival counts per ``bin_s`` bin (``trim_s`` cut at
    both ends, so ramp-up and drain do not count; bins aligned half a bin off the first
    arrival). Even spacing -> ~0, Poisson -> ~
    1/sqrt(rate x bin_s), bursts -> more."""
    values = np.sort(np.asarray(times, dtype=float))
    # bins start half a bin off the first arrival: evenly spaced arrivals at exactly one
    # per bin would otherwise sit on the bin edges and float ties would fake bursts
    start, end = values[0] + trim_s + bin_s / 2, values[-1] - trim_s
    inside = values[(values >= start) & (values < end)]
    bins = max(1, int((end - start) / bin_s))
    counts, _ = np.histogram(inside, bins=bins, range=(start, start + bins * bin_s))
    mean = counts.mean()
    return float(counts.std() / mean) if mean else math.nan


def poisson_cv(rate: float, bin_s: float = BIN_S) -> float:
    """The burstiness of a Poisson process of ``rate`` per second (``1/sqrt(rate*bin)``)."""
    return 1.0 / math.sqrt(rate * bin_s)


def gap_cv(times: np.ndarray) -> float:
    """Coefficient of variation of the gaps between sorted times (even ~0, Poisson ~1)."""
    gaps = np.diff(np.sort(np.asarray(times, dtype=float)))
    return float(gaps.std() / gaps.mean())
