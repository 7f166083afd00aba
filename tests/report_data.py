"""Synthetic run folders for the report tests, written through the real RecordSink/RunFolder.

Holds no tests (named test_report_* only so it sits with the files the reports job owns);
imported by the other tests/test_report*.py modules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from secton_harness.records import RecordSink
from secton_harness.runfolder import RunFolder

T0 = 1_700_000_000.0


def load_rows(seed: int = 1, slow: float = 1.0, stage_rates=(10, 20, 40, 80),
              stage_s: float = 4.0) -> list[dict[str, Any]]:
    """A step ramp; the last stage gets slower (x5) and 20 % 429s."""
    rng = np.random.default_rng(seed)
    rows, t = [], T0
    last = len(stage_rates) - 1
    for index, rate in enumerate(stage_rates):
        n = int(rate * stage_s)
        due = t + np.arange(n) / rate
        latency = (0.01 + rng.exponential(0.005, n)) * slow * (5 if index == last else 1)
        status = np.where((index == last) & (rng.random(n) < 0.2), 429, 200)
        status[::97] = 500
        endpoints = np.where(rng.random(n) < 0.7, "/v1/chat/completions", "/v1/models")
        for i in range(n):
            chat = endpoints[i] == "/v1/chat/completions"
            rows.append({
                "ts": float(due[i]) + 0.001, "intended_ts": float(due[i]),
                "phase": f"stage-{index + 1}", "endpoint": str(endpoints[i]),
                "method": "POST" if chat else "GET", "key_alias": f"k{i % 3}", "org": "o1",
                "status": int(status[i]), "latency_s": float(latency[i]),
                "error": "" if status[i] < 400 else "http",
                "prompt_tokens": 12 if chat and status[i] == 200 else None,
                "completion_tokens": 30 if chat and status[i] == 200 else None})
        t += stage_s
    return rows


def probe_rows() -> list[dict[str, Any]]:
    """Two checks on two targets every 0.5 s; 'chat@a' fails at 40..44 and 100..102."""
    rows = []
    for k in range(300):
        for check in ("models", "chat"):
            for target in ("a", "b"):
                failed = check == "chat" and target == "a" and (40 <= k < 45 or 100 <= k < 103)
                rows.append({"ts": T0 + k * 0.5, "check": check, "target": target,
                             "endpoint": f"/v1/{check}", "status": 503 if failed else 200,
                             "success": not failed, "reason": "status" if failed else "",
                             "latency_s": 0.01 + 0.001 * (k % 7)})
    return rows


def ratelimit_rows() -> list[dict[str, Any]]:
    rows = []
    for k in range(120):
        for key in ("a1", "a2"):
            limited = 20 <= k % 60 < 30
            rows.append({"ts": T0 + k * 0.1, "key_alias": key, "org": "org_alpha",
                         "endpoint": "/v1/models", "status": 429 if limited else 200,
                         "retry_after_s": 1.0 if limited else None, "latency_s": 0.005})
    return rows


RATELIMIT_RESULT = {
    "scopes": {"key": {"burst": 20, "sustained_per_min": 600, "cooldown_s": 1.0,
                       "full_recovery_s": 4.0, "algorithm": "fixed_window",
                       "confidence": "high",
                       "retry_after": {"present": True, "mean_error_s": 0.1},
                       "checks": {"burst": {"expected": 20, "tolerance": 2,
                                            "passed": True},
                                  "algorithm": {"expected": "token_bucket",
                                                "passed": False}}}},
    "requests_sent": 240, "elapsed_s": 12.0}


def make_run(path: Path, *, load: list | None = None, probe: list | None = None,
             ratelimit: list | None = None, ratelimit_result: dict | None = None,
             thresholds: list | None = None, merge: bool = True,
             scenario: dict | None = None, command: str = "test", outcome: str = "passed",
             **finish: Any) -> Path:
    """A finished run folder holding the given records; ``scenario`` goes where ``load``
    writes it (run.json ``config.scenario``), ``finish`` into run.json as the command's
    own results (e.g. ``checks``)."""
    config: dict[str, Any] = {"key": "sk-secret"}
    if scenario is not None:
        config["scenario"] = scenario
    run = RunFolder.start(path, command=command, config=config, target="http://127.0.0.1:9")
    for source, rows in (("load", load), ("probe", probe), ("ratelimit", ratelimit)):
        if rows:
            sink = RecordSink(path, source=source, part_prefix=source, batch_size=10_000)
            sink.extend(rows)
            sink.close(merge=merge)
    if ratelimit_result is not None:
        (path / "ratelimit.json").write_text(json.dumps(ratelimit_result))
    run.finish(outcome, **({"thresholds": thresholds} if thresholds else {}), **finish)
    return path
