"""A hostile test target: one small HTTP server per misbehaviour, at the byte level.

The reference server (``simulator``) misbehaves only in ways an honest API might; this one
does what a broken gateway or a hostile endpoint does. It speaks HTTP/1.1 over raw asyncio
sockets (so it can lie about lengths, trickle, reset and hang), answers every path and
method the same way, closes the connection after each answer, and counts the requests it
received, so a test can assert how many arrived (a redirect loop, a sink that must stay
untouched).

Example::

    with HostileTarget("echo_body") as target:
        ...  # point a command at target.url
        assert target.requests >= 1

Modes (:data:`MODES`):

=================  ==========================================================================
``ok``             a small valid JSON answer (a sink for redirects; a sanity baseline)
``echo_body``      200 JSON whose fields hold the request's Authorization value
``echo_headers``   200 and 429 in turn, whose Content-Type, Retry-After, X-RateLimit-*,
                   RateLimit and (text) body hold it
``redirect_307``   307 to ``redirect_to`` (another server: it must never see a request)
``redirect_302``   302 to ``redirect_to``
``redirect_loop``  302 back to the same URL, forever
``big_body``       200 JSON announcing and sending 100 MB
``endless``        200 chunked JSON that never ends
``trickle``        200 JSON, Content-Length 10000, the body sent 1 byte per second
``huge_header``    200 with one 4 MB header value
``big_remaining``  200 JSON with ``X-RateLimit-Remaining: 99999999999999999999`` (and in
                   ``RateLimit:``)
``reset_body``     200 JSON, Content-Length 1000, 100 bytes sent, then a TCP reset
``deep_json``      200 JSON nested 100,000 levels deep
``hang``           reads the request and never answers
``close``          reads the request and closes the connection without a byte
``scripted``       sends the bytes in ``script`` (set by the test), then closes
=================  ==========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
from collections.abc import Awaitable, Callable

MODES: tuple[str, ...] = (
    "ok", "echo_body", "echo_headers", "redirect_307", "redirect_302", "redirect_loop",
    "big_body", "endless", "trickle", "huge_header", "big_remaining", "reset_body",
    "deep_json", "hang", "close", "scripted",
)
COUNT_PATH = "/_hostile/count"
BIG_BODY_BYTES = 100 * 1024 * 1024
HUGE_HEADER_BYTES = 4 * 1024 * 1024
_MAX_REQUEST_HEAD = 64 * 1024
_CHUNK = b"a" * 65536
_OK_BODY = json.dumps({"object": "list", "data": []}).encode()


def _head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HostileTarget:
    """One misbehaving server on a free loopback port, run in a background thread."""

    def __init__(self, mode: str, *, redirect_to: str = "") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        self.redirect_to = redirect_to
        self.script = b""
        self.requests = 0
        self.authorizations: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"hostile-{mode}",
                                        daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HostileTarget:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile target did not start")
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._loop.stop()

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(shutdown()))
        self._thread.join(10)

    def __enter__(self) -> HostileTarget:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        default = self._loop.default_exception_handler

        def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
            if not isinstance(context.get("exception"), ConnectionError):
                default(context)  # a client hanging up mid-answer is the normal case here

        self._loop.set_exception_handler(quiet)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    # ------------------------------------------------------------------ one connection
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            authorization, path = await self._read_request(reader)
            if path is None:
                return
            if path == COUNT_PATH:  # for a target run as its own process (not counted)
                await self._json(writer, "200 OK", json.dumps(self.requests).encode())
                return
            self.requests += 1
            self.authorizations.append(authorization)
            await self._answer(writer, authorization, path)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            pass  # the client hung up, or the target is shutting down
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str | None]:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_REQUEST_HEAD:
            return "", None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(min(length, 1 << 20))
        return headers.get("authorization", ""), path

    async def _answer(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        handler: Callable[[asyncio.StreamWriter, str, str], Awaitable[None]] = getattr(
            self, f"_mode_{self.mode}")
        await handler(writer, auth, path)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def _json(self, writer: asyncio.StreamWriter, status: str, body: bytes,
                    extra: list[tuple[str, str]] | None = None) -> None:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   *(extra or [])]
        await self._send(writer, _head(status, headers) + body)

    # ------------------------------------------------------------------ the modes
    async def _mode_ok(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        await self._json(writer, "200 OK", _OK_BODY)

    async def _mode_echo_body(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        token = auth.split(" ", 1)[-1]
        body = json.dumps({"object": auth, "data": [{"id": token, "object": auth}],
                           "organization_id": token, "model": auth,
                           "error": {"message": f"bad key {auth}", "type": token}}).encode()
        await self._json(writer, "200 OK", body)

    async def _mode_echo_headers(self, writer: asyncio.StreamWriter, auth: str,
                                 path: str) -> None:
        body = f"rate limited for {auth}".encode()
        status = "429 Too Many Requests" if self.requests % 2 else "200 OK"
        await self._send(writer, _head(status, [
            ("Content-Type", f"text/plain; key={auth}"), ("Retry-After", auth),
            ("X-RateLimit-Limit", auth), ("X-RateLimit-Remaining", auth),
            ("X-RateLimit-Reset", auth), ("RateLimit", f"limit={auth}, remaining={auth}"),
            ("Content-Length", str(len(body)))]) + body)

    async def _redirect(self, writer: asyncio.StreamWriter, status: str, location: str) -> None:
        await self._send(writer, _head(status, [("Location", location),
                                                ("Content-Length", "0")]))

    async def _mode_redirect_307(self, writer: asyncio.StreamWriter, auth: str,
                                 path: str) -> None:
        await self._redirect(writer, "307 Temporary Redirect", self.redirect_to + path)

    async def _mode_redirect_302(self, writer: asyncio.StreamWriter, auth: str,
                                 path: str) -> None:
        await self._redirect(writer, "302 Found", self.redirect_to + path)

    async def _mode_redirect_loop(self, writer: asyncio.StreamWriter, auth: str,
                                  path: str) -> None:
        await self._redirect(writer, "302 Found", self.url + path)

    async def _mode_big_body(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        await self._send(writer, _head("200 OK", [("Content-Type", "application/json"),
                                                  ("Content-Length", str(BIG_BODY_BYTES))]))
        sent = 0
        while sent < BIG_BODY_BYTES:
            await self._send(writer, _CHUNK)
            sent += len(_CHUNK)

    async def _mode_endless(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        await self._send(writer, _head("200 OK", [("Content-Type", "application/json"),
                                                  ("Transfer-Encoding", "chunked")]))
        chunk = f"{len(_CHUNK):x}\r\n".encode() + _CHUNK + b"\r\n"
        while True:
            await self._send(writer, chunk)

    async def _mode_trickle(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        await self._send(writer, _head("200 OK", [("Content-Type", "application/json"),
                                                  ("Content-Length", "10000")]))
        for _ in range(10000):
            await self._send(writer, b" ")
            await asyncio.sleep(1.0)

    async def _mode_huge_header(self, writer: asyncio.StreamWriter, auth: str,
                                path: str) -> None:
        await self._send(writer, _head("200 OK", [
            ("Content-Type", "application/json"), ("X-Junk", "a" * HUGE_HEADER_BYTES),
            ("Content-Length", str(len(_OK_BODY)))]) + _OK_BODY)

    async def _mode_big_remaining(self, writer: asyncio.StreamWriter, auth: str,
                                  path: str) -> None:
        huge = "99999999999999999999"
        await self._json(writer, "200 OK", _OK_BODY, [
            ("X-RateLimit-Limit", huge), ("X-RateLimit-Remaining", huge),
            ("X-RateLimit-Reset", huge), ("RateLimit", f"limit={huge}, remaining={huge}, "
                                                       f"reset={huge}")])

    async def _mode_reset_body(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        await self._send(writer, _head("200 OK", [("Content-Type", "application/json"),
                                                  ("Content-Length", "1000")])
                         + b'{"object": "list", "data": [' + b" " * 72)
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # SO_LINGER 0: close() sends a RST, not a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _mode_deep_json(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        await self._json(writer, "200 OK", b"[" * 100_000 + b"]" * 100_000)

    async def _mode_hang(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        await asyncio.sleep(3600)

    async def _mode_close(self, writer: asyncio.StreamWriter, auth: str, path: str) -> None:
        writer.close()

    async def _mode_scripted(self, writer: asyncio.StreamWriter, auth: str,
                             path: str) -> None:
        await self._send(writer, self.script.replace(b"{AUTH}", auth.encode("latin-1")))


if __name__ == "__main__":  # python tests/hostile_target.py MODE [REDIRECT_TO]: for a by-hand look
    import sys

    server = HostileTarget(sys.argv[1], redirect_to=sys.argv[2] if len(sys.argv) > 2 else "")
    server.start()
    print(server.url, flush=True)
    threading.Event().wait()
