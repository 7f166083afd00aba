"""The results store: batched parts, merge, interrupted runs, corrupt files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from secton_harness.errors import BadInput
from secton_harness.records import (
    COLUMNS,
    PARTS_DIR,
    RECORDS_FILE,
    RecordSink,
    merge_parts,
    read_records,
)


def test_batches_flush_and_merge(tmp_path: Path) -> None:
    sink = RecordSink(tmp_path, source="load", batch_size=10, flush_interval_s=3600)
    for i in range(25):
        sink.add(ts=1000.0 + i, endpoint="/v1/models", method="GET", status=200,
                 latency_s=0.001 * i)
    assert len(list((tmp_path / PARTS_DIR).glob("*.parquet"))) == 2  # 20 flushed, 5 buffered
    sink.close()
    assert not (tmp_path / PARTS_DIR).exists()
    table = read_records(tmp_path)
    assert table.num_rows == 25
    assert table.column_names == list(COLUMNS)
    frame = table.to_pandas()
    assert (frame["source"] == "load").all()
    assert frame["latency_s"].iloc[24] == pytest.approx(0.024)
    assert frame["error"].iloc[0] == ""


def test_unknown_column_is_rejected(tmp_path: Path) -> None:
    sink = RecordSink(tmp_path, batch_size=1)
    with pytest.raises(ValueError, match="unknown record column"):
        sink.add(ts=1.0, api_key="sk-nope")


def test_parts_of_a_killed_run_are_readable(tmp_path: Path) -> None:
    """A process killed outright (SIGKILL, no cleanup) keeps every flushed batch."""
    script = textwrap.dedent(f"""
        import time
        from secton_harness.records import RecordSink
        sink = RecordSink({str(tmp_path)!r}, source="probe", batch_size=5)
        for i in range(12):
            sink.add(ts=float(i), status=200)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / RECORDS_FILE).exists()
    assert read_records(tmp_path).num_rows == 10  # two full batches; 2 were only in memory
    merge_parts(tmp_path)
    assert pq.read_table(tmp_path / RECORDS_FILE).num_rows == 10


def test_merge_appends_to_existing_records(tmp_path: Path) -> None:
    with RecordSink(tmp_path) as sink:
        sink.add(ts=2.0)
    with RecordSink(tmp_path, part_prefix="worker1") as sink:
        sink.add(ts=1.0)
    table = read_records(tmp_path)
    assert table.column("ts").to_pylist() == [1.0, 2.0]


def test_corrupt_records_file(tmp_path: Path) -> None:
    (tmp_path / RECORDS_FILE).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(BadInput, match="records.parquet: records file is corrupt"):
        read_records(tmp_path)


def test_truncated_records_file(tmp_path: Path) -> None:
    with RecordSink(tmp_path) as sink:
        for i in range(100):
            sink.add(ts=float(i))
    data = (tmp_path / RECORDS_FILE).read_bytes()
    (tmp_path / RECORDS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput, match="corrupt or truncated"):
        read_records(tmp_path)


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no records.parquet"):
        read_records(tmp_path)


def test_time_based_flush(tmp_path: Path) -> None:
    sink = RecordSink(tmp_path, batch_size=10_000, flush_interval_s=0.05)
    sink.add(ts=1.0)
    time.sleep(0.06)
    sink.add(ts=2.0)  # the flush is due: both rows reach disk
    assert read_records(tmp_path).num_rows == 2
    sink.close()


def test_tuples_and_dicts_make_the_same_table() -> None:
    """The load generator's tuple records convert to exactly what the dict form gives."""
    from secton_harness.records import rows_to_table, tuples_to_table

    fields = ("ts", "endpoint", "status", "latency_s", "error", "prompt_tokens", "success")
    tuples = [(1.0, "/v1/models", 200, 0.01, "", None, True),
              (2.0, "/v1/chat/completions", 0, 1.5, "timeout", 12, False),
              (3.0, "/v1/models", 429, 0.002, None, None, False)]
    dicts = [dict(zip(fields, row, strict=True)) for row in tuples]
    dicts[2].pop("error")  # left out and None both take the column default
    defaults = {"source": "load", "worker": "w1"}
    assert tuples_to_table(tuples, fields, defaults).equals(rows_to_table(dicts, defaults))
    assert tuples_to_table([], fields, defaults).num_rows == 0
    with pytest.raises(ValueError, match="unknown record column"):
        tuples_to_table(tuples, (*fields[:-1], "nope"))


