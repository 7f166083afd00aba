"""``load --processes``: the Locust master listens on loopback only, never on every
interface (a worker from anywhere on the network could otherwise join the run)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import ROOT, write_toml

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    found = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections
                  if c.status == psutil.CONN_LISTEN}
    return found


def test_processes_master_binds_loopback(default_server: Any, tmp_path: Path) -> None:
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "4s", "endpoints": {"models": {"rate": "2/s", "users": 1}}})
    child = subprocess.Popen(
        [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
         "--target", default_server.url, "--keys", str(KEYS),
         "--out", str(tmp_path / "run"), "--processes", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    master_ports: set[int] = set()
    seen: set[tuple[str, int]] = set()
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            tree = {child.pid}
            try:
                for proc in psutil.Process(child.pid).children(recursive=True):
                    tree.add(proc.pid)
                    cmdline = proc.cmdline()
                    if "--master-bind-port" in cmdline:
                        master_ports.add(int(cmdline[cmdline.index("--master-bind-port") + 1]))
            except psutil.Error:
                pass
            seen |= _listening(tree)
            if master_ports and any(port in master_ports for _ip, port in seen):
                break
            time.sleep(0.2)
        child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    master = {(ip, port) for ip, port in seen if port in master_ports}
    assert master, (master_ports, seen)
    assert {ip for ip, _port in master} == {"127.0.0.1"}, master
