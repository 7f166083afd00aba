"""Records of remote workers travel to the master over Locust's own message channel.

Why: a ``--master`` runs no users, so without this its verdict would be judged over zero
records and every worker's parts would have to be copied by hand. Each worker's recorder
writes a batch as a zstd-compressed Parquet part in its own folder (as before), then the
:class:`Shipper` sends the *same bytes* to the master in a ``secton_records`` message; the
master's :class:`Collector` writes them, under the worker's part name, into its own
``records.parts/``, and the CLI merges and judges them as any other run.

Back-pressure: the part on the worker's disk *is* the buffer. The shipper's queue holds
only part paths; when the master (or the network) is slow, Locust's ZeroMQ send blocks the
shipping greenlet (never the users), paths queue up and the records wait on disk, never
in memory and never dropped. With ``--no-keep-parts`` a part is deleted once sent.

Loss accounting: after its last flush (test_stop) a worker ships what is queued (bounded
by :data:`FINAL_SHIP_S`) and sends ``secton_done`` with its record count, what it shipped,
its schedule and its last metric deltas. The master waits (bounded by
:data:`FINAL_WAIT_S`) for every live worker's ``secton_done`` and its batches, then writes
``workers.json``: per worker, records received vs reported, and ``complete``. A worker that
went missing or never sent its final batch is named there with its last known counts; the
CLI then calls the run incomplete (exit 1).
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.lock

from loadtests.run_files import WORKERS_FILE, schedule_file
from secton_harness.atomicfile import write_json_atomic
from secton_harness.records import PARTS_DIR

RECORDS_MESSAGE = "secton_records"
DONE_MESSAGE = "secton_done"
#: How often the shipping greenlet looks for new parts.
SHIP_POLL_S = 0.2
#: A worker's bound on shipping its queued parts after its last flush.
FINAL_SHIP_S = 20.0
#: The master's bound on waiting for the workers' final batches after test_stop.
FINAL_WAIT_S = 20.0


class Shipper:
    """Worker side: sends each written part's bytes to the master, in order."""

    def __init__(self, send: Callable[[str, dict[str, Any]], None], keep_parts: bool) -> None:
        self.send = send
        self.keep_parts = keep_parts
        self.queue: collections.deque[tuple[Path, int]] = collections.deque()
        self.shipped_rows = 0
        self.shipped_batches = 0
        self._lock = gevent.lock.Semaphore()
        self._greenlet = gevent.spawn(self._forever)

    def written(self, path: Path, rows: int) -> None:
        """Called by the writer thread once a part is on disk (a deque append is
        thread-safe; the greenlet picks it up)."""
        self.queue.append((path, rows))

    def _forever(self) -> None:
        while True:
            gevent.sleep(SHIP_POLL_S)
            self.ship_queued(deadline=None)

    def ship_queued(self, deadline: float | None) -> bool:
        """Send every queued part (until ``deadline``, monotonic); True when none is left."""
        while self.queue:
            if deadline is not None and time.monotonic() > deadline:
                return False
            with self._lock:
                if not self.queue:
                    break
                path, rows = self.queue[0]
                try:
                    data = path.read_bytes()
                except OSError:
                    return False  # kept queued; the local part is still the record
                self.send(RECORDS_MESSAGE, {"name": path.name, "rows": rows, "data": data})
                self.queue.popleft()
                self.shipped_rows += rows
                self.shipped_batches += 1
            if not self.keep_parts:
                with contextlib.suppress(OSError):
                    path.unlink()
        return True

    def finish(self, deadline_s: float = FINAL_SHIP_S) -> bool:
        """Ship what is queued, bounded; True when everything written was sent."""
        return self.ship_queued(time.monotonic() + deadline_s)


class Collector:
    """Master side: writes shipped parts into the run folder and keeps the accounts."""

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.workers: dict[str, dict[str, Any]] = {}

    def _account(self, client_id: str) -> dict[str, Any]:
        return self.workers.setdefault(client_id, {
            "client_id": client_id, "worker": "", "received_records": 0,
            "received_batches": 0, "done": None})

    def on_records(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        name = Path(str(data.get("name", ""))).name
        account = self._account(msg.node_id)
        if not (name.startswith("load-") and name.endswith(".parquet")):
            return
        if self.run_dir is not None:
            parts = self.run_dir / PARTS_DIR
            parts.mkdir(parents=True, exist_ok=True)
            from secton_harness.atomicfile import atomic_path

            with atomic_path(parts / name) as tmp:
                Path(tmp).write_bytes(bytes(data.get("data", b"")))
        account["received_records"] += int(data.get("rows", 0))
        account["received_batches"] += 1
        if not account["worker"]:  # load-<worker>-<pid>-<n>.parquet; done names it too
            account["worker"] = name.removeprefix("load-").rsplit("-", 2)[0]

    def on_done(self, environment: Any, msg: Any, apply: Callable[[dict[str, Any]], None]
                ) -> None:
        data = dict(msg.data or {})
        account = self._account(msg.node_id)
        deltas = data.pop("deltas", None)
        if deltas:
            apply(deltas)
        schedule = data.pop("schedule", None)
        account["worker"] = data.get("worker") or account["worker"]
        account["done"] = data
        if schedule and self.run_dir is not None and account["worker"]:
            with contextlib.suppress(OSError):
                write_json_atomic(self.run_dir / schedule_file(account["worker"]),
                                  schedule)

    def complete(self, client_id: str) -> bool:
        account = self.workers.get(client_id)
        if account is None or account["done"] is None:
            return False
        done = account["done"]
        return (account["received_records"] >= int(done.get("shipped_rows", 0))
                and int(done.get("shipped_rows", 0)) >= int(done.get("records", 0)))

    def wait(self, runner: Any, known: set[str], deadline_s: float = FINAL_WAIT_S) -> None:
        """Until every worker still connected and not missing is complete, bounded."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            waiting = [client for client in known | set(self.workers)
                       if not self.complete(client) and _connected(runner, client)]
            if not waiting:
                return
            gevent.sleep(0.1)

    def write(self, known: dict[str, dict[str, Any]]) -> None:
        """``workers.json``: per worker what arrived, what it reported, and ``complete``;
        ``known`` holds the last state each worker reported (its last known counts)."""
        if self.run_dir is None:
            return
        out = []
        for client_id in sorted(set(known) | set(self.workers)):
            account = dict(self._account(client_id))
            last = known.get(client_id, {})
            done = account.pop("done")
            account["final_batch"] = done is not None
            account["reported_records"] = int(done["records"]) if done else None
            account["last_known_records"] = int(last.get("records", 0)) if last else None
            account["complete"] = self.complete(client_id)
            if done is None:
                account["problem"] = ("lost: no final batch (quit or went missing); last "
                                      f"known {account['last_known_records'] or 0} records, "
                                      f"{account['received_records']} received")
            elif not account["complete"]:
                account["problem"] = (f"{account['reported_records']} records reported, "
                                      f"{account['received_records']} received; the rest "
                                      "are in the worker's own --out")
            out.append(account)
        write_json_atomic(self.run_dir / WORKERS_FILE, {"workers": out})


def _connected(runner: Any, client_id: str) -> bool:
    node = runner.clients.get(client_id) if runner is not None else None
    return node is not None and node.state != "missing"
