"""Prometheus metric names, help texts and buckets: the one place they are spelled.

Dashboards, alert rules and their tests refer to these constants (or to the names they
hold); a test fails if a dashboard or rule names a metric that is not listed here and
exported by the code. Base units only (seconds, bytes), ``_total`` on counters, and never
key material in labels: keys appear as nothing at all, orgs by their id, targets by label.

Collectors are always created on an explicit :class:`prometheus_client.CollectorRegistry`
passed in by the caller, never on the global default registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Buckets up to 60 s: LLM completions are slow, and a 10 s cap would hide them.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
                   30.0, 60.0)

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
# rate-limit mapping
RATELIMIT_OBSERVED = "secton_ratelimit_observed"
RATELIMIT_VERIFIED = "secton_ratelimit_verified"
# build
BUILD_INFO = "secton_harness_build"

# The names as Prometheus exposes them (counters gain _total, histograms their series).
HELP: dict[str, str] = {
    PROBE_SUCCESS: "1 if the last run of the check met every expectation, else 0.",
    PROBE_DURATION: "Duration of probe checks in seconds.",
    PROBE_CHECKS: "Probe check runs by result (success, degraded, failure).",
    PROBE_FAILURES: "Failed probe check runs by reason.",
    PROBE_LAST_SUCCESS: "Unix time of the last successful run of the check.",
    PROBE_DEGRADED: "1 if the last run of the check was slower than its degraded threshold.",
    PROBE_HTTP_STATUS: "HTTP status of the deciding answer of the check's last run (0: none).",
    REQUESTS: "Requests sent to the target by source, endpoint, status and org.",
    REQUEST_DURATION: "Request latency in seconds by source and endpoint.",
    RATELIMITED: "Requests answered 429 Too Many Requests.",
    TOKENS: "Tokens reported in chat completion usage, by kind (prompt, completion).",
    USERS: "Simulated users currently running.",
    TARGET_RATE: "Configured target request rate in requests per second, by endpoint.",
    RATELIMIT_OBSERVED: "Rate-limit figures observed by the mapper, by scope and quantity.",
    RATELIMIT_VERIFIED: "1 if the mapper found the figure within the documented policy, else 0.",
    BUILD_INFO: "Version of secton-harness.",
}

#: Fixed failure reasons of a probe check (bounded label values).
PROBE_REASONS = ("status", "schema", "invariant", "timeout", "connect", "latency",
                 "content_type", "ratelimited")


@dataclass(frozen=True)
class RequestMetrics:
    """The request-level collectors shared by load tests and the rate-limit mapper."""

    requests: Counter
    duration: Histogram
    ratelimited: Counter
    tokens: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RequestMetrics:
        return cls(
            requests=Counter(REQUESTS.removesuffix("_total"), HELP[REQUESTS],
                             ["source", "endpoint", "status", "org"], registry=registry),
            duration=Histogram(REQUEST_DURATION, HELP[REQUEST_DURATION], ["source", "endpoint"],
                               buckets=LATENCY_BUCKETS, registry=registry),
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
