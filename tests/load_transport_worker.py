"""A process that sends one request per input line through the load users' transport.

``loadtests.bounded_http`` imports Locust, which monkey-patches the whole process with
gevent (threads, sockets, subprocess); a test process must not import it. So the
response-side fuzz of the load transport (``test_bounded_http``) keeps hypothesis and the
hostile target in the test process and sends through this worker: one JSON line in
(``{"url", "key", "keep"}``), one JSON line out with what a load record takes from the
answer::

    {"status": 200, "error": "", "detail": "", "size": 2, "kept": 2,
     "remaining": null, "raised": ""}

``raised`` names an exception that escaped ``send`` or the header parser (a bug).
"""

from __future__ import annotations

import json
import sys

from geventhttpclient import HTTPClient

from loadtests.bounded_http import IDENTITY, Wire, send
from secton_harness.answers import read_answer
from secton_harness.redact import Redactor


def one(url: str, key: str, keep: bool) -> dict[str, object]:
    # a fresh client per request: no pooled connection, so nothing may be sent twice
    http = HTTPClient.from_url(url, concurrency=1, connection_timeout=2, network_timeout=2)
    try:
        got = send(Wire(http, {"Authorization": f"Bearer {key}", **IDENTITY}), "GET",
                   "/v1/models", b"", timeout_s=2, max_body=1 << 20, keep_body=keep)
    finally:
        http.close()
    # what every record takes from an answer: the core's one reading of it
    answer = read_answer(got.status, got.problem, got.headers, Redactor({key: "c1"}))
    return {"status": got.status, "error": answer.error, "detail": answer.reason,
            "size": got.size, "kept": len(got.content),
            "remaining": answer.ratelimit_remaining, "raised": ""}


def main() -> None:
    for line in sys.stdin:
        ask = json.loads(line)
        try:
            answer = one(ask["url"], ask["key"], ask["keep"])
        except Exception as exc:  # reported to the test, which fails on it
            answer = {"raised": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
