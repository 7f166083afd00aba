"""Running the reference server: ``serve(config_path, host, port, stats_file)``.

uvicorn with uvloop and httptools when installed, one worker, access log off (a log line
per request would halve throughput), no proxy-headers wrapper (nothing proxies to it),
one socket write per response (protocol.py).
The socket is bound here, before uvicorn starts, so ``port=0`` picks a free port and
the real one is printed: ``serving on http://HOST:PORT``
(one flushed stdout line, once the server accepts connections).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import sys
from typing import Any

import uvicorn

from secton_harness.errors import BadInput
from simulator.app import build_app
from simulator.config import load_config


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise BadInput(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """Prints the ready line once uvicorn has started."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"serving on {self.url}", flush=True)


def serve(config_path: str | None, host: str = "127.0.0.1", port: int = 8080,
          stats_file: str | None = None) -> None:
    """Run the server until interrupted. Bad config or a busy port raise BadInput."""
    config = load_config(config_path)
    if not config.keys:  # stderr: the launcher reads the ready line on stdout
        print("serve: warning: the config has no [[keys]]: every key is refused (401)",
              file=sys.stderr, flush=True)
    app = build_app(config, stats_file=stats_file)
    sock = _bind(host, port)
    real_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    http: Any = "h11"
    if importlib.util.find_spec("httptools") is not None:
        from simulator.protocol import CoalescingHttpToolsProtocol

        http = CoalescingHttpToolsProtocol
    uv_config = uvicorn.Config(
        app, loop="uvloop" if has_uvloop else "asyncio", http=http,
        access_log=False, log_level="warning", lifespan="on", workers=1,
        interface="asgi3", server_header=False,
        proxy_headers=False,  # loopback, no proxy: one ASGI wrapper less per request
    )
    server = _Server(uv_config, f"http://{shown}:{real_port}")
    try:
        server.run(sockets=[sock])
    finally:
        with contextlib.suppress(OSError):
            sock.close()
