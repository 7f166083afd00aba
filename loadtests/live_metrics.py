"""Prometheus metrics of a load run, correct with any number of Locust workers.

Design: *aggregate at the master*, *count in batches*. Every process that runs users
counts its records once per flushed batch, in the recorder's writer thread, from the
Arrow table it writes anyway (:func:`batch_deltas`: a group-by for the counters, numpy
bucketing for the latency histogram), so nothing is counted per request on the load
path. A worker drains the counts (:class:`MetricDeltas`) into Locust's own periodic
worker report (``report_to_master``, every 3 s, and a final one when it quits); the master
applies them (``worker_report``) to one :class:`~secton_harness.metrics.RequestMetrics` on
its own registry, served on ``--metrics-port``. A standalone run applies its own counts
once a second. So Prometheus scrapes one endpoint whatever the worker count, and every
request is counted exactly once; the cost is up to one flush plus one report interval of
delay. Worker reports carry bucket counts, not raw latencies, so they stay small.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from secton_harness.measures import ERROR, Columns, outcome_labels
from secton_harness.metrics import (
    DROPPED,
    HELP,
    INFLIGHT,
    LATENCY_BUCKETS,
    TARGET_RATE,
    USERS,
    RequestMetrics,
    bucket_counts,
    gauge,
)
from secton_harness.redact import Redactor

SOURCE = "load"
REPORT_KEY = "secton_metrics"
log = logging.getLogger(__name__)


def batch_deltas(table: pa.Table) -> dict[str, Any]:
    """The metric counts of one batch of records, msgpack-friendly.

    ``requests``: [endpoint, status, org, outcome, n] (outcome as
    :func:`secton_harness.measures.outcome_labels` defines it, ``cancelled`` included);
    ``ratelimited``: [endpoint, org, n];
    ``tokens``: [kind, org, n]; ``durations``: {endpoint: [per-bucket counts, sum]} with
    the buckets of :data:`~secton_harness.metrics.LATENCY_BUCKETS` plus ``+Inf``, over the
    records with a latency (a cancelled request's partial wait is none, as in the
    measures' percentiles).
    """
    if table.num_rows == 0:
        return {}
    columns = Columns.from_arrow(table)  # its latency_s is NaN where cancelled
    outcomes = pa.array(outcome_labels(columns), pa.string())
    grouped = table.select(["endpoint", "status", "org"]).append_column(
        "outcome", outcomes).group_by(["endpoint", "status", "org", "outcome"],
                                      use_threads=False).aggregate([([], "count_all")])
    requests = [[e, str(s), o or "", k, n] for e, s, o, k, n in zip(
        *(grouped[c].to_pylist() for c in ("endpoint", "status", "org", "outcome",
                                           "count_all")), strict=True)]
    ratelimited = [[e, o, n] for e, s, o, _k, n in requests if s == "429"]
    tokens: list[list[Any]] = []
    by_org = table.group_by("org", use_threads=False).aggregate([("prompt_tokens", "sum"),
                                             ("completion_tokens", "sum")])
    for kind in ("prompt", "completion"):
        for org, total in zip(by_org["org"].to_pylist(),
                              by_org[f"{kind}_tokens_sum"].to_pylist(), strict=True):
            if total:
                tokens.append([kind, org or "", int(total)])
    durations: dict[str, list[Any]] = {}
    endpoints = table["endpoint"]
    for endpoint in pc.unique(endpoints).to_pylist():
        # a null endpoint compares as null: fill it, or numpy gets an object mask
        mask = pc.fill_null(pc.equal(endpoints, endpoint), False).to_numpy(
            zero_copy_only=False)
        values = columns.latency_s[mask]
        values = values[np.isfinite(values)]  # a cancelled request has no latency
        durations[endpoint] = [bucket_counts(values), float(values.sum())]
    return {"requests": requests, "ratelimited": ratelimited, "tokens": tokens,
            "durations": durations}


class MetricDeltas:
    """Counts not yet reported: filled by the writer thread, drained by the main greenlet.

    The hand-off is a :class:`collections.deque` (append and popleft are atomic), so the
    two sides need no lock.
    """

    def __init__(self) -> None:
        self._pending: deque[dict[str, Any]] = deque()

    def add(self, deltas: dict[str, Any]) -> None:
        if deltas:
            self._pending.append(deltas)

    def drain(self) -> dict[str, Any]:
        """Everything added since the last drain, merged into one report."""
        requests: Counter[tuple[str, str, str, str]] = Counter()
        ratelimited: Counter[tuple[str, str]] = Counter()
        tokens: Counter[tuple[str, str]] = Counter()
        durations: dict[str, list[Any]] = {}
        while self._pending:
            batch = self._pending.popleft()
            for *labels, n in batch.get("requests", []):
                requests[tuple(labels)] += n
            for *labels, n in batch.get("ratelimited", []):
                ratelimited[tuple(labels)] += n
            for *labels, n in batch.get("tokens", []):
                tokens[tuple(labels)] += n
            for endpoint, (counts, total) in batch.get("durations", {}).items():
                if endpoint in durations:
                    old_counts, old_total = durations[endpoint]
                    counts = [a + b for a, b in zip(old_counts, counts, strict=True)]
                    total += old_total
                durations[endpoint] = [counts, total]
        return {
            "requests": [[*labels, n] for labels, n in requests.items()],
            "ratelimited": [[*labels, n] for labels, n in ratelimited.items()],
            "tokens": [[*labels, n] for labels, n in tokens.items()],
            "durations": durations,
        }


class LiveMetrics:
    """The master's (or a standalone process's) registry with the load's metrics, and
    running totals per endpoint for the CLI's progress line (errors are the records whose
    ``outcome`` is ``error``, the same definition as the thresholds')."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = RequestMetrics.create(self.registry)
        self.users = gauge(USERS, [], self.registry)
        self.target_rate = gauge(TARGET_RATE, ["endpoint"], self.registry)
        self.inflight = gauge(INFLIGHT, ["endpoint"], self.registry)
        self.dropped = PromCounter(DROPPED.removesuffix("_total"), HELP[DROPPED], ["endpoint"],
                                   registry=self.registry)
        self._dropped_seen: dict[tuple[str, str], int] = {}
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.limited: Counter[str] = Counter()
        self.buckets: dict[str, list[int]] = {}

    def apply(self, data: dict[str, Any]) -> None:
        m = self.metrics
        for endpoint, status, org, outcome, n in data.get("requests", []):
            m.requests.labels(SOURCE, endpoint, status, org, outcome).inc(n)
            self.requests[endpoint] += n
            if outcome == ERROR:
                self.errors[endpoint] += n
        for endpoint, org, n in data.get("ratelimited", []):
            m.ratelimited.labels(SOURCE, endpoint, org).inc(n)
            self.limited[endpoint] += n
        for kind, org, n in data.get("tokens", []):
            m.tokens.labels(SOURCE, kind, org).inc(n)
        for endpoint, (counts, total) in data.get("durations", {}).items():
            m.duration.add((SOURCE, endpoint), counts, total)
            old = self.buckets.get(endpoint)
            self.buckets[endpoint] = counts if old is None else [
                a + b for a, b in zip(old, counts, strict=True)]

    def set_dropped(self, source: str, endpoint: str, total: int) -> None:
        """A process's cumulative dropped count: the counter grows by what is new."""
        counter = self.dropped.labels(endpoint)  # exported from 0, not from the first drop
        seen = self._dropped_seen.get((source, endpoint), 0)
        if total > seen:
            counter.inc(total - seen)
        self._dropped_seen[(source, endpoint)] = max(seen, total)

    def dropped_total(self, endpoint: str) -> int:
        return sum(n for (_, e), n in self._dropped_seen.items() if e == endpoint)

    def p95_bound(self, endpoint: str) -> float | None:
        """The upper bound of the histogram bucket that holds the 95th percentile (a bound,
        not the exact figure: the exact one is computed from the records at the end)."""
        counts = self.buckets.get(endpoint)
        if not counts or not sum(counts):
            return None
        need, seen = 0.95 * sum(counts), 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
            seen += n
            if seen >= need:
                return bound
        return float("inf")

    def serve(self, host: str, port: int) -> Any:
        """Serve /metrics from a gevent WSGI server (a greenlet, not a thread).

        Junk sent to the port, or a client that resets the connection, is one log line
        (at most one per 10 s, with a count of the rest), as at the probe exporter: gevent
        would print a traceback for each (two per reset, into ``locust.out``).
        """
        from gevent.pywsgi import _BAD_REQUEST_RESPONSE, WSGIHandler, WSGIServer
        from prometheus_client import make_wsgi_app

        quiet = _QuietErrors()

        class Handler(WSGIHandler):  # type: ignore[misc]
            def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes]:
                quiet.note(self.client_address, ex)  # never a traceback for client junk
                return ("400", _BAD_REQUEST_RESPONSE)

            def log_error(self, msg: str, *args: Any) -> None:
                quiet.note(self.client_address, msg % args if args else msg)

        class Server(WSGIServer):  # type: ignore[misc]
            def handle(self, sock: Any, address: Any) -> None:
                try:
                    super().handle(sock, address)
                except OSError as error:  # the client hung up while we answered
                    quiet.note(address, error)

        server = Server((host, port), make_wsgi_app(self.registry), log=None,
                        handler_class=Handler)
        server.start()
        return server


class _QuietErrors:
    """Failed requests at the metrics port as one warning per ``every_s`` seconds."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.last = -math.inf
        self.quiet = 0

    def note(self, client: Any, what: object) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.quiet += 1
            return
        self.last, quiet, self.quiet = now, self.quiet, 0
        host = client[0] if isinstance(client, tuple) and client else "?"
        text = (f"{type(what).__name__}: {what}" if isinstance(what, BaseException)
                else str(what))
        more = f" ({quiet} more not shown)" if quiet else ""
        log.warning("metrics endpoint: a request from %s failed: %s%s", host,
                    Redactor.none().text(text, limit=120), more)
