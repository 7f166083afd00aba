"""Shared fixtures: real processes on free loopback ports, started and stopped per test.

``reference_server(config)`` starts the reference Secton API in its own process with a
config given as a dict (written to a TOML file) and yields it ready; every server started
is stopped at teardown. ``prometheus_binary``/``promtool_binary`` fail (never skip) when
the Debian package is missing, because CI must prove what they check.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import settings

from simulator.launcher import ReferenceServer

# Hypothesis' per-example deadline is a timing assertion: a first call that imports
# something, or a busy machine, breaks it (seen: 277 ms against 200 ms on a loaded core).
# The properties are about results, never speed.
settings.register_profile("secton", deadline=None)
settings.load_profile("secton")

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


@pytest.fixture
def reference_server(tmp_path: Path) -> Iterator[Callable[..., ReferenceServer]]:
    """Factory: ``reference_server({"limits": {...}})`` → a running server (``.url``)."""
    started: list[ReferenceServer] = []

    def start(config: dict[str, Any] | None = None, **kwargs: Any) -> ReferenceServer:
        path = None
        if config is not None:
            path = write_toml(tmp_path / f"sim-{len(started)}.toml", config)
        server = ReferenceServer(path, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def default_server() -> Iterator[ReferenceServer]:
    """One reference server with the built-in demo config, shared by read-only tests."""
    with ReferenceServer() as server:
        yield server


@pytest.fixture
def demo_keys_file() -> Path:
    return ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        pytest.fail("prometheus is not installed (Debian package 'prometheus'); CI installs it")
    return found


@pytest.fixture(scope="session")
def promtool_binary() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed (Debian package 'prometheus'); CI installs it")
    return found


def line_worker(script: str) -> Iterator[subprocess.Popen[str]]:
    """A helper script of this folder in its own process, spoken to a JSON line at a time
    on stdin/stdout (the load and mapper transports import Locust, whose monkey-patching
    must stay out of the test process). For ``yield from`` in a fixture."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / script)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def cli_row(output: str, name: str) -> list[str]:
    """Cells of the load table's row ``name`` (rich box-drawing table) in a command's output."""
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{output}")
