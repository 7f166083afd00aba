"""The file names of a load run folder besides the core's (``run.json``,
``records.parquet``), each written here once: the load command (``locust_process``,
without gevent) and the Locust process (``locustfile``, ``record_shipping``) both use them.

=========================  ================================================================
``progress.json``          live counts, rewritten about once a second (the CLI's progress)
``locust-summary.json``    Locust's own totals at the end (cross-checked with the records)
``workers.json``           the master's account of each remote worker's records
``pushgateway.json``       what the end-of-run push to a Pushgateway answered
``stop-requested``         written by the CLI to stop the run early (abort_on_fail,
                           stop_when_down); the Locust process only tests it exists
``schedule-<worker>.json`` each process's pacing schedule (what it was asked to send)
=========================  ================================================================
"""

from __future__ import annotations

PROGRESS_FILE = "progress.json"
SUMMARY_FILE = "locust-summary.json"
WORKERS_FILE = "workers.json"
PUSH_FILE = "pushgateway.json"
STOP_FILE = "stop-requested"
SCHEDULE_GLOB = "schedule-*.json"


def schedule_file(worker: str) -> str:
    """The schedule file of process ``worker`` (``schedule-w0-1234.json``)."""
    return f"schedule-{worker}.json"
