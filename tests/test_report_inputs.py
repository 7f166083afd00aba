"""Bad and partial inputs through the real CLI: one-line error and exit 2, or a report that
says what is missing; never a traceback. A FAILED verdict (a baseline regression
included) exits 1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from report_data import load_rows, make_run, probe_rows

from reports.build import build_report
from secton_harness.errors import BadInput
from secton_harness.records import RecordSink
from secton_harness.runfolder import RunFolder


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secton_harness", "report",
                           *map(str, args)], capture_output=True, text=True, timeout=120)


def assert_bad_input(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("good") / "run", load=load_rows(stage_rates=(20,)),
                    probe=probe_rows()[:40])


def _copy_run(good: Path, dest: Path) -> Path:
    import shutil
    shutil.copytree(good, dest, ignore=shutil.ignore_patterns("report*", "summary.json"))
    return dest


def test_missing_folder(tmp_path: Path) -> None:
    assert_bad_input(cli(tmp_path / "nope"), "not a directory")


def test_folder_without_run_json_or_records(tmp_path: Path) -> None:
    assert_bad_input(cli(tmp_path), "run.json: missing")


def test_corrupt_run_json(tmp_path: Path, good_run: Path) -> None:
    run = _copy_run(good_run, tmp_path / "r")
    (run / "run.json").write_text("{not json")
    assert_bad_input(cli(run), "run.json: not valid JSON")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_records_file(tmp_path: Path, good_run: Path, damage: str) -> None:
    run = _copy_run(good_run, tmp_path / "r")
    file = run / "records.parquet"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"PAR1 nonsense")
    assert_bad_input(cli(run), "records.parquet: records file is corrupt or truncated")


def test_missing_records_file_that_run_json_counts(tmp_path: Path, good_run: Path) -> None:
    """run.json counts records but records.parquet is gone: one line naming the file,
    exit 2 (it said "FAILED: recorded nothing", exit 1: a verdict on a lost file)."""
    import pyarrow.parquet as pq

    run = _copy_run(good_run, tmp_path / "r")
    said = pq.read_metadata(run / "records.parquet").num_rows
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "records": said}))  # as load writes
    (run / "records.parquet").unlink()
    assert_bad_input(cli(run), f"records.parquet: missing, though run.json says {said} "
                               "records were taken")


def test_truncated_part_file(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", load=load_rows(stage_rates=(20,)), merge=False)
    part = next((run / "records.parts").glob("*.parquet"))
    part.write_bytes(part.read_bytes()[:100])
    assert_bad_input(cli(run), "records file is corrupt or truncated")


def test_corrupt_ratelimit_json(tmp_path: Path, good_run: Path) -> None:
    run = _copy_run(good_run, tmp_path / "r")
    (run / "ratelimit.json").write_text("[1, 2")
    assert_bad_input(cli(run), "ratelimit.json: not valid JSON")


@pytest.mark.parametrize(("option", "fragment"), [
    (["--slo", "1.5"], "--slo"), (["--bounds", "p97=5%"], "--bounds: 'p97=5%'"),
    (["--bounds", "p95=lots"], "--bounds: p95: 'lots'")])
def test_bad_options(good_run: Path, tmp_path: Path, option: list[str], fragment: str) -> None:
    assert_bad_input(cli(good_run, "--out", tmp_path, *option), fragment)


def test_missing_run_json_with_records_still_reports(tmp_path: Path, good_run: Path) -> None:
    run = _copy_run(good_run, tmp_path / "r")
    (run / "run.json").unlink()
    proc = cli(run)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("report.html")
    html = (run / "report.html").read_text()
    assert "run.json is missing" in html and "<h3>Capacity</h3>" in html


def test_empty_run_reports_what_is_missing(tmp_path: Path) -> None:
    run = RunFolder.start(tmp_path / "empty", command="load", target="http://127.0.0.1:9")
    RecordSink(run.path, source="load").close()
    run.finish("passed")
    assert (run.path / "records.parquet").exists()
    proc = cli(run.path)
    # a report is written, but a run that measured nothing fails, so `report` exits 1
    # (it said 0 before: a CI gate on `report` passed a FAILED verdict)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip().endswith("report.html")
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["records"] == 0
    assert not summary["capacity"]["available"] and not summary["uptime"]["available"]
    md = (run.path / "report.md").read_text()
    assert "records file holds no records" in md and "recorded nothing to analyse" in md
    assert summary["verdict"]["status"] == "failed"  # a run that measured nothing
    assert "recorded nothing" in summary["runs"][0]["verdict"]["reasons"][0]


def test_run_that_recorded_nothing(tmp_path: Path) -> None:
    run = RunFolder.start(tmp_path / "nothing", command="probe", target=None)
    run.finish("interrupted")
    proc = cli(run.path)
    # the report is written; the run stopped early, so the verdict is FAILED: exit 1
    assert proc.returncode == 1, proc.stderr
    assert "verdict: FAILED" in proc.stderr
    html = (run.path / "report.html").read_text()
    assert "the run recorded nothing" in html and "outcome is &#39;interrupted&#39;" in html


def test_baseline_regression_exits_1(tmp_path: Path) -> None:
    base = make_run(tmp_path / "base", load=load_rows(stage_rates=(20, 40)))
    same = make_run(tmp_path / "same", load=load_rows(seed=1, stage_rates=(20, 40)))
    slow = make_run(tmp_path / "slow", load=load_rows(seed=1, slow=1.6, stage_rates=(20, 40)))
    ok = cli(same, "--baseline", base, "--out", tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr
    bad = cli(slow, "--baseline", base, "--out", tmp_path / "bad")
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.strip() == str(tmp_path / "bad" / "report.html")
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert "p95" in summary["baseline"]["regressions"]
    row = next(r for r in summary["baseline"]["rows"] if r["metric"] == "p95")
    assert row["current"] / row["baseline"] > 1.2
    md = (tmp_path / "bad" / "report.md").read_text()
    assert "regression(s): " in md and "p95" in md
    # a loose enough bound lets the same run pass
    loose = cli(slow, "--baseline", base, "--out", tmp_path / "loose",
                "--bounds", "p50=200%,p95=200%,p99=200%")
    assert loose.returncode == 0, loose.stderr


def test_a_failed_verdict_exits_1(tmp_path: Path) -> None:
    """README and docs/guarantees.md: exit 1 when thresholds or expectations fail. The
    report exited 0 on a FAILED verdict, so a CI gate on `report` passed silently."""
    failing = [{"scope": "all", "threshold": "error_rate < 0.001", "actual": 0.02,
                "passed": False, "resolved": "error_rate (0.02) < 0.001"}]
    bad = make_run(tmp_path / "bad", load=load_rows(stage_rates=(20,)), thresholds=failing)
    good = make_run(tmp_path / "good", load=load_rows(stage_rates=(20,)))
    done = cli(bad, good, "--out", tmp_path / "out")
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == str(tmp_path / "out" / "report.html")  # still written
    assert "verdict: FAILED" in done.stderr and "error_rate (0.02) < 0.001" in done.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["verdict"][
        "status"] == "failed"
    passed = cli(good, "--out", tmp_path / "out2")
    assert passed.returncode == 0 and "verdict: PASSED" in passed.stderr, passed.stderr


def test_help_says_what_the_command_does() -> None:
    """The help said the runs' "records are combined"; they never are (docs/reports.md)."""
    done = subprocess.run([sys.executable, "-m", "secton_harness", "report", "--help"],
                          capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "combined" not in text
    assert "never merged across runs" in text
    assert "1 when it is FAILED" in text


@pytest.mark.parametrize(("option", "fragment"), [
    ({"knee_latency_ratio": 0.5}, "--knee-latency: 0.5 must be"),
    ({"knee_latency_ratio": float("nan")}, "--knee-latency: nan must be"),
    ({"knee_latency_ratio": float("inf")}, "--knee-latency: inf must be"),
    ({"knee_error_rise": 1.5}, "--knee-errors: 1.5 must be"),
    ({"knee_error_rise": float("nan")}, "--knee-errors: nan must be")])
def test_knee_options_out_of_range(good_run: Path, tmp_path: Path, option: dict[str, float],
                                   fragment: str) -> None:
    """`--knee-latency -1 --knee-errors -5` printed "p95 32.2 ms > -1 × 32.2 ms", exit 0
    (the CLI rows, exit 2 and one line, are in tests/test_bad_input.py)."""
    with pytest.raises(BadInput, match=re.escape(fragment)):
        build_report([good_run], out=tmp_path, **option)
    assert not (tmp_path / "report.html").exists()
    build_report([good_run], out=tmp_path, knee_latency_ratio=1, knee_error_rise=0)
