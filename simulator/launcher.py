"""Start and stop the reference server as a child process (for ``demo`` and tests).

The server runs in its own process (``python -m simulator``) so that the harness under
test and the target never share an event loop or a core. It binds port 0 and reports the
real address on its first line of output (``serving on http://127.0.0.1:PORT``).

Example::

    with ReferenceServer(config="sim.toml") as server:
        print(server.url)
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from secton_harness.errors import HarnessError

READY_PREFIX = "serving on "


class ReferenceServer:
    """A reference-server child process on a free loopback port."""

    def __init__(self, config: str | os.PathLike[str] | None = None, *,
                 host: str = "127.0.0.1", port: int = 0,
                 stats_file: str | os.PathLike[str] | None = None,
                 ready_timeout_s: float = 20.0, cpu: int | None = None) -> None:
        self.config = Path(config) if config is not None else None
        self.host = host
        self.port = port
        self.stats_file = stats_file
        self.ready_timeout_s = ready_timeout_s
        self.cpu = cpu
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "simulator", "--host", self.host, "--port", str(self.port)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        if self.stats_file is not None:
            cmd += ["--stats-file", str(self.stats_file)]
        if self.cpu is not None and sys.platform.startswith("linux"):
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        return cmd

    def start(self) -> ReferenceServer:
        # stderr goes to a file: a chatty server must never block on a full pipe.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives with the child
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
        )
        deadline = time.monotonic() + self.ready_timeout_s
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._stderr.seek(0)
                err = self._stderr.read()
                last = err.strip().splitlines()[-1] if err.strip() else "no output"
                raise HarnessError(f"reference server exited at start: {last}")
            if selector.select(timeout=0.1):
                line = self.process.stdout.readline()
                if line.startswith(READY_PREFIX):
                    self.url = line[len(READY_PREFIX):].strip()
                    return self
        self.stop()
        raise HarnessError(f"reference server not ready within {self.ready_timeout_s:.0f}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
