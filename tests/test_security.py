"""No command ever writes or prints an API key.

One reference server (started through ``secton-harness serve``, its output captured) is
configured with distinctive canary keys (``sk-LEAKCANARY-<random hex>``); every command
runs against it with those keys: ``probe --once``, ``probe`` continuous (its ``/metrics``
scraped), ``load``, ``ratelimit``, ``report`` over all their run folders and ``dashboards
export``. Then every file under the test folder (run folders, Parquet files — as bytes and
as decoded values, JSON, HTML, Markdown, logs) and everything each command printed is
searched for each key, for its prefix without the last four characters (the most the
harness may show is ``sk-...`` plus the last 4) and for its base64 forms (every alignment,
so a key inside ``Basic`` credentials or a longer base64 blob is caught too).

One test function, because the commands share the server and the report reads the other
runs' folders; each leak names the command or file it came from.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import free_port, write_toml

pytestmark = pytest.mark.slow

CANARIES = [f"sk-LEAKCANARY-{secrets.token_hex(12)}" for _ in range(3)]
ORGS = ["org_alpha", "org_alpha", "org_beta"]
ALIASES = ["c1", "c2", "d1"]


def needles(key: str) -> list[bytes]:
    """The key, the key without its last 4 characters, and base64 in every alignment."""
    raw = key.encode()
    found = [raw, raw[:-4]]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        # Drop the characters that mix padding or the end into the key's bits.
        inner = encoded[4:-4] if pad else encoded[:-4]
        found += [inner, inner.replace(b"+", b"-").replace(b"/", b"_")]
    return found


def leaks_in(data: bytes, where: str) -> list[str]:
    return [f"{where}: contains {needle[:12]!r}... (canary {index})"
            for index, key in enumerate(CANARIES) for needle in needles(key) if needle in data]


def scan_tree(root: Path) -> tuple[list[str], int]:
    problems: list[str] = []
    count = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name in ("keys.toml", "sim.toml"):
            continue
        count += 1
        data = path.read_bytes()
        problems += leaks_in(data, str(path.relative_to(root)))
        if path.suffix == ".parquet":  # compressed pages hide strings from a byte scan
            values = repr(pq.read_table(path).to_pylist()).encode()
            problems += leaks_in(values, f"{path.relative_to(root)} (decoded)")
    return problems, count


def run(args: list[str], log: dict[str, bytes], name: str, cwd: Path,
        timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([sys.executable, "-m", "secton_harness", *args], cwd=cwd,
                          capture_output=True, timeout=timeout)
    log[name] = done.stdout + b"\n" + done.stderr
    return done


def test_no_command_leaks_a_key(tmp_path: Path) -> None:
    keys = [{"alias": a, "key": k, "org": o} for a, k, o in zip(ALIASES, CANARIES, ORGS,
                                                                  strict=True)]
    sim = write_toml(tmp_path / "sim.toml", {
        "limits": {"algorithm": "fixed_window", "key": {"limit": 8, "window_s": 1},
                   "org": {"limit": 14, "window_s": 1}},
        "latency": {"base_ms": 1, "per_token_ms": 0, "jitter_ms": 0},
        "keys": keys})
    keys_file = write_toml(tmp_path / "keys.toml", {"keys": keys})
    scenario = write_toml(tmp_path / "scenario.toml", {
        "duration": "3s", "endpoints": {"models": {"rate": "4/s"}, "chat": {"rate": "2/s"}},
        "thresholds": {"all": ["error_rate < 1"]}})
    outputs: dict[str, bytes] = {}
    port = free_port()
    serve_out = (tmp_path / "serve.out").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "secton_harness", "serve", "--config", str(sim), "--port",
         str(port)], stdout=serve_out, stderr=subprocess.STDOUT, cwd=tmp_path)
    target = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while b"serving on" not in (tmp_path / "serve.out").read_bytes():
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.1)
        common = ["--target", target, "--keys", str(keys_file)]

        once = run(["probe", "--once", *common, "--out", "probe-once"], outputs,
                   "probe --once", tmp_path)
        assert once.returncode in (0, 1), once.stderr[-800:]
        assert (tmp_path / "probe-once" / "run.json").exists()

        metrics_port = free_port()
        continuous = subprocess.Popen(
            [sys.executable, "-m", "secton_harness", "probe", *common, "--out", "probe-cont",
             "--port", str(metrics_port), "--duration", "4s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        scraped = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and b"secton_probe_success{" not in scraped:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                    scraped = r.read()
            except OSError:
                time.sleep(0.2)
        out, err = continuous.communicate(timeout=60)
        outputs["probe continuous"] = out + err
        outputs["probe /metrics"] = scraped
        assert b"secton_probe_success{" in scraped
        assert continuous.returncode in (0, 1), err[-800:]

        load = run(["load", "--scenario", str(scenario), *common, "--out", "load"], outputs,
                   "load", tmp_path)
        assert load.returncode in (0, 1), load.stderr[-800:]

        mapped = run(["ratelimit", *common, "--out", "rl", "--max-duration", "40s"],
                     outputs, "ratelimit", tmp_path)
        assert mapped.returncode in (0, 1), mapped.stderr[-800:]
        assert (tmp_path / "rl" / "ratelimit.json").exists()

        report = run(["report", "probe-once", "probe-cont", "load", "rl", "--out", "report"],
                     outputs, "report", tmp_path)
        # 1 when a run above failed (the report's verdict is FAILED); never 2
        assert report.returncode in (0, 1), report.stderr[-800:]

        exported = run(["dashboards", "export", "--out", "dash"], outputs,
                       "dashboards export", tmp_path)
        assert exported.returncode == 0, exported.stderr[-800:]
    finally:
        server.terminate()
        server.wait(timeout=20)
        serve_out.close()

    problems, files = scan_tree(tmp_path)
    for name, data in outputs.items():
        problems += leaks_in(data, f"output of {name}")
    assert files >= 15, f"only {files} files were written; did the commands run?"
    assert (tmp_path / "report" / "report.html").exists()
    assert not problems, "\n".join(problems)
    # The scan itself must be able to fail: a canary placed in a file is found.
    (tmp_path / "probe-once" / "planted.log").write_text(
        "Authorization: Basic " + base64.b64encode(f"u:{CANARIES[1]}".encode()).decode())
    planted, _ = scan_tree(tmp_path)
    assert planted and "planted.log" in planted[0]
    os.remove(tmp_path / "probe-once" / "planted.log")
