"""Per-process record buffer: cheap appends on the load path, Parquet writes off it.

Users call :meth:`Recorder.add` (a list append). Once a second a greenlet swaps the buffer
and hands it to a one-thread :class:`gevent.threadpool.ThreadPool` created in this process
after Locust's fork (a native thread; gevent's hub-wide pool did not survive
``--processes`` forks reliably, and a plain ``threading.Thread`` is a greenlet once
monkey-patched), which writes it through a :class:`~secton_harness.records.RecordSink` as
one part file. pyarrow releases the GIL while it encodes and writes, so the gevent hub
(and every in-flight request's timing) is not held up by file I/O. Each process writes
parts with its own prefix (``load-<worker>-<pid>-N``) into the same run folder; the CLI
merges them when the run ends (a remote worker's :class:`~loadtests.record_shipping.Shipper`
also sends each part to the master). The writer also counts each batch for the live metrics
(:func:`~loadtests.live_metrics.batch_deltas` into :attr:`Recorder.deltas`), so the load
path itself only appends a tuple per request (``RECORD_FIELDS`` order).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import gevent
import pyarrow as pa
from gevent.threadpool import ThreadPool

from loadtests.live_metrics import MetricDeltas, batch_deltas
from loadtests.record_shipping import Shipper
from secton_harness.records import RecordSink, tuples_to_table

FLUSH_INTERVAL_S = 1.0
#: Batches kept for a retry while writes fail (a full disk), about a minute of records;
#: beyond that the oldest is given up (and said so), so memory stays bounded.
MAX_WAITING_BATCHES = 60
#: The fields of a load record, in the order the users' records (tuples) hold them.
RECORD_FIELDS = ("ts", "intended_ts", "phase", "endpoint", "method", "key_alias", "org",
                 "status", "latency_s", "bytes", "error", "reason", "success",
                 "ratelimit_limit", "ratelimit_remaining", "ratelimit_reset_s",
                 "retry_after_s", "prompt_tokens", "completion_tokens", "total_tokens")


class Recorder:
    """Buffer records in memory; flush them to part files in a native thread."""

    def __init__(self, run_dir: str | Path, worker: str, shipper: Shipper | None = None
                 ) -> None:
        self.sink = RecordSink(run_dir, source="load", part_prefix=f"load-{worker}",
                               defaults={"worker": worker})
        self.deltas = MetricDeltas()
        #: a remote worker's shipper: each part written is also sent to the master
        self.shipper = shipper
        self.count = 0
        self.inflight = 0
        self._rows: list[tuple[Any, ...]] = []
        self._unwritten: list[pa.Table] = []  # batches whose write failed, oldest first
        # The sink has warmed pyarrow's conversion up (it imports pandas on first use);
        # the metric counting's kernels are warmed here, so no first use lands on the
        # writer thread mid-run, holding the GIL while every user waits.
        dummy = tuple({"endpoint": "", "status": 0, "latency_s": 0.0}.get(field)
                      for field in RECORD_FIELDS)
        batch_deltas(tuples_to_table([dummy], RECORD_FIELDS, self.sink.defaults))
        self._pool = ThreadPool(1)
        # The writer thread must never take SIGTERM/SIGINT: Locust's handlers (and so the
        # final flush) only run when the signal reaches the main thread.
        self._pool.spawn(signal.pthread_sigmask, signal.SIG_BLOCK,
                         {signal.SIGTERM, signal.SIGINT})
        self._greenlet = gevent.spawn(self._flush_forever)

    def add(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)
        self.count += 1

    def flush(self) -> None:
        """Hand everything buffered so far to the writer thread (never blocks)."""
        rows, self._rows = self._rows, []
        if rows:
            self._pool.spawn(self._write, rows)

    def wait(self) -> None:
        """Wait (cooperatively) until every batch handed over is written and counted."""
        self._pool.join()

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        """Convert (a misfit value costs only itself, see :func:`tuples_to_table`) and
        write; a batch whose write fails waits for the next one instead of being lost."""
        table = tuples_to_table(rows, RECORD_FIELDS, self.sink.defaults)
        self._unwritten.append(table)
        self.deltas.add(batch_deltas(table))
        while self._unwritten:
            try:
                path = self.sink.write_table(self._unwritten[0])
            except OSError as error:
                if len(self._unwritten) > MAX_WAITING_BATCHES:  # bounded memory
                    lost = self._unwritten.pop(0).num_rows
                    print(f"records: {lost} records given up after "
                          f"{MAX_WAITING_BATCHES} failed writes", file=sys.stderr, flush=True)
                print(f"records: writing a batch failed ({error}); retried with the next "
                      "batch", file=sys.stderr, flush=True)
                return
            written = self._unwritten.pop(0)
            if self.shipper is not None:
                self.shipper.written(path, written.num_rows)

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def close(self) -> None:
        """Final flush and wait for the writer; the parts stay for the CLI to merge."""
        self._greenlet.kill(block=False)
        self.flush()
        self.wait()
