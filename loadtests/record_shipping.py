"""Records of remote workers travel to the master over Locust's own message channel.

Why: a ``--master`` runs no users, so without this its verdict would be judged over zero
records and every worker's parts would have to be copied by hand. Each worker's recorder
writes a batch as a zstd-compressed Parquet part in its own folder (as before), then the
:class:`Shipper` sends the *same bytes* to the master in a ``secton_records`` message; the
master's :class:`Collector` writes them, under the worker's part name, into its own
``records.parts/``, and the CLI merges and judges them as any other run.

Back-pressure: the part on the worker's disk *is* the buffer. The master acknowledges
each part once it is on *its* disk (``secton_records_ack``), and a worker keeps at most
:data:`WINDOW` parts sent and not yet acknowledged. When the master (or the network) is
slower than the worker writes, the window fills, the worker stops sending, and the parts
wait on disk in order: at most ``WINDOW`` parts are ever in ZeroMQ's memory queues, none is
dropped. (Locust sends without blocking and retries a full queue for 9 s before it raises;
the window keeps the queue far from full, and a failed send leaves the part queued for the
next try.) A part not acknowledged within :data:`ACK_TIMEOUT_S` is sent again; the master
writes a part once, by name, and acknowledges a repeat without counting it. With
``--no-keep-parts`` a part is deleted once the master has acknowledged it.

Loss accounting: after its last flush (test_stop) a worker sends what is queued (bounded
by :data:`FINAL_SHIP_S`; no acknowledgement can arrive then, see :meth:`Shipper.finish`)
and ``secton_done`` with its record count, the rows it sent, the most parts that waited on
its disk, its schedule and its last metric deltas. The master waits (bounded by
:data:`FINAL_WAIT_S`) for every live worker's ``secton_done`` and its batches, then writes
``workers.json``: per worker, records received vs reported, and ``complete``. A worker
that went missing or never sent its final batch is named there with its last known counts;
the CLI then calls the run incomplete (exit 1).
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
from secton_harness.atomicfile import atomic_path, write_json_atomic
from secton_harness.records import PARTS_DIR

RECORDS_MESSAGE = "secton_records"
ACK_MESSAGE = "secton_records_ack"
DONE_MESSAGE = "secton_done"
#: How often the shipping greenlet looks for new parts and acknowledgements.
SHIP_POLL_S = 0.2
#: Parts a worker has sent and the master not yet acknowledged, at most (a part holds
#: about a second of records, so this is seconds of records in flight).
WINDOW = 4
#: A part sent and not acknowledged for this long is sent again (a message lost when
#: Locust reset its connection); the master counts a repeat once.
ACK_TIMEOUT_S = 30.0
#: A worker's bound on shipping its queued parts after its last flush.
FINAL_SHIP_S = 20.0
#: The master's bound on waiting for the workers' final batches after test_stop.
FINAL_WAIT_S = 20.0


class Shipper:
    """Worker side: sends each written part's bytes to the master, in order, with at most
    :data:`WINDOW` parts unacknowledged; the others wait on disk."""

    def __init__(self, send: Callable[[str, dict[str, Any]], None], keep_parts: bool) -> None:
        self.send = send
        self.keep_parts = keep_parts
        #: parts written and not sent yet, oldest first (the writer thread appends)
        self.queue: collections.deque[tuple[Path, int]] = collections.deque()
        #: part name -> (path, rows, monotonic time sent), awaiting the master's ack
        self.inflight: dict[str, tuple[Path, int, float]] = {}
        self.sent_rows = 0  # sent to the master at least once
        self.shipped_rows = 0  # acknowledged by the master
        self.shipped_batches = 0
        self.resent = 0
        self.send_failures = 0
        #: the most parts that waited on disk because the window was full
        self.max_waiting = 0
        self._lock = gevent.lock.Semaphore()
        self._greenlet = gevent.spawn(self._forever)

    def written(self, path: Path, rows: int) -> None:
        """Called by the writer thread once a part is on disk (a deque append is
        thread-safe; the greenlet picks it up)."""
        self.queue.append((path, rows))

    def on_ack(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        """The master has the named parts on its disk: they leave the window."""
        for name in (msg.data or {}).get("names", ()):
            entry = self.inflight.pop(str(name), None)
            if entry is None:
                continue  # a repeat's second ack
            path, rows, _sent = entry
            self.shipped_rows += rows
            self.shipped_batches += 1
            if not self.keep_parts:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _forever(self) -> None:
        while True:
            gevent.sleep(SHIP_POLL_S)
            self.send_window()

    def send_window(self) -> bool:
        """Send queued parts while the window has room (and resend an overdue one);
        False when a send failed (the part stays queued for the next try)."""
        with self._lock:
            now = time.monotonic()
            for name, (path, rows, sent) in list(self.inflight.items()):
                if now - sent > ACK_TIMEOUT_S and name in self.inflight:
                    self.inflight[name] = (path, rows, now)  # next try after the timeout
                    if not self._send(path, rows):
                        return False
                    self.resent += 1
            while self.queue and len(self.inflight) < WINDOW:
                if not self._send_first():
                    return False
            self.max_waiting = max(self.max_waiting, len(self.queue))
        return True

    def _send_first(self) -> bool:
        """Send the oldest queued part; in flight *before* the send, so an acknowledgement
        can never come before its part is awaited."""
        path, rows = self.queue[0]
        self.inflight[path.name] = (path, rows, time.monotonic())
        if not self._send(path, rows):
            self.inflight.pop(path.name, None)
            return False
        self.queue.popleft()
        self.sent_rows += rows
        return True

    def _send(self, path: Path, rows: int) -> bool:
        try:
            data = path.read_bytes()
            self.send(RECORDS_MESSAGE, {"name": path.name, "rows": rows, "data": data})
        except Exception:  # OSError reading; Locust's RPCError (a full queue, 9 s) sending
            self.send_failures += 1
            return False  # kept queued; the local part is still the record
        return True

    def finish(self, deadline_s: float = FINAL_SHIP_S) -> bool:
        """The last word: send every queued part now, window or not, bounded by
        ``deadline_s``; True when every part written was sent.

        It cannot wait for acknowledgements: Locust runs a worker's test_stop on the
        greenlet that receives the master's messages, so none arrives until it returns.
        The master counts what arrived against ``sent_rows`` instead; a part sent here
        is deleted (``--no-keep-parts``) only if its acknowledgement still arrives."""
        deadline = time.monotonic() + deadline_s
        with self._lock:
            while self.queue:
                if time.monotonic() > deadline or not self._send_first():
                    return False
        return True

    def report(self) -> dict[str, int]:
        """The shipping figures a worker sends with ``secton_done``."""
        return {"sent_rows": self.sent_rows, "shipped_rows": self.shipped_rows,
                "shipped_batches": self.shipped_batches, "unsent_parts": len(self.queue),
                "max_waiting_parts": self.max_waiting, "resent_parts": self.resent,
                "send_failures": self.send_failures}


class Collector:
    """Master side: writes shipped parts into the run folder and keeps the accounts."""

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.workers: dict[str, dict[str, Any]] = {}
        self._names: dict[str, set[str]] = {}  # per worker, the part names written

    def _account(self, client_id: str) -> dict[str, Any]:
        return self.workers.setdefault(client_id, {
            "client_id": client_id, "worker": "", "received_records": 0,
            "received_batches": 0, "done": None})

    def on_records(self, environment: Any, msg: Any, **_: Any) -> None:
        """Write a shipped part (once, by name), count it, and acknowledge it: the ack is
        what lets the worker send more (back-pressure)."""
        data = msg.data or {}
        name = Path(str(data.get("name", ""))).name
        account = self._account(msg.node_id)
        seen = self._names.setdefault(msg.node_id, set())
        if name.startswith("load-") and name.endswith(".parquet") and name not in seen:
            if self.run_dir is not None:
                parts = self.run_dir / PARTS_DIR
                parts.mkdir(parents=True, exist_ok=True)
                with atomic_path(parts / name) as tmp:
                    Path(tmp).write_bytes(bytes(data.get("data", b"")))
            seen.add(name)
            account["received_records"] += int(data.get("rows", 0))
            account["received_batches"] += 1
            if not account["worker"]:  # load-<worker>-<pid>-<n>.parquet; done names it too
                account["worker"] = name.removeprefix("load-").rsplit("-", 2)[0]
        runner = getattr(environment, "runner", None)
        if runner is not None:
            with contextlib.suppress(Exception):  # a worker gone: it sends again or is lost
                runner.send_message(ACK_MESSAGE, {"names": [name]}, client_id=msg.node_id)

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
        sent = int(done.get("sent_rows", 0))
        return account["received_records"] >= sent and sent >= int(done.get("records", 0))

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
            #: the most parts that waited on the worker's disk for the master (back-pressure)
            account["max_waiting_parts"] = int(done.get("max_waiting_parts", 0)) if done else None
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
