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
