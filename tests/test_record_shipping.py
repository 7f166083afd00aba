"""The shipping protocol's logic in one process: a worker's Shipper wired to the master's
Collector by plain function calls in place of Locust's channel (which
tests/test_distributed.py runs for real). Real part files on disk, real run folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from loadtests import record_shipping
from loadtests.record_shipping import ACK_MESSAGE, RECORDS_MESSAGE, WINDOW, Collector, Shipper

NODE = "worker-node-1"


class Wire:
    """Carries the worker's messages to the collector and its acknowledgements back;
    ``hold`` keeps the acknowledgements (a master that cannot keep up)."""

    def __init__(self, run_dir: Path, keep_parts: bool = True) -> None:
        self.collector = Collector(run_dir)
        self.shipper = Shipper(self.send, keep_parts=keep_parts)
        self.hold = False
        self.held: list[Any] = []
        self.fail_next = 0
        self.sent: list[str] = []
        runner = SimpleNamespace(send_message=self.ack)
        self.environment = SimpleNamespace(runner=runner)

    def send(self, kind: str, data: dict[str, Any]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("full queue")  # as Locust's RPCSendError after its retries
        assert kind == RECORDS_MESSAGE
        self.sent.append(data["name"])
        self.collector.on_records(self.environment, SimpleNamespace(data=data, node_id=NODE))

    def ack(self, kind: str, data: dict[str, Any], client_id: str) -> None:
        assert (kind, client_id) == (ACK_MESSAGE, NODE)
        message = SimpleNamespace(data=data, node_id="master")
        if self.hold:
            self.held.append(message)
        else:
            self.shipper.on_ack(msg=message)

    def release(self) -> None:
        for message in self.held:
            self.shipper.on_ack(msg=message)
        self.held = []


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    made = Wire(tmp_path / "master")
    yield made
    made.shipper._greenlet.kill()


def write_parts(folder: Path, count: int, start: int = 0, rows: int = 10) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(start, start + count):
        path = folder / f"load-w0-1-{n:06d}.parquet"
        path.write_bytes(b"part %d" % n)
        paths.append(path)
    return paths


def test_a_slow_master_leaves_parts_waiting_on_disk_never_dropped(
        wire: Wire, tmp_path: Path) -> None:
    wire.hold = True
    for path in write_parts(tmp_path / "worker", WINDOW + 3):
        wire.shipper.written(path, 10)
    wire.shipper.send_window()
    assert len(wire.sent) == WINDOW  # the window is full: the rest wait
    assert len(wire.shipper.queue) == 3 and wire.shipper.max_waiting == 3
    wire.shipper.send_window()
    assert len(wire.sent) == WINDOW  # nothing acknowledged, nothing more sent
    wire.release()
    wire.shipper.send_window()
    assert len(wire.sent) == WINDOW + 3 and not wire.shipper.queue
    wire.release()
    assert wire.shipper.shipped_rows == wire.shipper.sent_rows == 10 * (WINDOW + 3)
    assert wire.collector.workers[NODE]["received_records"] == 10 * (WINDOW + 3)
    assert len(list((tmp_path / "master" / "records.parts").iterdir())) == WINDOW + 3


def test_an_unacknowledged_part_is_sent_again_and_counted_once(
        wire: Wire, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (path,) = write_parts(tmp_path / "worker", 1)
    wire.hold = True  # the first acknowledgement is lost
    wire.shipper.written(path, 10)
    wire.shipper.send_window()
    wire.held = []
    monkeypatch.setattr(record_shipping, "ACK_TIMEOUT_S", -1.0)
    wire.hold = False
    wire.shipper.send_window()  # overdue: sent again, acknowledged this time
    assert wire.sent == [path.name, path.name] and wire.shipper.resent == 1
    assert wire.collector.workers[NODE]["received_records"] == 10  # written once
    assert wire.shipper.shipped_rows == 10 and not wire.shipper.inflight
    wire.collector.on_records(wire.environment, SimpleNamespace(  # a third copy
        data={"name": path.name, "rows": 10, "data": b"x"}, node_id=NODE))
    assert wire.shipper.shipped_rows == 10  # its second acknowledgement changes nothing


def test_a_failed_send_keeps_the_part_queued(wire: Wire, tmp_path: Path) -> None:
    (path,) = write_parts(tmp_path / "worker", 1)
    wire.shipper.written(path, 10)
    wire.fail_next = 1
    assert wire.shipper.send_window() is False
    assert list(wire.shipper.queue) == [(path, 10)] and wire.shipper.send_failures == 1
    assert wire.shipper.send_window() is True
    assert wire.shipper.shipped_rows == 10


def test_no_keep_parts_deletes_a_part_only_once_acknowledged(tmp_path: Path) -> None:
    wire = Wire(tmp_path / "master", keep_parts=False)
    try:
        (path,) = write_parts(tmp_path / "worker", 1)
        wire.hold = True
        wire.shipper.written(path, 10)
        wire.shipper.send_window()
        assert path.exists()  # sent, not acknowledged: the worker's copy stays
        wire.release()
        assert not path.exists()
    finally:
        wire.shipper._greenlet.kill()


def test_finish_sends_everything_at_once_and_the_master_counts_what_was_sent(
        wire: Wire, tmp_path: Path) -> None:
    """At the stop no acknowledgement can arrive (Locust runs test_stop on the greenlet
    that receives them): finish ignores the window, and completeness is judged on what
    was sent."""
    wire.hold = True
    for path in write_parts(tmp_path / "worker", WINDOW + 2):
        wire.shipper.written(path, 10)
    assert wire.shipper.finish(deadline_s=5) is True
    report = wire.shipper.report()
    assert report["sent_rows"] == 10 * (WINDOW + 2) and report["unsent_parts"] == 0
    wire.collector.on_done(None, SimpleNamespace(
        node_id=NODE, data={"worker": "w0-1", "records": 10 * (WINDOW + 2), **report}),
        lambda _deltas: None)
    assert wire.collector.complete(NODE)
    # a worker that reports more records than it sent is not complete
    wire.collector.on_done(None, SimpleNamespace(
        node_id=NODE, data={"worker": "w0-1", "records": 10 * (WINDOW + 3), **report}),
        lambda _deltas: None)
    assert not wire.collector.complete(NODE)
