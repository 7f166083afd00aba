"""Probe results as Prometheus metrics on an explicit registry, served over HTTP.

Names come from :mod:`secton_harness.metrics`. Every counter and histogram series a
configuration can produce (each check x target x result, each check x target x reason) is
created at start with value 0, so ``rate()``/``increase()`` see the first failure instead
of a series that appears out of nowhere. The gauges (success, degraded, last success,
HTTP status) get a value only once the check has run: a pre-set ``0`` would claim a
failure that never happened, and a check that never ran is what ``absent()`` is for.

With ``ratelimit_files`` the same registry also re-exports the rate-limit mapper's results
(``secton_ratelimit_observed``/``_verified``, read at scrape time by
:class:`probes.ratelimit_collector.RatelimitCollector`).

Labels are ``check`` and ``target`` (the target's label, never its URL), plus ``result``
or ``reason`` from fixed sets: nothing a key could leak into.

Example::

    metrics = ProbeMetrics(CollectorRegistry(), checks=["auth_valid"], targets=["prod"])
    server = metrics.serve(9464)        # OpenMetrics when the scraper asks for it
    metrics.observe(result)
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest

from secton_harness import __version__
from secton_harness.errors import BadInput
from secton_harness.metrics import (
    HELP,
    LATENCY_BUCKETS,
    PROBE_CHECKS,
    PROBE_DEGRADED,
    PROBE_DURATION,
    PROBE_FAILURES,
    PROBE_HTTP_STATUS,
    PROBE_LAST_SUCCESS,
    PROBE_REASONS,
    PROBE_SUCCESS,
    build_info,
)

from .ratelimit_collector import RatelimitCollector
from .runner import CheckResult

log = logging.getLogger(__name__)

RESULTS = ("success", "warning", "degraded", "failure")
_LABELS = ["check", "target"]


class ProbeMetrics:
    """The probe collectors, pre-initialised for every expected label combination."""

    def __init__(self, registry: CollectorRegistry, checks: Iterable[str],
                 targets: Iterable[str], ratelimit_files: Iterable[str] = (),
                 target_urls: Mapping[str, str] | None = None) -> None:
        """``target_urls`` (label -> URL) turns a result file's URL into its target label."""
        self.registry = registry
        self.success = Gauge(PROBE_SUCCESS, HELP[PROBE_SUCCESS], _LABELS, registry=registry)
        self.degraded = Gauge(PROBE_DEGRADED, HELP[PROBE_DEGRADED], _LABELS, registry=registry)
        self.last_success = Gauge(PROBE_LAST_SUCCESS, HELP[PROBE_LAST_SUCCESS], _LABELS,
                                  registry=registry)
        self.http_status = Gauge(PROBE_HTTP_STATUS, HELP[PROBE_HTTP_STATUS], _LABELS,
                                 registry=registry)
        self.duration = Histogram(PROBE_DURATION, HELP[PROBE_DURATION], _LABELS,
                                  buckets=LATENCY_BUCKETS, registry=registry)
        self.checks = Counter(PROBE_CHECKS.removesuffix("_total"), HELP[PROBE_CHECKS],
                              [*_LABELS, "result"], registry=registry)
        self.failures = Counter(PROBE_FAILURES.removesuffix("_total"), HELP[PROBE_FAILURES],
                                [*_LABELS, "reason"], registry=registry)
        build_info(registry, __version__)
        ratelimit_files = list(ratelimit_files)
        self.ratelimit = (RatelimitCollector(ratelimit_files, target_urls)
                          if ratelimit_files else None)
        if self.ratelimit is not None:
            registry.register(self.ratelimit)
        targets = list(targets)
        for check in checks:
            for target in targets:
                self.duration.labels(check, target)
                for result in RESULTS:
                    self.checks.labels(check, target, result)
                for reason in PROBE_REASONS:
                    self.failures.labels(check, target, reason)

    def observe(self, result: CheckResult) -> None:
        """Account one check run (skipped runs are not measurements and are ignored)."""
        if result.skipped:
            return
        labels = (result.check, result.target)
        self.success.labels(*labels).set(1 if result.success else 0)
        self.degraded.labels(*labels).set(1 if result.success and result.degraded else 0)
        self.http_status.labels(*labels).set(result.status)
        self.duration.labels(*labels).observe(result.duration_s)
        self.checks.labels(*labels, result.result).inc()
        if result.success:
            self.last_success.labels(*labels).set(result.ts + result.duration_s)
        else:
            self.failures.labels(*labels, result.reason).inc()

    def exposition(self) -> bytes:
        """The text exposition format, as a scrape without OpenMetrics would get it."""
        return generate_latest(self.registry)

    def serve(self, port: int, address: str = "127.0.0.1") -> WSGIServer:
        """Serve ``/metrics`` (prometheus_client's server: gzip and OpenMetrics negotiation)
        in a daemon thread; call ``.shutdown()`` on the result to stop it."""
        try:
            server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as error:
            raise BadInput(f"--port {port}: cannot listen on {address}:{port}: "
                           f"{error.strerror or error}") from None
        server.handle_error = _QuietErrors()  # type: ignore[method-assign]
        return server


class _QuietErrors:
    """socketserver's ``handle_error`` without the traceback: a scraper that hangs up or
    junk sent to the port is one log line (at most one per ``every_s``, with a count of
    the rest), not a screenful on the service's console."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.last = -math.inf
        self.quiet = 0
        self.lock = threading.Lock()

    def __call__(self, _request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        with self.lock:
            now = time.monotonic()
            if now - self.last < self.every_s:
                self.quiet += 1
                return
            self.last, quiet, self.quiet = now, self.quiet, 0
        host = client_address[0] if isinstance(client_address, tuple) else "?"
        what = " ".join(f"{type(error).__name__}: {error}".split())[:120]
        more = f" ({quiet} more not shown)" if quiet else ""
        log.warning("metrics endpoint: a request from %s failed: %s%s", host, what, more)
