"""The one error vocabulary of a request record, and the one function that picks a class.

Every request path (the probe client on httpx, the load users and the rate-limit mapper
on geventhttpclient) records what went wrong as one of :data:`ERROR_CLASSES`, chosen by
:func:`classify` from the exception it caught or the status it got, so a report, a
threshold or a dashboard means the same thing by ``reset`` whichever command wrote it.

================  ==========================================================================
``timeout``       no complete answer within the request's deadline (connect, read, trickle)
``connect``       the connection could not be opened (refused, DNS, TLS handshake)
``reset``         the connection was closed or reset mid-request or mid-body
``too_large``     the head or the body passed its cap while being read (:mod:`.limits`)
``protocol``      the answer is not valid HTTP (a malformed status line or header block)
``redirect``      a 3xx: recorded as it is, never followed
``http``          a status >= 400 other than 429 (a 429 is counted apart, never an error)
``content_type``  an answer whose body had to be read is not JSON
``invalid_json``  a JSON content type whose body does not parse (or nests too deeply)
``contract``      a JSON answer that breaks the API contract (load's sampled validation)
``cancelled``     still open when the run stopped (load: drain over, SIGINT/SIGTERM, abort)
``harness``       an exception in the harness's own request path (a bug: never the target's)
================  ==========================================================================

Probe records leave the status to the check's conditions (``reason``): their ``error`` is
only ever a transport or body class. Example::

    >>> classify(ConnectionResetError())
    'reset'
    >>> classify(503), classify(429), classify(307)
    ('http', '', 'redirect')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from secton_harness.redact import Redactor

TIMEOUT = "timeout"
CONNECT = "connect"
RESET = "reset"
TOO_LARGE = "too_large"
PROTOCOL = "protocol"
REDIRECT = "redirect"
HTTP = "http"
CONTENT_TYPE = "content_type"
INVALID_JSON = "invalid_json"
CONTRACT = "contract"
CANCELLED = "cancelled"
HARNESS = "harness"

#: Every value a record's ``error`` column can take besides ``""``.
ERROR_CLASSES: tuple[str, ...] = (TIMEOUT, CONNECT, RESET, TOO_LARGE, PROTOCOL, REDIRECT,
                                  HTTP, CONTENT_TYPE, INVALID_JSON, CONTRACT, CANCELLED,
                                  HARNESS)
#: Classes meaning no usable answer arrived at all (what a probe calls "no connection").
TRANSPORT_CLASSES: frozenset[str] = frozenset({TIMEOUT, CONNECT, RESET, TOO_LARGE, PROTOCOL})


class ResponseTooLarge(Exception):
    """The head or the body of an answer passed its cap while being read."""

    def __init__(self, part: str, limit: int) -> None:
        super().__init__(f"response {part} larger than {limit} bytes")
        self.part = part
        self.limit = limit


#: Exception class names (of any library: the core imports neither gevent nor
#: geventhttpclient) -> error class; :func:`classify` walks an exception's MRO and takes
#: the first name found, so ``httpx.ConnectTimeout`` is a timeout before it is a connect.
_BY_TYPE_NAME: dict[str, str] = {
    "ResponseTooLarge": TOO_LARGE,
    # timeouts: builtins/socket, httpx, gevent
    "TimeoutError": TIMEOUT, "timeout": TIMEOUT, "TimeoutException": TIMEOUT,
    "Timeout": TIMEOUT,
    # could not connect
    "ConnectionRefusedError": CONNECT, "ConnectError": CONNECT, "gaierror": CONNECT,
    "herror": CONNECT, "SSLError": CONNECT, "InvalidURL": CONNECT,
    # dropped mid-way: builtins, httpx, geventhttpclient
    "ConnectionResetError": RESET, "BrokenPipeError": RESET, "ConnectionAbortedError": RESET,
    "ReadError": RESET, "WriteError": RESET,
    "HTTPConnectionClosed": RESET, "IncompleteRead": RESET,
    # not HTTP (httpx's RemoteProtocolError is h11's "illegal status/header line"; its
    # "server disconnected" and "peer closed connection" are resets, by _BY_MESSAGE)
    "RemoteProtocolError": PROTOCOL, "HTTPParseError": PROTOCOL,
    "HTTPProtocolViolationError": PROTOCOL,
    "LocalProtocolError": PROTOCOL, "ProtocolError": PROTOCOL, "DecodingError": PROTOCOL,
    "UnicodeError": PROTOCOL, "ValueError": PROTOCOL,
    "OSError": CONNECT,
}
#: Messages that say more than the class: h11 (httpx) reports a head past httpcore's cap
#: as a protocol error, geventhttpclient reports a peer that closed as a parse error.
_BY_MESSAGE: tuple[tuple[str, str], ...] = (
    ("receive buffer too long", TOO_LARGE),
    ("connection closed", RESET),
    ("peer closed connection", RESET),
    ("server disconnected", RESET),
)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (geventhttpclient's ``original``, ``__cause__``)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 8 and all(current is not f for f in found):
        found.append(current)
        wrapped = getattr(current, "original", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return found


def classify_status(status: int) -> str:
    """The class of an answer by its status alone (``""`` for 2xx and 429)."""
    if 200 <= status < 300 or status == 429:
        return ""
    if 300 <= status < 400:
        return REDIRECT
    if 400 <= status < 600:
        return HTTP
    return CONNECT if status == 0 else PROTOCOL


def classify(outcome: BaseException | int) -> str:
    """The error class of a caught exception, or of a status code (see module doc)."""
    if isinstance(outcome, int) and not isinstance(outcome, bool):
        return classify_status(outcome)
    if not isinstance(outcome, BaseException):
        return PROTOCOL
    for exc in _causes(outcome):  # outermost first: httpx's own class says the most
        if isinstance(exc, ResponseTooLarge):
            return TOO_LARGE
        code = getattr(exc, "code", None)  # geventhttpclient's BadStatusCode
        if isinstance(code, int) and not isinstance(code, bool) and code >= 100:
            return classify_status(code)
        message = str(exc).lower()
        for text, error in _BY_MESSAGE:
            if text in message:
                return error
        for cls in type(exc).__mro__:
            named = _BY_TYPE_NAME.get(cls.__name__)
            if named is not None:
                return named
    return PROTOCOL


def failure(problem: BaseException, redactor: Redactor, limit: int | None = None) -> tuple[
        str, str]:
    """A failed request's ``(error, detail)`` record fields, the same on every path: the
    class by :func:`classify`, the detail ``"<ExceptionClass>: <message>"`` made safe by
    the redactor (keys, credentials, control characters removed; capped)."""
    text = f"{type(problem).__name__}: {problem}"
    detail = redactor.text(text) if limit is None else redactor.text(text, limit=limit)
    return classify(problem), detail