HUGE = 99999999999999999999  # > int64: what a hostile X-RateLimit-Remaining can carry


def test_a_value_no_column_can_hold_costs_only_that_value(tmp_path: Path) -> None:
    """A value Arrow cannot store (an int beyond int64) once lost the whole batch; now the
    row is converted alone, the value becomes null and ``detail`` names it."""
    sink = RecordSink(tmp_path, source="probe", batch_size=1000, flush_interval_s=3600)
    for i in range(5):
        sink.add(ts=float(i), status=200, ratelimit_remaining=7, detail="ok")
    sink.add(ts=5.0, status=200, ratelimit_remaining=HUGE, prompt_tokens=-HUGE, detail="x")
    sink.add(ts=6.0, status=429, ratelimit_limit=10)
    sink.close()
    frame = read_records(tmp_path).to_pandas()
    assert len(frame) == 7
    bad = frame[frame["ts"] == 5.0].iloc[0]
    assert bad["status"] == 200 and bad["source"] == "probe"
    assert bad["ratelimit_remaining"] != bad["ratelimit_remaining"]  # null (NaN in pandas)
    assert bad["detail"].startswith("x; record: ratelimit_remaining 99999999999999999999 "
                                    "does not fit int64")
    assert "prompt_tokens" in bad["detail"]
    assert list(frame["ratelimit_remaining"][:5]) == [7] * 5
    assert frame[frame["ts"] == 6.0].iloc[0]["ratelimit_limit"] == 10
    assert frame[frame["ts"] == 6.0].iloc[0]["detail"] == ""


def test_tuple_records_isolate_a_misfit_value_too() -> None:
    """The load generator's path (tuples, column-wise) falls back to row-wise isolation."""
    from secton_harness.records import tuples_to_table

    fields = ("ts", "status", "ratelimit_remaining", "total_tokens")
    table = tuples_to_table([(1.0, 200, 3, 10), (2.0, 200, HUGE, 10**30)], fields,
                            {"source": "load"})
    assert table.num_rows == 2
    assert table.column("ratelimit_remaining").to_pylist() == [3, None]
    assert table.column("total_tokens").to_pylist() == [10, None]
    assert table.column("detail").to_pylist()[0] == ""
    assert "ratelimit_remaining" in table.column("detail").to_pylist()[1]


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path: Path) -> None:
    sink = RecordSink(tmp_path, batch_size=1000, flush_interval_s=3600)
    sink.add(ts=1.0, status=200)
    parts = tmp_path / PARTS_DIR
    parts.rmdir()
    parts.write_text("not a directory")  # every write into it fails (even as root)
    with pytest.raises(OSError):
        sink.flush()
    parts.unlink()
    parts.mkdir()
    sink.add(ts=2.0, status=200)
    sink.close()
    assert read_records(tmp_path).column("ts").to_pylist() == [1.0, 2.0]


def test_rows_waiting_for_a_failing_disk_are_bounded(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import secton_harness.records as records

    monkeypatch.setattr(records, "MAX_WAITING_ROWS", 3)
    sink = RecordSink(tmp_path, batch_size=1000, flush_interval_s=3600)
    parts = tmp_path / PARTS_DIR
    parts.rmdir()
    parts.write_text("not a directory")
    for i in range(5):
        sink.add(ts=float(i))
        with pytest.raises(OSError):
            sink.flush()
    assert sink.dropped == 2
    parts.unlink()
    parts.mkdir()
    sink.close()
    assert read_records(tmp_path).column("ts").to_pylist() == [2.0, 3.0, 4.0]
