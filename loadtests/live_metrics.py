"""Prometheus metrics of a load run, correct with any number of Locust workers.

Design: *aggregate at the master*. Every process that runs users counts what its records
say in a :class:`MetricDeltas` (counters by label set plus the raw latencies since the last
report). A worker drains its deltas into Locust's own periodic worker report
(``report_to_master``, every 3 s, and a final one when it quits); the master applies them
(``worker_report``) to one :class:`~secton_harness.metrics.RequestMetrics` on its own
registry, served on ``--metrics-port``. A standalone run applies its own deltas once a
second. So Prometheus scrapes one endpoint whatever the worker count, and every request is
counted exactly once; the cost is up to one report interval of delay for worker counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry

from secton_harness.metrics import TARGET_RATE, USERS, RequestMetrics, gauge

SOURCE = "load"
REPORT_KEY = "secton_metrics"


class MetricDeltas:
    """What happened since the last drain, in a form that travels in a worker report."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.ratelimited: Counter[tuple[str, str]] = Counter()
        self.tokens: Counter[tuple[str, str]] = Counter()
        self.latencies: dict[str, list[float]] = {}

    def observe(self, row: dict[str, Any]) -> None:
        endpoint, org, status = row["endpoint"], row.get("org") or "", row.get("status", 0)
        self.requests[(endpoint, str(status), org)] += 1
        if status == 429:
            self.ratelimited[(endpoint, org)] += 1
        self.latencies.setdefault(endpoint, []).append(row["latency_s"])
        for kind in ("prompt", "completion"):
            count = row.get(f"{kind}_tokens")
            if count:
                self.tokens[(kind, org)] += count

    def drain(self) -> dict[str, Any]:
        """The deltas as msgpack-friendly lists; resets this object."""
        data = {
            "requests": [[*labels, n] for labels, n in self.requests.items()],
            "ratelimited": [[*labels, n] for labels, n in self.ratelimited.items()],
            "tokens": [[*labels, n] for labels, n in self.tokens.items()],
            "latencies": self.latencies,
        }
        self.__init__()  # type: ignore[misc]
        return data


class LiveMetrics:
    """The master's (or a standalone process's) registry with the load's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = RequestMetrics.create(self.registry)
        self.users = gauge(USERS, [], self.registry)
        self.target_rate = gauge(TARGET_RATE, ["endpoint"], self.registry)

    def apply(self, data: dict[str, Any]) -> None:
        m = self.metrics
        for endpoint, status, org, n in data.get("requests", []):
            m.requests.labels(SOURCE, endpoint, status, org).inc(n)
        for endpoint, org, n in data.get("ratelimited", []):
            m.ratelimited.labels(SOURCE, endpoint, org).inc(n)
        for kind, org, n in data.get("tokens", []):
            m.tokens.labels(SOURCE, kind, org).inc(n)
        for endpoint, values in data.get("latencies", {}).items():
            histogram = m.duration.labels(SOURCE, endpoint)
            for value in values:
                histogram.observe(value)

    def serve(self, host: str, port: int) -> Any:
        """Serve /metrics from a gevent WSGI server (a greenlet, not a thread)."""
        from gevent.pywsgi import WSGIServer
        from prometheus_client import make_wsgi_app

        server = WSGIServer((host, port), make_wsgi_app(self.registry), log=None)
        server.start()
        return server
