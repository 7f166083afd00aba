"""Real limiters on free loopback ports for the mapper's tests: nginx ``limit_req`` and
HAProxy stick tables in front of the reference server (its own limits off), and the
``limits`` library / a penalty box in ``tests/own_limiter.py``. Each start function
returns the base URL and registers a stop with the given list; the binaries must exist
(``.ci/run`` installs ``nginx-light`` and ``haproxy``): a missing one fails, never skips.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from conftest import free_port

HERE = Path(__file__).resolve().parent
Stopper = Callable[[], None]


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if Path(p).exists()),
        None)
    assert found, f"{name} is not installed (Debian: nginx-light / haproxy; .ci/run installs it)"
    return found


def _wait_port(port: int, proc: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"limiter exited {proc.returncode}: {log.read_text()[-800:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"limiter did not listen on {port}: {log.read_text()[-800:]}")


def _stopper(proc: subprocess.Popen[Any], log_handle: IO[str]) -> Stopper:
    """Terminate ``proc`` (kill after 5 s) and close its log."""
    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log_handle.close()
    return stop


def _start(cmd: list[str], port: int, log: Path, stops: list[Stopper]) -> str:
    handle = log.open("w")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT)
    stops.append(_stopper(proc, handle))
    _wait_port(port, proc, log)
    return f"http://127.0.0.1:{port}"


def nginx(tmp: Path, backend: str, rate_per_s: float, burst: int,
          stops: list[Stopper]) -> str:
    """``limit_req`` per Authorization header: ``rate`` with ``burst`` and ``nodelay``
    (capacity burst + 1, a token bucket in effect)."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  limit_req_zone $http_authorization zone=key:1m rate={int(rate_per_s * 60)}r/m;
  limit_req_status 429;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      limit_req zone=key{f' burst={burst}' if burst else ''} nodelay;
      proxy_pass {backend};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
    return _start([_binary("nginx"), "-p", str(tmp), "-e", str(tmp / "error.log"),
                   "-c", str(conf), "-g", "daemon off;"], port, tmp / "nginx.log", stops)


def haproxy(tmp: Path, backend: str, limit: int, period_s: float, *, counts_refused: bool,
            stops: list[Stopper]) -> str:
    """A stick table's ``http_req_rate(period)`` per Authorization header (a sliding-window
    counter: current + previous x the part of the period still to run). ``counts_refused``:
    the classic recipe (``track-sc0`` first, then deny when the rate is over the limit),
    where refused requests are counted too; otherwise the rate is read without tracking
    and only admitted requests are tracked."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    host_port = backend.removeprefix("http://").rstrip("/")
    if counts_refused:
        rules = (f"  http-request track-sc0 req.hdr(Authorization)\n"
                 f"  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {limit} }}\n")
    else:
        rules = ("  http-request deny deny_status 429 if "
                 f"{{ req.hdr(Authorization),table_http_req_rate(fe) ge {limit} }}\n"
                 "  http-request track-sc0 req.hdr(Authorization)\n")
    conf = tmp / "haproxy.cfg"
    conf.write_text(f"""
global
  maxconn 512
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:{port}
  stick-table type string len 128 size 1k expire 60s store http_req_rate({int(period_s * 1000)}ms)
{rules}  default_backend be
backend be
  server s1 {host_port}
""")
    return _start([_binary("haproxy"), "-db", "-f", str(conf)], port, tmp / "haproxy.log",
                  stops)


def own_limiter(tmp: Path, config: dict[str, Any], stops: list[Stopper]) -> str:
    """``tests/own_limiter.py`` with ``config`` (see there); returns its URL."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "limiter.json"
    path.write_text(json.dumps(config))
    log = tmp / "limiter.log"
    handle = log.open("w")
    proc = subprocess.Popen([sys.executable, str(HERE / "own_limiter.py"), str(path)],
                            stdout=subprocess.PIPE, stderr=handle, text=True)
    stops.append(_stopper(proc, handle))
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("http://"), f"own limiter did not start: {log.read_text()[-800:]}"
    return line
