"""Ground truth: what the server actually received and did, for tests and the mapper.

Counts every request by key alias (``-`` when not authenticated), org, endpoint and
status (0 = connection dropped), plus the exact latency injected into each response and
the faults injected. Only aliases appear, never key material. Served as JSON by
``GET /_admin/stats`` and written at shutdown with ``--stats-file``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from secton_harness.atomicfile import write_json_atomic


class GroundTruth:
    """Counters and injected latencies since start or the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero everything."""
        self.started = time.time()
        self.requests: Counter[tuple[str, str, str, int]] = Counter()
        self.injected_latency_s: dict[str, list[float]] = {}
        self.faults: Counter[tuple[str, str]] = Counter()

    def record(self, alias: str, org: str, endpoint: str, status: int,
               injected_s: float | None, fault: str | None) -> None:
        """One finished request."""
        self.requests[(alias, org, endpoint, status)] += 1
        if injected_s is not None:
            self.injected_latency_s.setdefault(endpoint, []).append(injected_s)
        if fault is not None:
            self.faults[(endpoint, fault)] += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view (lists of rows, so it is easy to load into pandas)."""
        rows = [{"key_alias": a, "org": o, "endpoint": e, "status": s, "count": c}
                for (a, o, e, s), c in sorted(self.requests.items())]
        return {
            "started_at": self.started,
            "requests_total": sum(self.requests.values()),
            "requests": rows,
            "injected_latency_s": {e: list(v) for e, v in self.injected_latency_s.items()},
            "faults": [{"endpoint": e, "fault": f, "count": c}
                       for (e, f), c in sorted(self.faults.items())],
        }

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the snapshot atomically (temp file, then ``os.replace``)."""
        write_json_atomic(Path(path), self.snapshot(), indent=1)
