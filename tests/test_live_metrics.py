"""Load metrics counted per batch: the same numbers a per-request count would give.

The load path no longer touches Prometheus per request (see loadtests/live_metrics.py);
these tests hold the batch counts and the bulk histogram to what prometheus-client's own
Histogram and a plain per-row count say for the same records.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from loadtests.live_metrics import LiveMetrics, MetricDeltas, batch_deltas
from secton_harness.metrics import LATENCY_BUCKETS, REQUEST_DURATION, BulkHistogram, bucket_counts
from secton_harness.records import rows_to_table


def _series(text: str, name: str) -> dict[str, float]:
    """``{series line without value: value}`` for one metric family, _created left out."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name) and "_created" not in line:
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(LATENCY_BUCKETS),  # values exactly on a bound
                          st.floats(0, 120, allow_nan=False)), max_size=200))
def test_bulk_histogram_matches_prometheus_histogram(values: list[float]) -> None:
    reference, bulk = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram(REQUEST_DURATION, "h", ["endpoint"], buckets=LATENCY_BUCKETS,
                          registry=reference)
    child = histogram.labels("/v1/models")  # the series exists even with no observation
    for value in values:
        child.observe(value)
    collector = BulkHistogram(REQUEST_DURATION, "h", ["endpoint"], LATENCY_BUCKETS, bulk)
    half = len(values) // 2  # added in two batches: counts accumulate
    collector.add(("/v1/models",), bucket_counts(values[:half]), sum(values[:half]))
    collector.add(("/v1/models",), bucket_counts(values[half:]), sum(values[half:]))
    want = _series(generate_latest(reference).decode(), REQUEST_DURATION)
    got = _series(generate_latest(bulk).decode(), REQUEST_DURATION)
    assert want.keys() == got.keys()
    for series, value in want.items():
        assert abs(got[series] - value) <= 1e-9 * max(1.0, abs(value)), series


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        endpoint = rng.choice(["/v1/models", "/v1/chat/completions"])
        status = rng.choice([200, 200, 200, 429, 500, 0, -1])  # -1: cut by the run's stop
        row = {"ts": float(i), "endpoint": endpoint, "org": rng.choice(["org_a", "org_b"]),
               "status": max(status, 0), "latency_s": rng.expovariate(20.0)}
        if status == -1:
            row["error"] = "cancelled"
        if endpoint.endswith("completions") and status == 200:
            row["prompt_tokens"], row["completion_tokens"] = rng.randint(1, 50), rng.randint(1, 9)
        rows.append(row)
    return rows


def test_batch_deltas_count_like_a_per_row_count() -> None:
    rows = _rows(3000, seed=5)
    deltas = MetricDeltas()
    for start in range(0, len(rows), 700):  # several batches, merged by drain()
        deltas.add(batch_deltas(rows_to_table(rows[start:start + 700])))
    data = deltas.drain()
    outcome = {200: "ok", 429: "ratelimited", 500: "error", 0: "error"}  # measures.classify
    requests = Counter((r["endpoint"], str(r["status"]), r["org"],
                        "cancelled" if r.get("error") else outcome[r["status"]])
                       for r in rows)
    assert any(labels[3] == "cancelled" for labels in requests)
    assert {tuple(x[:4]): x[4] for x in data["requests"]} == requests
    limited = Counter((r["endpoint"], r["org"]) for r in rows if r["status"] == 429)
    assert {tuple(x[:2]): x[2] for x in data["ratelimited"]} == limited
    tokens = Counter()
    for r in rows:
        for kind in ("prompt", "completion"):
            tokens[(kind, r["org"])] += r.get(f"{kind}_tokens", 0)
    assert {tuple(x[:2]): x[2] for x in data["tokens"]} == +tokens
    for endpoint in ("/v1/models", "/v1/chat/completions"):
        # a cancelled request's partial wait is no latency (as in the measures' pNN)
        latencies = [r["latency_s"] for r in rows
                     if r["endpoint"] == endpoint and not r.get("error")]
        counts, total = data["durations"][endpoint]
        assert counts == bucket_counts(latencies)
        assert abs(total - sum(latencies)) < 1e-9
    assert deltas.drain() == {"requests": [], "ratelimited": [], "tokens": [], "durations": {}}


def test_live_metrics_expose_the_batches() -> None:
    rows = _rows(500, seed=9)
    deltas = MetricDeltas()
    deltas.add(batch_deltas(rows_to_table(rows)))
    live = LiveMetrics()
    live.apply(deltas.drain())
    text = generate_latest(live.registry).decode()
    count = sum(v for k, v in _series(text, REQUEST_DURATION).items() if "_count" in k)
    assert count == sum(1 for r in rows if not r.get("error"))
    ok = _series(text, "secton_requests_total")
    assert ok['secton_requests_total{endpoint="/v1/models",org="org_a",outcome="ok",'
              'source="load",status="200"}'] == sum(
        1 for r in rows if (r["endpoint"], r["org"], r["status"]) == ("/v1/models", "org_a", 200))


def test_junk_and_resets_at_the_metrics_port_are_one_quiet_line() -> None:
    """The load's /metrics (a gevent WSGI server in the Locust process): junk and resets
    are one warning line, never tracebacks (gevent printed two per reset into
    locust.out), and it keeps serving."""
    import socket
    import struct
    import subprocess
    import sys
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, "-c", "import logging, gevent\n"
         "logging.basicConfig(level=logging.WARNING)\n"
         "from loadtests.live_metrics import LiveMetrics\n"
         "server = LiveMetrics().serve('127.0.0.1', 0)\n"
         "print(server.server_port, flush=True)\n"
         "gevent.sleep(60)\n"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for junk in (b"\x00\xff GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(junk)
                assert sock.recv(100).startswith(b"HTTP/1.1 ")  # an answer, whatever it is
        for _ in range(3):  # half a request, then a TCP reset (SO_LINGER 0)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"\x00\xff GARBAGE\r\n\r\n")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"secton_requests_total" in answer.read()  # still serving
    finally:
        server.kill()
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "metrics endpoint: a request from 127.0.0.1 failed" in lines[0], err
