"""Probe verdicts follow the contract's own words (issue: verdicts a release manager signs).

* A target that answers exactly what the quick start documents, and no conventional extras
  (no ``created``/``owned_by`` on models, no ``code`` on errors), passes ``probe --once``:
  the missing conventional fields are *warnings*, shown as such, never failures.
* ``ratelimit_headers`` on a 401 or 404 answer fails (reason ``status``): nothing was
  checked, so it must not count as up.

The quick-start target is a small real HTTP server in a thread: the reference server
always sends the conventional fields, so it cannot play a target that omits them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from test_probe_checks import harness, run_once

from probes.config import CHECK_NAMES
from reports.build import build_report

KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
ORG_OF = {k["key"]: k["org"] for k in tomllib.loads(KEYS.read_text())["keys"]}
MODELS = [{"id": "copilot-one", "object": "model", "category": "chat"},
          {"id": "copilot-zero", "object": "model", "category": "chat"}]


class QuickStartTarget(BaseHTTPRequestHandler):
    """Only what the quick start documents: bearer keys, JSON, the sample chat shape."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the harness's client expects

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _org(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        return ORG_OF.get(key) if scheme == "Bearer" else None

    def do_GET(self) -> None:
        if self._org() is None:
            return self._send(401, {"error": {"type": "authentication_error",
                                              "message": "invalid API key"}})
        if self.path.split("?", 1)[0] != "/v1/models":
            return self._send(404, {"error": {"type": "not_found", "message": "no such path"}})
        return self._send(200, {"object": "list", "data": MODELS})

    def do_POST(self) -> None:
        org = self._org()
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        if org is None:
            return self._send(401, {"error": {"type": "authentication_error",
                                              "message": "invalid API key"}})
        messages = [*request.get("messages", []), {"role": "assistant", "content": "pong"}]
        return self._send(200, {"object": "chat.completion", "model": request.get("model"),
                                "organization_id": org, "messages": messages,
                                "usage": {"prompt_tokens": 5, "completion_tokens": 1,
                                          "total_tokens": 6}})


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # org_isolation opens one connection per key at once
    daemon_threads = True


@pytest.fixture
def quick_start_target() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), QuickStartTarget)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_undocumented_fields_are_warnings_not_failures(quick_start_target: str,
                                                        tmp_path: Path) -> None:
    config = tmp_path / "harness.toml"
    config.write_text('[probes]\nexpected_models = ["copilot-zero"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "secton_harness", "probe", "--once", "--target",
         quick_start_target, "--keys", str(KEYS), "--config", str(config), "--out",
         str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "FAIL" not in output, output
    assert "PASS (warning)" in output and "owned_by" in output, output
    # the report shows the warnings too, and they do not cost availability
    summary = build_report([tmp_path / "run"], out=tmp_path / "report").summary
    models = next(t for t in summary["uptime"]["per_target"] if t["check"] == "models_list")
    assert models["warnings"] == 1 and models["failures"] == 0
    assert summary["uptime"]["availability"] == 1.0
    assert summary["runs"][0]["verdict"]["status"] == "passed"


def test_warning_is_a_third_result(quick_start_target: str) -> None:
    results = run_once(harness([{"label": "qs", "url": quick_start_target}]))
    assert all(r.success for r in results.values()), {n: r.detail for n, r in results.items()}
    models = results["models_list"]
    assert models.result == "warning"
    assert any("created" in w for w in models.warnings)
    assert any("owned_by" in w for w in models.warnings)
    assert "warning: " in models.record()["detail"]
    assert results["auth_missing"].result == "warning"  # error body without 'code'
    assert results["chat_completion"].result == "success"


def test_ratelimit_headers_on_401_is_not_a_pass(default_server: Any, tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nalias = "x"\nkey = "sk-not-a-key-of-the-server"\n'
                    'org = "org_x"\n')
    results = run_once(harness([{"label": "ref", "url": default_server.url}]), keys=keys)
    headers = results["ratelimit_headers"]
    assert headers.status == 401
    assert not headers.success and headers.reason == "status", headers
    assert headers.result == "failure"


def test_ratelimit_headers_on_404_is_not_a_pass(quick_start_target: str) -> None:
    results = run_once(harness([{"label": "qs", "url": quick_start_target + "/wrong-base"}]))
    headers = results["ratelimit_headers"]
    assert headers.status == 404
    assert (headers.success, headers.reason) == (False, "status")
    assert set(results) == set(CHECK_NAMES)


def test_warning_is_its_own_metric_result(quick_start_target: str) -> None:
    """The exporter counts a warning under result="warning", not as a plain success, and
    its success gauge says up (a warning is a pass)."""
    from prometheus_client import CollectorRegistry

    from probes.exporter import ProbeMetrics

    results = run_once(harness([{"label": "qs", "url": quick_start_target}]))
    exporter = ProbeMetrics(CollectorRegistry(), list(results), ["qs"])
    for result in results.values():
        exporter.observe(result)
    text = exporter.exposition().decode()
    line = 'secton_probe_checks_total{{check="models_list",result="{}",target="qs"}} {}'
    assert line.format("warning", "1.0") in text
    assert line.format("success", "0.0") in text
    assert 'secton_probe_success{check="models_list",target="qs"} 1.0' in text

