"""A process that sends one request per input line through the load users' and the
rate-limit mapper's real record paths (test_answers: the three request paths agree).

Both import Locust, which monkey-patches the whole process with gevent; a test process
must not import it. One JSON line in (``{"url", "key"}``), one JSON line out::

    {"load": {<the load record's columns>}, "mapper": {<the mapper record's columns>}}

The load record is made by ``SectonUser.record`` (the method the users call after
``bounded_http.send``), the mapper's by ``Transport.send`` into a real ``RecordSink``
(read back from the Parquet part it wrote). ``raised`` names an exception that escaped.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

from geventhttpclient import HTTPClient

from loadtests.bounded_http import IDENTITY, Wire, send
from loadtests.ratelimit.transport import Transport
from loadtests.recorder import RECORD_FIELDS
from loadtests.users import ModelsUser
from secton_harness.endpoints import MODELS
from secton_harness.keys import ApiKey
from secton_harness.records import RecordSink
from secton_harness.redact import Redactor


def load_record(url: str, key: ApiKey) -> dict[str, Any]:
    """One ``GET /v1/models`` as a load user sends and records it (no contract sampled)."""
    user = object.__new__(ModelsUser)  # the record path only; no Locust environment
    user.path, user.method, user.key = MODELS.path, MODELS.method, key
    user.redactor = Redactor({key.secret: key.alias})
    user.redact = user.redactor.text
    user.plan = SimpleNamespace(contract=None)
    # a fresh client per request: no pooled connection, so nothing may be sent twice
    http = HTTPClient.from_url(url, concurrency=1, connection_timeout=2, network_timeout=2)
    try:
        ts, start = time.time(), time.perf_counter()
        got = send(Wire(http, {"Authorization": f"Bearer {key.secret}", **IDENTITY}),
                   MODELS.method, MODELS.path, b"", timeout_s=2, max_body=1 << 20,
                   keep_body=False)
        row = user.record(got, ts, time.perf_counter() - start, ts, "steady", None, {},
                          False)
    finally:
        http.close()
    return dict(zip(RECORD_FIELDS, row, strict=True))


def mapper_record(url: str, key: ApiKey) -> dict[str, Any]:
    """One ``GET /v1/models`` as the rate-limit mapper sends and records it."""
    with tempfile.TemporaryDirectory() as folder:
        sink = RecordSink(folder, source="ratelimit")
        transport = Transport(url, sink, max_rps=10, max_requests=1, max_duration_s=10)
        transport.send(key, "probe")
        table = sink.flush()
    assert table is not None
    return table.to_pylist()[0]


def main() -> None:
    for line in sys.stdin:
        ask = json.loads(line)
        key = ApiKey("c1", "org-a", ask["key"])
        try:
            answer = {"load": load_record(ask["url"], key),
                      "mapper": mapper_record(ask["url"], key), "raised": ""}
        except Exception as exc:  # reported to the test, which fails on it
            answer = {"raised": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    main()
