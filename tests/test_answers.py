"""The one request-to-record function (``secton_harness.answers``) and the three request
paths that use it: for the same answer from a real server, the load users' record, the
rate-limit mapper's record and the probe client's response hold the same status, error
class, success and rate-limit fields.

The load and mapper paths run in ``request_paths_worker.py`` (importing Locust
monkey-patches the process); the probe client runs here; the answers come from a
:class:`~hostile_target.HostileTarget` on a free loopback port.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import line_worker
from hostile_target import HostileTarget
from test_security import CANARIES, leaks_in

from secton_harness.answers import NO_RESPONSE, Answer, read_answer, succeeded
from secton_harness.client import SectonClient
from secton_harness.error_classes import (
    CONNECT,
    CONTENT_TYPE,
    HTTP,
    REDIRECT,
    RESET,
    TRANSPORT_CLASSES,
)
from secton_harness.ratelimit_headers import NOTHING
from secton_harness.redact import Redactor

KEY = CANARIES[0]
REDACTOR = Redactor({KEY: "c1"})


# ---------------------------------------------------------------- the function itself
def test_a_2xx_with_headers_is_a_success_with_its_figures() -> None:
    answer = read_answer(200, None, {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "7",
                                     "X-RateLimit-Reset": "30"}, REDACTOR)
    assert answer == Answer(200, "", "", True, 10, 7, 30.0, None, answer.ratelimit)
    assert answer.ratelimit.sources == ("x-ratelimit",)


def test_a_429_is_counted_apart_neither_success_nor_error() -> None:
    answer = read_answer(429, None, {"Retry-After": "3"}, REDACTOR)
    assert (answer.status, answer.error, answer.reason, answer.success,
            answer.retry_after_s) == (429, "", "", False, 3.0)


def test_a_429_cut_short_keeps_the_transport_class_and_its_figures() -> None:
    answer = read_answer(429, ConnectionResetError(f"peer reset after Bearer {KEY}"),
                         {"Retry-After": "3"}, REDACTOR)
    assert (answer.error, answer.success, answer.retry_after_s) == (RESET, False, 3.0)
    assert answer.reason.startswith("ConnectionResetError: ") and KEY not in answer.reason


@pytest.mark.parametrize(("status", "error"), [(307, REDIRECT), (404, HTTP), (503, HTTP),
                                               (204, "")])
def test_the_status_class_unless_the_caller_judges_it(status: int, error: str) -> None:
    assert read_answer(status, None, {}, REDACTOR).error == error
    leaves = read_answer(status, None, {}, REDACTOR, status_class=False)
    assert (leaves.error, leaves.success) == ("", 200 <= status < 300)


def test_no_status_and_no_problem_is_a_connect_and_headers_are_not_read() -> None:
    answer = read_answer(0, None, {"Retry-After": "3"}, REDACTOR)
    assert answer[:4] == (0, CONNECT, NO_RESPONSE, False)
    assert answer.ratelimit is NOTHING and answer.retry_after_s is None


def test_the_clock_turns_an_epoch_reset_into_seconds() -> None:
    answer = read_answer(200, None, {"X-RateLimit-Reset": "2000000030"}, REDACTOR,
                         now=2_000_000_000.0)
    assert answer.ratelimit_reset_s == 30.0


def test_success_has_one_definition() -> None:
    assert [succeeded(s, e) for s, e in [(200, ""), (299, ""), (200, "reset"), (429, ""),
                                         (302, ""), (0, ""), (500, "")]] == [
        True, True, False, False, False, False, False]


# ---------------------------------------------------------------- the three paths agree
def _head(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers),
             f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_JSON = [("Content-Type", "application/json"), ("X-Echo", "{AUTH}")]
_LIST = json.dumps({"object": "list", "data": []}).encode()
_ERROR = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
#: mode (or a scripted answer) -> the fields every path must record for it
CASES: dict[str, tuple[str | bytes, dict[str, Any]]] = {
    "200": (_head("200 OK", [*_JSON, ("X-RateLimit-Limit", "10"),
                             ("X-RateLimit-Remaining", "7"), ("X-RateLimit-Reset", "30")],
                  _LIST),
            {"status": 200, "error": "", "success": True, "ratelimit_limit": 10,
             "ratelimit_remaining": 7, "ratelimit_reset_s": 30.0, "retry_after_s": None}),
    "429": (_head("429 Too Many Requests", [*_JSON, ("Retry-After", "3"),
                                            ("RateLimit", "limit=10, remaining=0, reset=3")],
                  _ERROR),
            {"status": 429, "error": "", "success": False, "ratelimit_limit": 10,
             "ratelimit_remaining": 0, "ratelimit_reset_s": 3.0, "retry_after_s": 3.0}),
    "503": (_head("503 Service Unavailable", _JSON, _ERROR),
            {"status": 503, "error": HTTP, "success": False, "ratelimit_limit": None,
             "ratelimit_remaining": None, "ratelimit_reset_s": None, "retry_after_s": None}),
    "redirect_307": ("redirect_307",
                     {"status": 307, "error": REDIRECT, "success": False,
                      "ratelimit_limit": None, "ratelimit_remaining": None,
                      "ratelimit_reset_s": None, "retry_after_s": None}),
    "reset_body": ("reset_body",
                   {"status": 200, "error": RESET, "success": False, "ratelimit_limit": None,
                    "ratelimit_remaining": None, "ratelimit_reset_s": None,
                    "retry_after_s": None}),
    "close": ("close",
              {"status": 0, "error": RESET, "success": False, "ratelimit_limit": None,
               "ratelimit_remaining": None, "ratelimit_reset_s": None,
               "retry_after_s": None}),
    "big_remaining": ("big_remaining",
                      # counts past int64 are dropped; the reset is an epoch in ms
                      {"status": 200, "error": "", "success": True, "ratelimit_limit": None,
                       "ratelimit_remaining": None,
                       "ratelimit_reset_s": pytest.approx(1e17, rel=1e-6),
                       "retry_after_s": None}),
}
#: what the probe client adds: its own body check (a redirect carries no JSON body)
PROBE_BODY = {"redirect_307": CONTENT_TYPE}
SHARED = ("status", "error", "success", "ratelimit_limit", "ratelimit_remaining",
          "ratelimit_reset_s", "retry_after_s")


@pytest.fixture(scope="module")
def worker() -> Iterator[subprocess.Popen[str]]:
    """The load and mapper record paths in their own process."""
    yield from line_worker("request_paths_worker.py")


def _probe_record(url: str) -> dict[str, Any]:
    """The probe client's response, in the records' column names (a probe's record takes
    its status, error and rate-limit columns from it; ``success`` is ``ok``)."""
    with SectonClient(url, timeout_s=2) as client:
        got = client.list_models(KEY)
    info = got.ratelimit
    return {"status": got.status, "error": got.error, "reason": got.error_detail,
            "success": got.ok, "ratelimit_limit": info.limit,
            "ratelimit_remaining": info.remaining, "ratelimit_reset_s": info.reset_s,
            "retry_after_s": info.retry_after_s}


@pytest.mark.parametrize("case", list(CASES))
def test_the_three_request_paths_record_the_same_answer_alike(
        case: str, worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None and worker.stdout is not None
    answer, expected = CASES[case]
    with HostileTarget("ok") as sink, HostileTarget(
            "scripted" if isinstance(answer, bytes) else answer,
            redirect_to=sink.url) as target:
        if isinstance(answer, bytes):
            target.script = answer
        worker.stdin.write(json.dumps({"url": target.url, "key": KEY}) + "\n")
        worker.stdin.flush()
        got = json.loads(worker.stdout.readline())
        assert not got["raised"], got
        probe = _probe_record(target.url)
        assert target.requests == 3, "one request per path, nothing re-sent"
        assert sink.requests == 0, "a redirect was followed"
    load, mapper = got["load"], got["mapper"]
    assert {f: load[f] for f in SHARED} == expected, "load"
    assert {f: mapper[f] for f in SHARED} == expected, "mapper"
    # a probe's check conditions judge the status: its error is a transport class or
    # the client's own body class, never the status's
    transport = expected["error"] if expected["error"] in TRANSPORT_CLASSES else ""
    probe_expected = {**expected, "error": PROBE_BODY.get(case, transport)}
    assert {f: probe[f] for f in SHARED} == probe_expected, "probe"
    for record in (load, mapper):
        assert bool(record["reason"]) == bool(transport), record
    assert bool(probe["reason"]) == bool(probe["error"]), probe
    assert not leaks_in(json.dumps([load, mapper, probe]).encode(), f"{case} records")
