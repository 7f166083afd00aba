"""The reference server under hostile input, over real HTTP.

* schemathesis generates requests from ``simulator/openapi.json`` (valid and invalid
  bodies, queries, headers; with and without a valid key) and each is sent to a running
  server: no answer may be a 5xx, and every answer is JSON (faults all zero).
* Org isolation: a chat answer always names the org of the key that asked, never another.
* Request-body size limit: an oversized body gets 413 (declared or streamed).
* Key comparison: the implementation hashes the presented key and confirms with
  ``hmac.compare_digest`` (the timing-safe compare), which the test checks by source and by
  behaviour (a key that shares a long prefix with a real key is refused like any other).

schemathesis' own transport (requests) is broken here by urllib3-future (brought in by
niquests through grafana-client), so the generated cases are sent with httpx.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import keys as simulator_keys

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "simulator" / "openapi.json"
KEYS = [
    {"alias": "a1", "key": "sk-fuzz-alpha-1", "org": "org_alpha"},
    {"alias": "a2", "key": "sk-fuzz-alpha-2", "org": "org_alpha"},
    {"alias": "b1", "key": "sk-fuzz-beta-1", "org": "org_beta"},
]
FUZZ_CONFIG = {
    "seed": 7,
    "max_body_bytes": 4096,
    "limits": {"algorithm": "none"},
    "latency": {"base_ms": 0, "per_token_ms": 0, "jitter_ms": 0},
    "faults": {"error_500": 0, "error_503": 0, "slow": 0, "malformed_json": 0,
               "wrong_content_type": 0, "drop_connection": 0, "schema_break": 0},
    "keys": KEYS,
}
SCHEMA = schemathesis.openapi.from_path(str(SPEC))
AUTH_HEADERS = st.sampled_from([
    {"Authorization": "Bearer sk-fuzz-alpha-1"},
    {"Authorization": "Bearer sk-fuzz-beta-1"},
    {},
    {"Authorization": "Bearer sk-fuzz-alpha-1x"},
    {"Authorization": "Basic c2stZnV6ei1hbHBoYS0x"},
])


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from conftest import write_toml

    from simulator.launcher import ReferenceServer

    path = write_toml(tmp_path_factory.mktemp("fuzz") / "sim.toml", FUZZ_CONFIG)
    with ReferenceServer(path) as server:
        yield server


def _send(client: httpx.Client, base_url: str, case: Any, auth: dict[str, str]) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items()
               if k.lower() != "authorization"}
    headers.update(auth)
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["content"] = json.dumps(kwargs["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        body["content"] = data if isinstance(data, bytes) else str(data).encode()
    return client.request(kwargs["method"], kwargs["url"], params=kwargs.get("params"),
                          headers=headers, **body)


def _assert_sane(response: httpx.Response, case: Any) -> None:
    described = f"{case.method} {case.path} -> {response.status_code}: {response.text[:200]}"
    assert response.status_code < 500, described
    assert response.headers.get("content-type", "").startswith("application/json"), described
    json.loads(response.content)


@pytest.mark.parametrize(("path", "method"), [("/v1/models", "GET"),
                                              ("/v1/chat/completions", "POST")])
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_error_on_any_generated_request(fuzz_server: Any, path: str, method: str,
                                                  mode: str) -> None:
    operation = SCHEMA[path][method]
    from schemathesis import GenerationMode

    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
    sent: list[int] = []
    with httpx.Client(timeout=10) as client:
        @settings(max_examples=120, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy, auth=AUTH_HEADERS)
        def run(case: Any, auth: dict[str, str]) -> None:
            response = _send(client, fuzz_server.url, case, auth)
            sent.append(response.status_code)
            _assert_sane(response, case)

        run()
    assert len(sent) >= 20, "the fuzzer sent too few requests to mean anything"


@pytest.mark.parametrize("raw", [
    b"", b"{", b"null", b"[]", b'"x"', b"\xff\xfe\x00", b'{"model": 1}',
    b'{"model": "copilot-zero", "messages": "hi"}',
    b'{"model": "copilot-zero", "messages": [{"role": "user", "content": null}]}',
    b'{"model": "copilot-zero", "messages": [], "temperature": "hot"}',
    b'{"model": "copilot-zero", "messages": [{"role": "user", "content": "x"}], '
    b'"max_tokens": 1e400}',
    b'{"model": "copilot-zero", "messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"a": ' * 2000 + b"1" + b"}" * 2000,
])
def test_hand_picked_bodies_get_4xx_json(fuzz_server: Any, raw: bytes) -> None:
    response = httpx.post(f"{fuzz_server.url}/v1/chat/completions", content=raw, timeout=10,
                          headers={"Authorization": "Bearer sk-fuzz-alpha-1",
                                   "Content-Type": "application/json"})
    assert response.status_code < 500, response.text[:200]
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("header", [
    "Bearer " + "x" * 10000, "Bearer \u00e9t\u00e9", "bearer sk-fuzz-alpha-1 extra",
    "Bearer\tsk-fuzz-alpha-1", "", "Token sk-fuzz-alpha-1",
])
def test_odd_authorization_headers_get_401(fuzz_server: Any, header: str) -> None:
    response = httpx.get(f"{fuzz_server.url}/v1/models", timeout=10,
                         headers={"Authorization": header.encode("utf-8")})  # type: ignore[dict-item]
    assert response.status_code == 401, response.text[:200]


def test_no_org_sees_another_orgs_data(fuzz_server: Any) -> None:
    body = {"model": "copilot-zero", "messages": [{"role": "user", "content": "secret of"}]}
    with httpx.Client(timeout=10) as client:
        for key in KEYS * 3:
            response = client.post(f"{fuzz_server.url}/v1/chat/completions", json=body,
                                   headers={"Authorization": f"Bearer {key['key']}"})
            assert response.status_code == 200
            data = response.json()
            assert data["organization_id"] == key["org"]
            text = response.text
            others = {k["org"] for k in KEYS} - {key["org"]}
            assert not any(org in text for org in others)
            assert not any(k["key"] in text for k in KEYS)


def test_oversized_body_gets_413_declared_and_streamed(fuzz_server: Any) -> None:
    headers = {"Authorization": "Bearer sk-fuzz-alpha-1", "Content-Type": "application/json"}
    big = b'{"model": "copilot-zero", "messages": [{"role": "user", "content": "' + \
        b"a" * 10000 + b'"}]}'
    declared = httpx.post(f"{fuzz_server.url}/v1/chat/completions", content=big,
                          headers=headers, timeout=10)
    assert declared.status_code == 413

    def chunks() -> Any:
        for _ in range(20):
            yield b"a" * 1000

    streamed = httpx.post(f"{fuzz_server.url}/v1/chat/completions", content=chunks(),
                          headers=headers, timeout=10)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "request_too_large"


def test_key_comparison_is_constant_time_by_construction(fuzz_server: Any) -> None:
    source = inspect.getsource(simulator_keys.KeyStore.authenticate)
    assert "hmac.compare_digest" in source and "_digest(token)" in source
    # Near misses (long shared prefix, one byte more or less) are refused like any key.
    for guess in ["sk-fuzz-alpha-", "sk-fuzz-alpha-11", "sk-fuzz-alpha-1\u00e9", "sk-fuzz-alpha-2x",
                  "SK-FUZZ-ALPHA-1"]:
        response = httpx.get(f"{fuzz_server.url}/v1/models", timeout=10,
                             headers={"Authorization": f"Bearer {guess}".encode()})
        assert response.status_code == 401, guess
        assert guess.strip() not in response.text
