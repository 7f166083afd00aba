"""What came back, as the fields every request record shares: the one reading of an answer.

Three request paths send to the target - the load users (``loadtests/users.py``, on
geventhttpclient), the rate-limit mapper (``loadtests/ratelimit/transport.py``, on Locust's
session) and the probes' client (:mod:`secton_harness.client`, on httpx). Each hands what
came back to :func:`read_answer`, so a record's ``status``, ``error``, ``reason``,
``success`` and rate-limit columns mean the same thing whichever command wrote it:

* a transport problem (the exception a path caught) gives its class and a redacted
  ``"<Exception>: <message>"`` reason (:func:`~secton_harness.error_classes.failure`);
  no status and no problem is a ``connect`` with the reason ``no response``;
* otherwise the status's own class (:func:`~secton_harness.error_classes.classify_status`:
  ``http``, ``redirect``, ``""`` for a 2xx and a 429); a probe passes
  ``status_class=False`` because its check's conditions judge the status (its records'
  ``error`` is a transport or body class only);
* ``success`` is :func:`succeeded`, the one definition: a 2xx that arrived whole with no
  error class. A 429 is counted apart: never a success, and never an error by its status
  (only a transport failure gives it one);
* the rate-limit fields come from :func:`~secton_harness.ratelimit_headers.parse_ratelimit`
  over the answer's headers, read whenever a status line arrived (a body cut short keeps
  what its head announced), with ``now`` as the clock for epoch resets and HTTP-dates.

What a path adds on top stays its own: the load users judge a non-429 answer's body
(content type, JSON, sampled contract, tokens) and the probes' client parses JSON; both
then decide success again by :func:`succeeded`.

A tuple (``NamedTuple``), not a dataclass: the load users build one per request on the hot
path and unpack it straight into their record tuple. Example::

    >>> answer = read_answer(429, None, {"Retry-After": "3"}, Redactor())
    >>> answer.status, answer.error, answer.success, answer.retry_after_s
    (429, '', False, 3.0)
    >>> read_answer(0, ConnectionResetError("peer reset"), None, Redactor())[:4]
    (0, 'reset', 'ConnectionResetError: peer reset', False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from secton_harness.error_classes import CONNECT, classify_status, failure
from secton_harness.ratelimit_headers import NOTHING, RateLimitInfo, parse_ratelimit
from secton_harness.redact import Redactor

__all__ = ["NO_RESPONSE", "Answer", "read_answer", "succeeded"]

#: The reason of an answer with neither a status line nor a caught exception.
NO_RESPONSE = "no response"


class Answer(NamedTuple):
    """The shared record fields of one answer (named as the records' columns), and the
    whole rate-limit reading (probes check its problems, the mapper its window)."""

    status: int
    error: str
    reason: str
    success: bool
    ratelimit_limit: int | None
    ratelimit_remaining: int | None
    ratelimit_reset_s: float | None
    retry_after_s: float | None
    ratelimit: RateLimitInfo


def succeeded(status: int, error: str) -> bool:
    """The one definition of a successful request: a 2xx that arrived whole, no error class.

    A 429 is not a success (and not an error: the measures count it apart); a redirect,
    a 4xx/5xx, a cut body or a body a path rejected (``error`` set) is not either.
    """
    return 200 <= status < 300 and not error


def read_answer(status: int, problem: BaseException | None, headers: Mapping[str, Any] | None,
                redactor: Redactor, *, now: float | None = None,
                status_class: bool = True) -> Answer:
    """The record fields of what came back (see the module doc); never raises on the
    answer's content.

    ``status``: the status line's code, 0 when none arrived; ``problem``: what the transport
    raised, or None; ``headers``: the response's headers (any mapping; None when there were
    none); ``now``: epoch seconds the answer is read at (default ``time.time()``, taken only
    when a header needs it); ``status_class=False`` leaves the status's class to the caller.
    """
    if problem is not None:  # no whole answer: the status it announced (0: none) and why
        error, reason = failure(problem, redactor)
    elif not status:
        error, reason = CONNECT, NO_RESPONSE
    elif status_class:
        error, reason = classify_status(status), ""
    else:
        error = reason = ""
    info = parse_ratelimit(headers, now) if status and headers is not None else NOTHING
    return Answer(status, error, reason, succeeded(status, error), info.limit,
                  info.remaining, info.reset_s, info.retry_after_s, info)
