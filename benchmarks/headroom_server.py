"""A canned-response HTTP/1.1 server for measuring the *generator*: it answers every GET
with the same small ``/v1/models`` JSON and does nothing else, so it costs a small fraction
of the reference server's CPU per request and leaves the cores to the load generator.

Used by bench_processes.py: on a 2-core machine, ``--processes 2`` needs both cores for
its workers, so the target must be nearly free. Bodyless GETs only (headers end the
request); keep-alive; prints ``serving on http://127.0.0.1:PORT`` like the simulator.

    .venv/bin/python benchmarks/headroom_server.py
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

BODY = json.dumps({"object": "list", "data": [
    {"id": "copilot-zero", "object": "model", "created": 0, "owned_by": "secton"}]}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


class Canned(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        count = self.pending.count(b"\r\n\r\n")
        if count:
            self.pending = self.pending[self.pending.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(RESPONSE * count)  # type: ignore[attr-defined]


async def serve() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    sock.listen(4096)
    server = await asyncio.get_running_loop().create_server(Canned, sock=sock)
    print(f"serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
