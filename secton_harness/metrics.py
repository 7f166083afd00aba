"""Prometheus metric names, help texts and buckets: the one place they are spelled.

Dashboards, alert rules and their tests refer to these constants (or to the names they
hold); a test fails if a dashboard or rule names a metric that is not listed here and
exported by the code. Base units only (seconds, bytes), ``_total`` on counters, and never
key material in labels: keys appear as nothing at all, orgs by their id, targets by label.

Collectors are always created on an explicit :class:`prometheus_client.CollectorRegistry`
passed in by the caller, never on the global default registry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from secton_harness.error_classes import (
    CONNECT,
    CONTENT_TYPE,
    PROTOCOL,
    RESET,
    TIMEOUT,
    TOO_LARGE,
)

#: Latency buckets: geometric, 8 per doubling (ratio 2^(1/8) ~ 1.09; rounded to 3 digits,
#: at most 1.098) from 1 ms to 312 s, 147 bounds. Why so many: histogram_quantile
#: interpolates inside one bucket, so its error is at most one bucket's width, here under
#: 10 % of the true figure for anything between 1 ms (a fast /v1/models on loopback) and
#: 5 minutes (a slow LLM completion); below 1 ms the error is under 1 ms, above 312 s the
#: estimate is capped at 312 s. The old 1-2.5-5 layout (25 ms, 50 ms...) put a 30 ms p95
#: at 44 ms. The cost is series count: 148 per source x endpoint (or probe check x target).
LATENCY_BUCKETS = tuple(float(f"{0.001 * 2 ** (i / 8):.3g}") for i in range(147))

# probes
PROBE_SUCCESS = "secton_probe_success"
PROBE_DURATION = "secton_probe_duration_seconds"
PROBE_CHECKS = "secton_probe_checks_total"
PROBE_FAILURES = "secton_probe_failures_total"
PROBE_LAST_SUCCESS = "secton_probe_last_success_timestamp_seconds"
PROBE_DEGRADED = "secton_probe_degraded"
PROBE_HTTP_STATUS = "secton_probe_http_status_code"
# load and every request source
REQUESTS = "secton_requests_total"
REQUEST_DURATION = "secton_request_duration_seconds"
RATELIMITED = "secton_ratelimited_total"
TOKENS = "secton_tokens_total"
USERS = "secton_load_users"
TARGET_RATE = "secton_load_target_rate"
DROPPED = "secton_load_dropped_total"
INFLIGHT = "secton_load_inflight"
# rate-limit mapping
RATELIMIT_OBSERVED = "secton_ratelimit_observed"
RATELIMIT_VERIFIED = "secton_ratelimit_verified"
# build
BUILD_INFO = "secton_harness_build"

# The names as Prometheus exposes them (counters gain _total, histograms their series).
HELP: dict[str, str] = {
    PROBE_SUCCESS: "1 if the last run of the check met every expectation, else 0.",
    PROBE_DURATION: "Duration of probe checks in seconds.",
    PROBE_CHECKS: "Probe check runs by result (success, warning, degraded, failure).",
    PROBE_FAILURES: "Failed probe check runs by reason.",
    PROBE_LAST_SUCCESS: "Unix time of the last successful run of the check.",
    PROBE_DEGRADED: "1 if the last run of the check was slower than its degraded threshold.",
    PROBE_HTTP_STATUS: "HTTP status of the deciding answer of the check's last run (0: none).",
    REQUESTS: "Requests sent to the target by source, endpoint, status, org and outcome "
              "(ok, error, ratelimited, cancelled: docs/measurement.md).",
    REQUEST_DURATION: "Request latency in seconds by source and endpoint.",
    RATELIMITED: "Requests answered 429 Too Many Requests.",
    TOKENS: "Tokens reported in chat completion usage, by kind (prompt, completion).",
    USERS: "Simulated users currently running.",
    TARGET_RATE: "Configured target request rate in requests per second, by endpoint.",
    DROPPED: "Scheduled requests not sent: due while every user was busy at max_users "
             "(or the generator was behind) for longer than late_tolerance, by endpoint.",
    INFLIGHT: "Load requests in flight right now, by endpoint.",
    RATELIMIT_OBSERVED: "Rate-limit figures observed by the mapper, by scope and quantity.",
    RATELIMIT_VERIFIED: "1 if the mapper found the figure within the documented policy, else 0.",
    BUILD_INFO: "Version of secton-harness.",
}

#: The transport error classes a probe reports as its failure reason, in the order its
#: conditions test them: the record's ``error`` and the ``reason`` label say the same word,
#: so ``reason="connect"`` means the connection could not be opened and nothing else.
TRANSPORT_REASONS = (TIMEOUT, CONNECT, RESET, TOO_LARGE, PROTOCOL)
#: Failure reasons a check's conditions may give (bounded label values); six are the
#: error classes (``secton_harness.error_classes``) of the answer that failed the check.
CHECK_REASONS = ("status", "schema", "invariant", *TRANSPORT_REASONS, "latency", CONTENT_TYPE,
                 "ratelimited")
#: The reason of a run that raised inside the harness (a bug, a record write that failed):
#: the check is reported failing, never left showing its last good values.
HARNESS_ERROR = "harness_error"
#: Every failure reason of a probe check (the ``reason`` label's values).
PROBE_REASONS = (*CHECK_REASONS, HARNESS_ERROR)


def bucket_counts(values: Any, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> list[int]:
    """Per-bucket (not cumulative) counts of ``values``; the last one counts ``+Inf``.

    A value equal to a bound falls in that bound's bucket, as Prometheus's ``le`` says.
    """
    index = np.searchsorted(np.asarray(buckets, dtype=float),
                            np.asarray(values, dtype=float), side="left")
    return np.bincount(index, minlength=len(buckets) + 1).tolist()


class BulkHistogram(Collector):
    """A labelled histogram that takes bucket counts in bulk, exposed like a Histogram.

    prometheus-client's :class:`~prometheus_client.Histogram` observes one value at a
    time (about 1.5 µs each under gevent), which at 10k requests/s is a few percent of a
    load generator's core. Load processes bucket a whole batch of latencies at once
    (:func:`bucket_counts`, numpy) and the master adds the counts here; Prometheus sees
    the same ``_bucket``/``_sum``/``_count`` series a Histogram would give. This is
    prometheus-client's documented custom-collector route, not a patch of its internals.
    """

    def __init__(self, name: str, documentation: str, labelnames: list[str],
                 buckets: tuple[float, ...], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._les = [floatToGoString(b) for b in buckets] + ["+Inf"]
        self._series: dict[tuple[str, ...], tuple[np.ndarray, float]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def add(self, labels: tuple[str, ...], counts: list[int], total: float) -> None:
        """Add per-bucket counts (as :func:`bucket_counts` makes them) and their sum."""
        if len(labels) != len(self.labelnames) or len(counts) != len(self._les):
            raise ValueError(f"{self.name}: expected {len(self.labelnames)} labels and "
                             f"{len(self._les)} bucket counts")
        with self._lock:
            old, old_total = self._series.get(labels, (np.zeros(len(self._les), np.int64), 0.0))
            self._series[labels] = (old + np.asarray(counts, np.int64), old_total + total)

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            series = sorted(self._series.items())
        for labels, (counts, total) in series:
            cumulative = np.cumsum(counts).tolist()
            family.add_metric(list(labels), list(zip(self._les, cumulative, strict=True)), total)
        return [family]


@dataclass(frozen=True)
class RequestMetrics:
    """The request-level collectors of a load run (aggregated at the master)."""

    requests: Counter
    duration: BulkHistogram
    ratelimited: Counter
    tokens: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RequestMetrics:
        return cls(
            requests=Counter(REQUESTS.removesuffix("_total"), HELP[REQUESTS],
                             ["source", "endpoint", "status", "org", "outcome"],
                             registry=registry),
            duration=BulkHistogram(REQUEST_DURATION, HELP[REQUEST_DURATION],
                                   ["source", "endpoint"], LATENCY_BUCKETS, registry),
            ratelimited=Counter(RATELIMITED.removesuffix("_total"), HELP[RATELIMITED],
                                ["source", "endpoint", "org"], registry=registry),
            tokens=Counter(TOKENS.removesuffix("_total"), HELP[TOKENS],
                           ["source", "kind", "org"], registry=registry),
        )


def build_info(registry: CollectorRegistry, version: str) -> Info:
    info = Info(BUILD_INFO, HELP[BUILD_INFO], registry=registry)
    info.info({"version": version})
    return info


def gauge(name: str, labels: list[str], registry: CollectorRegistry) -> Gauge:
    return Gauge(name, HELP[name], labels, registry=registry)
