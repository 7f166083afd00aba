"""The final metrics of a load run, pushed to a Prometheus Pushgateway (``--push-gateway``).

Why: Prometheus scrapes every 15-30 s, so a 30-second CI run can end between two scrapes
and its counts never reach a dashboard. At the end of the run the master (or the single
process) pushes its whole registry (counters, the latency histogram, the gauges) with
prometheus-client's ``push_to_gateway``, grouped by ``job="secton_load"`` and
``run=<run folder name>``; each run is one group, so runs never overwrite each other.
The series keep every label they have on ``/metrics`` (``source="load"``, ``endpoint``,
``status``, ``org``, ``outcome``), which is what the dashboards select on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secton_harness.redact import Redactor

PUSH_JOB = "secton_load"
PUSH_TIMEOUT_S = 10.0


def grouping_key(run_dir: Path | None) -> dict[str, str]:
    return {"run": run_dir.name if run_dir is not None else "unnamed"}


def push_final(url: str, registry: Any, run_dir: Path | None) -> dict[str, Any]:
    """Push once; never raises (the run's verdict does not depend on the push)."""
    from prometheus_client import push_to_gateway

    key = grouping_key(run_dir)
    try:
        push_to_gateway(url, job=PUSH_JOB, registry=registry, grouping_key=key,
                        timeout=PUSH_TIMEOUT_S)
    except Exception as error:
        return {"url": url, "job": PUSH_JOB, "grouping_key": key, "pushed": False,
                # network text: one redacted, capped line (credentials, control characters)
                "error": Redactor.none().text(f"{type(error).__name__}: {error}", limit=300)}
    return {"url": url, "job": PUSH_JOB, "grouping_key": key, "pushed": True}
