"""`secton-harness dashboards push` against a Grafana HTTP API double (the real CLI, as a
subprocess): folder created once, dashboards upserted by uid with overwrite, one-line
errors with exit 2 for bad credentials and an unreachable host."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from grafana_contract_server import GrafanaContractServer

from dashboards.export import BOARDS

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "glsa_contract_test_token"


def run_push(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    return subprocess.run([sys.executable, "-m", "secton_harness", "dashboards", "push",
                           *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**clean, **(env or {})})


def saves(grafana: GrafanaContractServer) -> list:
    return [r for r in grafana.requests if r.method == "POST" and r.path == "/api/dashboards/db"]


def test_push_twice_is_idempotent_and_payloads_match_the_api() -> None:
    with GrafanaContractServer(TOKEN) as grafana:
        first = run_push("--url", grafana.url, "--token", TOKEN)
        assert first.returncode == 0, first.stderr
        assert set(grafana.dashboards) == set(BOARDS)
        assert {d["version"] for d in grafana.dashboards.values()} == {1}
        ids = {uid: d["id"] for uid, d in grafana.dashboards.items()}

        second = run_push("--url", grafana.url, "--token", TOKEN)
        assert second.returncode == 0, second.stderr
        assert set(grafana.dashboards) == set(BOARDS)          # same uids, no duplicates
        assert {d["version"] for d in grafana.dashboards.values()} == {2}
        assert {uid: d["id"] for uid, d in grafana.dashboards.items()} == ids
        assert list(grafana.folders) == ["secton"]             # created once, then found
        assert [r.path for r in grafana.requests if r.method == "POST"].count(
            "/api/folders") == 1
        assert "found" in second.stdout and "version 2" in second.stdout

        for request in saves(grafana):
            assert request.headers["authorization"] == f"Bearer {TOKEN}"
            assert request.headers["content-type"].startswith("application/json")
            body = request.body
            assert body["overwrite"] is True
            assert body["folderUid"] == "secton"
            assert body["dashboard"]["uid"] in BOARDS
            assert body["dashboard"]["id"] is None
            assert body["dashboard"]["title"]
        assert len(saves(grafana)) == 2 * len(BOARDS)
        assert all(d["folderUid"] == "secton" for d in grafana.dashboards.values())


def test_push_reads_env_and_reuses_a_folder_found_by_title() -> None:
    with GrafanaContractServer(TOKEN) as grafana:
        grafana.folders["abc123"] = {"id": 99, "uid": "abc123", "title": "Team SLOs",
                                     "url": "/dashboards/f/abc123/team-slos", "version": 1}
        result = run_push("--folder", "Team SLOs",
                          env={"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": TOKEN})
        assert result.returncode == 0, result.stderr
        assert list(grafana.folders) == ["abc123"]
        assert {d["folderUid"] for d in grafana.dashboards.values()} == {"abc123"}


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bad_token_is_one_line_exit_2() -> None:
    with GrafanaContractServer(TOKEN) as grafana:
        line = one_error_line(run_push("--url", grafana.url, "--token", "wrong"))
        assert "bad credentials" in line and "401" in line
        assert "wrong" not in line                              # the token is never echoed
        assert not grafana.dashboards and not grafana.folders


def test_viewer_token_is_permission_denied() -> None:
    with GrafanaContractServer(TOKEN, viewer_tokens={"viewer"}) as grafana:
        line = one_error_line(run_push("--url", grafana.url, "--token", "viewer"))
        assert "permission denied" in line and "403" in line
        assert not grafana.dashboards


def test_unreachable_host_is_one_line_exit_2() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]                           # bound, never listening
        line = one_error_line(run_push("--url", f"http://127.0.0.1:{port}", "--token", TOKEN))
    assert "unreachable" in line and f"127.0.0.1:{port}" in line


def test_missing_url_or_token_is_bad_input() -> None:
    assert "--url" in one_error_line(run_push("--token", TOKEN))
    assert "--token" in one_error_line(run_push("--url", "http://127.0.0.1:3000"))
    assert "http(s)" in one_error_line(run_push("--url", "localhost:3000", "--token", TOKEN))
