"""`secton-harness probe` as a user runs it: exit codes, the table, SIGTERM, run folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

from conftest import free_port, write_toml

from probes.config import CHECK_NAMES
from secton_harness.records import PARTS_DIR, read_records
from simulator.config import DEFAULT_CONFIG

CLI = [sys.executable, "-m", "secton_harness"]


def probe(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "probe", *args], capture_output=True, text=True,
                          timeout=timeout, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_once_exits_0_and_prints_the_table(default_server: Any, demo_keys_file: Path,
                                            tmp_path: Path) -> None:
    done = probe("--once", "--target", default_server.url, "--keys", str(demo_keys_file),
                 "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in CHECK_NAMES:
        assert name in done.stdout
    assert "FAIL" not in done.stdout and "all checks passed" in done.stdout
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["outcome"] == "passed"
    assert "sk-demo" not in (tmp_path / "run" / "run.json").read_text()


def test_once_exits_1_with_the_reason_when_a_check_fails(reference_server: Any,
                                                         demo_keys_file: Path,
                                                         tmp_path: Path) -> None:
    config = tomllib.loads(DEFAULT_CONFIG.read_text()) | {"faults": {"error_500": 1.0}}
    server = reference_server(config)
    done = probe("--once", "--target", server.url, "--label", "staging", "--keys",
                 str(demo_keys_file), "--out", str(tmp_path / "run"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stdout and "expected [STATUS] == 200, got 500" in done.stdout
    assert "staging" in done.stdout
    assert json.loads((tmp_path / "run" / "run.json").read_text())["outcome"] == "failed"


def test_once_json_and_junit_carry_the_verdict(reference_server: Any, demo_keys_file: Path,
                                               tmp_path: Path) -> None:
    """--json - (stdout holds only the JSON) and --junit: one case per check, the failing
    ones with their reason; the environment names the target (SECTON_BASE_URL)."""
    import xml.etree.ElementTree as ET

    config = tomllib.loads(DEFAULT_CONFIG.read_text()) | {"faults": {"error_500": 1.0}}
    server = reference_server(config)
    junit = tmp_path / "probe.xml"
    done = subprocess.run(
        [*CLI, "probe", "--once", "--keys", str(demo_keys_file), "--out",
         str(tmp_path / "run"), "--json", "-", "--junit", str(junit)],
        capture_output=True, text=True, timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "SECTON_BASE_URL": server.url})
    assert done.returncode == 1, done.stdout + done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["outcome"] == "failed" and verdict["exit_code"] == 1
    failing = {c["check"] for c in verdict["checks"] if c["result"] == "failure"}
    assert "models_list" in failing
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert {c.get("name") for c in cases} == {f"default: {c['check']}"
                                              for c in verdict["checks"]}
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {f"default: {name}" for name in failing}
    assert "sk-demo" not in done.stdout + junit.read_text()


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = probe("--once", "--target", "http://127.0.0.1:1", "--duration", "5x")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--duration" in done.stderr
    bad = write_toml(tmp_path / "h.toml", {"probes": {"checks": {"chat": {"interval": "5x"}}}})
    done = probe("--once", "--config", str(bad), "--target", "http://127.0.0.1:1")
    assert done.returncode == 2 and "probes.checks" in done.stderr
    assert "Traceback" not in done.stderr
    done = probe("--once")  # no target anywhere
    assert done.returncode == 2 and "no target" in done.stderr


def test_sigterm_stops_cleanly_with_every_record(default_server: Any, demo_keys_file: Path,
                                                 tmp_path: Path) -> None:
    config = write_toml(tmp_path / "harness.toml", {
        "targets": [{"label": "ref", "url": default_server.url}],
        "probes": {"interval": "0.2s", "jitter": 0.1},
    })
    port = free_port()
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [*CLI, "probe", "--config", str(config), "--keys", str(demo_keys_file), "--port",
         str(port), "--out", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 20
        seen = ""
        while time.monotonic() < deadline and "auth_valid" not in seen:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as reply:
                    seen = reply.read().decode()
                if 'secton_probe_success{check="auth_valid"' not in seen:
                    seen = ""
            except OSError:
                pass
            time.sleep(0.2)
        assert seen, "exporter never showed a result"
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    info = json.loads((run_dir / "run.json").read_text())
    # a signal is the service's normal end: the window is judged on its results
    assert info["outcome"] == "passed" and info["stopped_by"] == "SIGTERM"
    assert not (run_dir / PARTS_DIR).exists()  # merged
    rows = read_records(run_dir).to_pylist()
    assert len(rows) == info["records"] >= 8
    assert {r["check"] for r in rows} >= {"auth_valid", "auth_missing", "models_list"}
    assert all(r["source"] == "probe" and r["target"] == "ref" for r in rows)
    assert "passed (stopped by SIGTERM)" in out


def test_a_window_in_which_no_check_finished_never_passes(demo_keys_file: Path,
                                                          tmp_path: Path) -> None:
    """A target that accepts connections and never answers, a 0.2 s window: no check
    finishes (the rest are cancelled at the stop), so there is nothing to pass on; the
    outcome is failed and the exit 1, never "passed" over zero results."""
    import asyncio
    import socket

    from probes.service import ProbeRun

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        run = ProbeRun.prepare(None, url, "silent", demo_keys_file, tmp_path / "run")
        code = asyncio.run(run.continuous(0, "127.0.0.1", 0.2))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["records"] == 0 and info["outcome"] == "failed" and code == 1, info


def test_org_isolation_skip_names_the_env_key(default_server: Any, tmp_path: Path) -> None:
    """With ``SECTON_API_KEY`` and no ``--keys`` the skip names where the one key came
    from (it used to say "the keys file has 1" though no keys file was given)."""
    done = subprocess.run([*CLI, "probe", "--once", "--target", default_server.url, "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "250", "PATH": "/usr/bin:/bin",
                               "SECTON_API_KEY": "sk-demo-alpha-1"})
    assert done.returncode == 0, done.stdout + done.stderr
    skip = [line for line in done.stdout.splitlines() if "│ org_isolation" in line]
    assert len(skip) == 1 and "SKIP" in skip[0], done.stdout
    assert "1 key (from SECTON_API_KEY)" in skip[0] and "keys file" not in skip[0]
