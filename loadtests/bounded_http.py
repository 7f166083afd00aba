"""One bounded request on Locust's geventhttpclient transport, for the load users and the
rate-limit mapper alike.

Locust's ``FastHttpUser`` follows up to 30 redirects, buffers any body whole and parses
any header block, however large (geventhttpclient joins header pieces quadratically: a
200 MB header kept a process at 100 % CPU for minutes, deaf to signals). Here:

* :class:`BoundedUser` sets ``max_redirects = 0``: a 3xx comes back as it is, so one
  counted request is one request on the wire (the loopback guard checked the only URL);
* :func:`install_head_cap` makes every response count the bytes fed to the parser before
  the headers are complete and stop at :data:`~secton_harness.limits.MAX_HEAD_BYTES`,
  and stops geventhttpclient re-sending a request on a connection that the target closed
  without answering (it re-sent up to the pool size, 11 requests on the wire for one
  counted). That holds for a reused keep-alive connection too: the pool already drops a
  connection the server closed while it sat idle (a zero-wait readability check before
  handing it out), so a reused one that closes after the request went out closed on a
  request the target may well have read (the reference server's ``drop_connection``
  fault does exactly that): it is a ``reset`` on record, never a silent second request;
* the response counts the body bytes the parser hands over (``_on_body``) and stops at its
  ``body_limit`` (the body cap), keeping them only when asked (``keep_body``);
* :func:`send` (the load users' path) calls the session's geventhttpclient ``HTTPClient``
  directly and reads the whole answer through the capped parser; :func:`exchange` (the
  rate-limit mapper's) goes through Locust's session with ``stream=True`` and reads the
  body in blocks, cut at the body cap. Either way the whole answer (head and body) is due
  within one deadline (a gevent timer, so a target trickling a byte a second cannot hold
  a request past it).

Why two: Locust's session and geventhttpclient's ``UserAgent`` above ``HTTPClient`` (URL
objects, a cookie jar, header copies, redirect and retry handling the harness turns off)
cost more per request than everything the load users do themselves (docs/architecture.md,
"load transport"). The mapper sends a few requests a second and keeps Locust's session.

What went wrong is classified by the core's one vocabulary
(:func:`secton_harness.error_classes.classify`). Only this folder imports gevent.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

import gevent
import geventhttpclient.client as ghc_client
from geventhttpclient.response import (
    HTTPConnectionClosed,
    HTTPParseError,
    HTTPSocketPoolResponse,
)
from geventhttpclient.url import URL
from locust.contrib.fasthttp import FastHttpUser

from secton_harness.error_classes import ResponseTooLarge
from secton_harness.limits import MAX_HEAD_BYTES

_BLOCK = 64 * 1024
#: Ask for the body as it is: it is read raw (in blocks, under the cap), never unzipped.
IDENTITY = {"Accept-Encoding": "identity"}


#: The reason on record when the target closes a connection before answering.
CLOSED_BEFORE_ANSWER = "the connection closed before answering"


class ClosedWithoutAnswer(ConnectionResetError):
    """A connection (fresh or reused) closed by the target before any byte of an answer (a
    ``reset``); not an ``HTTPConnectionClosed``, which geventhttpclient would answer with a
    re-send of a request the target may already have read."""


class _HeadCappedResponse(HTTPSocketPoolResponse):
    """geventhttpclient's pooled response, refusing a head past :data:`MAX_HEAD_BYTES` and
    a body past ``body_limit`` (set per request by :func:`send`; None: not counted here,
    :func:`read_body` cuts the streamed body instead)."""

    head_limit = MAX_HEAD_BYTES
    body_limit: int | None = None
    keep_body = True
    body_seen = 0

    def __init__(self, sock: Any, pool: Any, **kw: Any) -> None:
        try:
            super().__init__(sock, pool, **kw)
        except HTTPConnectionClosed:
            raise ClosedWithoutAnswer(CLOSED_BEFORE_ANSWER) from None

    def feed(self, data: str | bytes) -> None:
        if not self.headers_complete:
            seen = getattr(self, "_head_seen", 0) + len(data)
            self._head_seen = seen
            if seen > self.head_limit:
                raise ResponseTooLarge("head", self.head_limit)
        super().feed(data)

    def _on_body(self, buf: bytearray) -> None:
        seen = self.body_seen + len(buf)
        self.body_seen = seen
        limit = self.body_limit
        if limit is not None and seen > limit:
            raise ResponseTooLarge("body", limit)  # raised through the C parser's feed()
        if self.keep_body:
            self._body_buffer += buf


def install_head_cap() -> None:
    """Make geventhttpclient build capped responses (idempotent; this process only).

    The client module names its response class at each request, so replacing that name is
    the one seam that needs no copy of its request code.
    """
    ghc_client.HTTPSocketPoolResponse = _HeadCappedResponse  # type: ignore[misc]


install_head_cap()


class BoundedUser(FastHttpUser):
    """A ``FastHttpUser`` that never follows a redirect and never retries on its own.

    Every status is "valid" to the transport: Locust would otherwise release the
    connection of a 4xx/5xx before its body is read (the body lost, the answer cut); the
    status is judged by the caller, through the one vocabulary.
    """

    abstract = True
    max_redirects = 0
    max_retries = 0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.client.client.valid_response_codes = frozenset(range(100, 1000))

    def open_wire(self, headers: dict[str, str]) -> Wire:
        """A :class:`Wire` on the ``HTTPClient`` Locust's session would use for ``host``
        (same pool, timeouts and TLS settings), sending ``headers``, for :func:`send`."""
        return Wire(self.client.client.clientpool.get_client(URL(self.host)), headers)


@dataclass(slots=True)
class Exchange:
    """What came back: the response (or None), the body read so far, the failure if any."""

    response: Any
    content: bytes | bytearray
    problem: BaseException | None
    size: int = 0  # body bytes read (``content`` is empty when the body was not kept)
    headers: Any = None  # the response's headers (geventhttpclient ``Headers``) or None

    @property
    def status(self) -> int:
        if self.response is None:  # (a response with no body is falsy: test identity)
            return 0
        return int(getattr(self.response, "status_code", 0) or 0)


def read_body(response: Any, limit: int,
              keep: bool = True) -> tuple[bytes, int, BaseException | None]:
    """The body of a ``stream=True`` response, read in blocks and cut at ``limit``.

    Returns (the body so far - empty unless ``keep`` -, its size, the problem or None): a
    reset or a close before the announced end is a problem, not a short success. A caller
    that only needs the status and headers passes ``keep=False``: memory then stays at one
    block per request in flight, however many are in flight.
    """
    raw = getattr(response, "_response", None)
    if raw is None:
        return b"", 0, None
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            block = raw.read(_BLOCK)
            if not block:
                break
            total += len(block)
            if total > limit:
                raise ResponseTooLarge("body", limit)
            if keep:
                parts.append(block)
        if not raw.message_complete:
            raise HTTPParseError("connection closed before the end of the body")
    except (ResponseTooLarge, OSError, HTTPParseError, gevent.Timeout, ValueError) as exc:
        raw.release()
        return b"".join(parts), total, exc
    return b"".join(parts), total, None


def exchange(client: Any, method: str, url: str, *, timeout_s: float, max_body: int,
             keep_body: bool = True, **kwargs: Any) -> tuple[Any, Exchange]:
    """Send one request and read its whole answer within ``timeout_s`` and ``max_body``.

    Returns (what ``client.request`` returned - a Locust ``ResponseContextManager`` when
    ``catch_response=True`` is passed - and the :class:`Exchange`). The deadline covers
    the head (geventhttpclient reports it as the response's ``error``) and the body.
    """
    headers = kwargs.pop("headers", None) or {}
    if "Accept-Encoding" not in headers:  # callers on the hot path include it already
        headers = {**IDENTITY, **headers}
    timer = gevent.Timeout(max(timeout_s, 0.001))
    timer.start()
    try:
        try:
            response = client.request(method, url, headers=headers, stream=True, **kwargs)
        except gevent.Timeout as fired:
            if fired is not timer:
                raise
            return None, Exchange(None, b"", fired)
        except Exception as exc:  # e.g. Locust reading a bogus Content-Length
            return None, Exchange(None, b"", exc)
        error = getattr(response, "error", None)
        if not getattr(response, "status_code", 0):
            return response, Exchange(response, b"", error)
        content, size, problem = read_body(response, max_body, keep_body)
        return response, Exchange(response, content, problem, size, response.headers)
    finally:
        timer.close()


class Wire:
    """One user's way to the target: the session's geventhttpclient ``HTTPClient`` (its
    connection pool, timeouts and TLS settings) and the request heads it has built.

    ``HTTPClient.request`` merges and checks every header and builds the head again for
    each request (about a seventh of the generator's time at saturation); a user sends the
    same few heads over and over (the same key, path and, for a GET, no body), so each is
    built once by ``HTTPClient`` itself and kept, up to :attr:`MAX_HEADS`. The send is
    ``HTTPClient.request``'s for a body in one piece (geventhttpclient 2.6) *without its
    retries*: a request is on the wire once and gets one record, whatever happens to its
    connection (geventhttpclient re-sends an idempotent request on a closed connection or
    a failed send, so a GET the target read and then dropped went out twice, one record).
    """

    MAX_HEADS = 64

    def __init__(self, http: Any, headers: dict[str, str]) -> None:
        self.http = http
        self.headers = headers
        self.heads: dict[tuple[str, str, int], bytes] = {}

    def head(self, method: str, uri: str, body: bytes) -> bytes:
        """The request line and headers (Content-Length depends on the body's length only)."""
        key = (method, uri, len(body))
        found = self.heads.get(key)
        if found is None:
            found = self.http._build_request(method, uri, body=body, headers=self.headers,
                                             chunked=False).encode("latin-1")
            if len(self.heads) < self.MAX_HEADS:
                self.heads[key] = found
        return found

    def request(self, method: str, uri: str, body: bytes) -> Any:
        """Send, and return the response once its head is read (:class:`_HeadCappedResponse`)."""
        pool = self.http._connection_pool
        message = self.head(method, uri, body) + body
        sock = pool.get_socket()  # a pooled one was checked alive (not closed while idle)
        try:
            sock.sendall(message)
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                pool.release_socket(sock)
                raise
            # the target may have answered (and closed) before taking it all; if not, the
            # response raises (a reset, released by the response): never sent again
        return self._response(sock, pool, method)

    def _response(self, sock: Any, pool: Any, method: str) -> Any:
        http = self.http
        return _HeadCappedResponse(sock, pool, block_size=http.block_size, method=method,
                                   headers_type=http.headers_type)


def send(wire: Wire, method: str, uri: str, body: bytes, *, timeout_s: float, max_body: int,
         keep_body: bool = True) -> Exchange:
    """Send one request through ``wire`` and read the whole answer within ``timeout_s`` and
    ``max_body``.

    The body is read through the capped parser (:class:`_HeadCappedResponse`), block by
    block, never kept unless ``keep_body``. A reset, a close before the end, a parse error,
    the deadline or the cap is the returned problem, with the status if one came.
    """
    timer = gevent.Timeout(max(timeout_s, 0.001))
    timer.start()
    try:
        try:
            raw = wire.request(method, uri, body)
        except gevent.Timeout as fired:
            if fired is not timer:
                raise
            return Exchange(None, b"", fired)
        except Exception as exc:  # refused, reset, closed without an answer, head cap ...
            return Exchange(None, b"", exc)
        return _read_whole(raw, max_body, keep_body)
    finally:
        timer.close()


def _read_whole(raw: Any, limit: int, keep: bool) -> Exchange:
    """The rest of ``raw``'s body (what came with the head is parsed already)."""
    raw.body_limit = limit
    if not keep:
        raw.keep_body = False
        del raw._body_buffer[:]
    try:
        if raw.body_seen > limit:
            raise ResponseTooLarge("body", limit)
        while not raw.message_complete:
            sock = raw._sock
            if sock is None:
                raise HTTPParseError("connection closed before the end of the body")
            data = sock.recv(_BLOCK)
            raw.feed(data)  # completes the message at its end: the socket goes back
            if not data and not raw.message_complete:
                raise HTTPParseError("connection closed before the end of the body")
    except (ResponseTooLarge, OSError, HTTPParseError, gevent.Timeout, ValueError) as exc:
        raw.release()
        _drop_body(raw)  # no whole answer: its body is never judged
        return Exchange(raw, b"", exc, raw.body_seen, raw.info())
    return Exchange(raw, _drop_body(raw) if keep else b"", None, raw.body_seen, raw.info())


def _drop_body(raw: Any) -> bytearray:
    """Take the body buffer out of ``raw`` (returned as it is, not copied).

    A response is freed by the garbage collector, not when its request ends (its C
    parser's callbacks point back at it), so a body left in it stays in memory until a
    collection that may be many requests away: against a target sending 100 MB or an
    endless body, 20 chat requests a second kept the Locust process at 414 MiB (each
    holding the 4 MiB cap twice: the buffer and a copy). Taken out, the body lives as
    long as the caller keeps the :class:`Exchange`.
    """
    body = raw._body_buffer
    raw._body_buffer = bytearray()
    return body
