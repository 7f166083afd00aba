"""run.json: written at start, rewritten at the end, never holding a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secton_harness.errors import BadInput
from secton_harness.runfolder import RUN_FILE, RunFolder, read_run_info, scrub


def test_start_and_finish(tmp_path: Path) -> None:
    run = RunFolder.start(tmp_path / "r1", command="load", argv=["load"],
                          config={"target": {"url": "http://x"}}, target="http://x")
    info = read_run_info(run.path)
    assert info["outcome"] == "running"
    assert info["ended_at"] is None
    assert "locust" in info["versions"] or "python" in info["versions"]
    run.finish("interrupted", requests=3)
    info = read_run_info(run.path)
    assert info["outcome"] == "interrupted"
    assert info["requests"] == 3
    assert info["ended_at"] >= info["started_at"]


def test_bad_outcome_is_a_bug(tmp_path: Path) -> None:
    run = RunFolder.start(tmp_path, command="x")
    with pytest.raises(ValueError):
        run.finish("sort-of")


def test_scrub_removes_secrets() -> None:
    config = {"keys": [{"alias": "a", "key": "sk-secret-value-1234"}], "Token": "t",
              "nested": {"api_key": "k", "ok": 1}}
    text = json.dumps(scrub(config))
    assert "sk-secret" not in text and '"t"' not in text and '"k"' not in text
    assert '"ok": 1' in text


def test_a_secret_named_section_is_scrubbed_inside_not_lost() -> None:
    """ratelimit's run.json config.expect.key is the documented per-key policy, a table:
    it stays, scrubbed inside (it was replaced by "<redacted>" whole)."""
    config = {"expect": {"key": {"burst": 10, "sustained_per_min": 600,
                                 "token": "sk-inside-9876"}},
              "key": ["sk-in-a-list-1234"]}
    scrubbed = scrub(config)
    assert scrubbed["expect"]["key"]["burst"] == 10
    assert scrubbed["expect"]["key"]["token"] == "<redacted>"
    assert scrubbed["key"] == "<redacted>"


def test_config_is_scrubbed_in_run_json(tmp_path: Path) -> None:
    run = RunFolder.start(tmp_path, command="x", config={"key": "sk-abcdefabcdef"})
    assert "sk-abcdef" not in (run.path / RUN_FILE).read_text()


def test_unwritable_run_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BadInput, match="cannot create the run folder"):
        RunFolder.start(blocker / "sub", command="x")


@pytest.mark.parametrize("name", ["run.json", "records.parquet", "ratelimit.json"])
def test_a_run_file_that_is_a_directory_is_refused_first(tmp_path: Path, name: str) -> None:
    """An existing --out in which a file the run writes is a directory: one line before
    the run (it was a traceback, at once for run.json, at the end for the others)."""
    (tmp_path / name).mkdir()
    with pytest.raises(BadInput, match=f"{name} is a directory"):
        RunFolder.start(tmp_path, command="x")
    (tmp_path / name).rmdir()
    (tmp_path / "records.parts").write_text("")
    with pytest.raises(BadInput, match="records.parts is a file"):
        RunFolder.start(tmp_path, command="x")


@pytest.mark.parametrize(("content", "expected"), [
    (None, "run.json: missing"),
    ("{not json", "run.json: not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
])
def test_read_run_info_errors(tmp_path: Path, content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / RUN_FILE).write_text(content)
    with pytest.raises(BadInput, match=expected):
        read_run_info(tmp_path)


def test_read_run_info_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a directory"):
        read_run_info(tmp_path / "nope")


# ----------------------------------------- a load whose CLI was killed (one writer only)


def _running_load(path: Path) -> RunFolder:
    from secton_harness.records import RecordSink

    run = RunFolder.start(path, command="load")
    with RecordSink(path, source="load") as sink:
        sink.extend([{"ts": 1.0, "endpoint": "/v1/models", "status": 200}] * 3)
    return run


def _reaped() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_child_finishes_run_json_only_when_the_cli_is_gone(tmp_path: Path) -> None:
    import os

    from loadtests.orphaned import finish_orphaned_run

    _running_load(tmp_path)
    assert not finish_orphaned_run(tmp_path, os.getpid())  # the CLI lives: it writes
    assert read_run_info(tmp_path)["outcome"] == "running"
    assert finish_orphaned_run(tmp_path, _reaped())
    info = read_run_info(tmp_path)
    assert info["outcome"] == "interrupted" and info["stopped_by"] == "cli_gone"
    assert info["records"] == 3 and "kept its 3 records" in info["reason"]
    assert "thresholds" not in info and info["ended_at"] >= info["started_at"]
    # written once: an outcome that is no longer "running" is never touched again
    assert not finish_orphaned_run(tmp_path, _reaped())


def test_a_zombie_cli_is_gone_and_a_folder_without_run_json_is_left_alone(
        tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from loadtests.orphaned import alive, finish_orphaned_run

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while alive(zombie.pid) and time.monotonic() < deadline:  # exited, not reaped yet
        time.sleep(0.05)
    try:
        assert not alive(zombie.pid)
        (tmp_path / "hand").mkdir()  # Locust run by hand: no run.json, nothing written
        assert not finish_orphaned_run(tmp_path / "hand", zombie.pid)
        assert not (tmp_path / "hand" / RUN_FILE).exists()
        _running_load(tmp_path / "run")
        assert finish_orphaned_run(tmp_path / "run", zombie.pid)
    finally:
        zombie.wait()
