"""The load generator's record writer: a misfit value never costs the batch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from secton_harness.records import merge_parts, read_records


def test_a_count_beyond_int64_keeps_every_load_record(tmp_path: Path) -> None:
    """``X-RateLimit-Remaining: 99999999999999999999`` once made the writer thread drop the
    batch silently (``load`` recorded nothing and exited 0). Run in a child: the recorder
    needs gevent, which this process must not import."""
    script = textwrap.dedent(f"""
        from loadtests.recorder import RECORD_FIELDS, Recorder
        recorder = Recorder({str(tmp_path)!r}, worker="w1")
        for i in range(4):
            row = dict.fromkeys(RECORD_FIELDS)
            row.update(ts=float(i), endpoint="/v1/models", method="GET", status=200,
                       latency_s=0.01, success=True,
                       ratelimit_remaining=99999999999999999999 if i == 2 else 5)
            recorder.add(tuple(row[f] for f in RECORD_FIELDS))
        recorder.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    merge_parts(tmp_path)
    rows = read_records(tmp_path).to_pylist()
    assert [r["ts"] for r in rows] == [0.0, 1.0, 2.0, 3.0]
    assert [r["ratelimit_remaining"] for r in rows] == [5, 5, None, 5]
    assert "ratelimit_remaining 99999999999999999999" in rows[2]["detail"]
    assert all(r["source"] == "load" and r["worker"] == "w1" for r in rows)


def test_a_failed_write_is_retried_with_the_next_batch(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import pathlib
        from loadtests.recorder import RECORD_FIELDS, Recorder
        parts = pathlib.Path({str(tmp_path)!r}) / "records.parts"
        recorder = Recorder({str(tmp_path)!r}, worker="w1")
        def row(ts):
            values = dict.fromkeys(RECORD_FIELDS)
            values.update(ts=ts, status=200, latency_s=0.01)
            return tuple(values[f] for f in RECORD_FIELDS)
        recorder.add(row(1.0))
        parts.rmdir()
        parts.write_text("not a directory")  # this batch's write fails
        recorder.flush()
        recorder.wait()
        parts.unlink()
        parts.mkdir()
        recorder.add(row(2.0))
        recorder.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "writing a batch failed" in done.stderr
    merge_parts(tmp_path)
    assert read_records(tmp_path).column("ts").to_pylist() == [1.0, 2.0]
