"""Start a real Prometheus for a test: free loopback port, generated config, temp TSDB.

Reusable by every job's tests (probes, dashboards)::

    url, process = start_prometheus(tmp_path, ["127.0.0.1:9464"], rule_files=[rules])
    try:
        series = query(url, "secton_probe_success")
    finally:
        stop_prometheus(process)
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

READY_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_prometheus(tmp_path: Path, scrape_targets: Sequence[str],
                     rule_files: Sequence[str | Path] | None = None, *,
                     job: str = "secton-probes", scrape_interval: str = "1s",
                     binary: str | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    """Run Prometheus scraping ``scrape_targets`` (``host:port``) as job ``job``;
    returns ``(base_url, process)`` once ``/-/ready`` answers 200."""
    binary = binary or shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (Debian package 'prometheus')")
    folder = tmp_path / f"prometheus-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{"job_name": job, "scrape_interval": scrape_interval,
                            "static_configs": [{"targets": list(scrape_targets)}]}],
    }
    if rule_files:
        config["rule_files"] = [str(Path(f).resolve()) for f in rule_files]
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config_file}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}; see "
                               f"{folder / 'prometheus.log'}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as reply:
                if reply.status == 200:
                    return url, process
        except OSError:
            pass
        time.sleep(0.2)
    stop_prometheus(process)
    raise RuntimeError(f"prometheus not ready within {READY_TIMEOUT_S:.0f}s")


def stop_prometheus(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api(url: str, path: str, **params: str) -> Any:
    """GET ``/api/v1/<path>`` and return ``data`` (raises on status != success)."""
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=10) as reply:
        payload = json.loads(reply.read())
    if payload.get("status") != "success":
        raise RuntimeError(f"prometheus API {path}: {payload}")
    return payload["data"]


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """Instant query; the vector's samples (``metric`` labels and ``value``)."""
    return list(api(url, "query", query=promql)["result"])


def wait_for(url: str, promql: str, predicate: Any = bool,
             timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Poll an instant query until ``predicate(result)`` holds; the last result."""
    deadline = time.monotonic() + timeout_s
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = query(url, promql)
        if predicate(result):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{promql}: condition not met within {timeout_s}s; last {result}")
