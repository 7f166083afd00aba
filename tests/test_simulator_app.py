"""The reference server over real HTTP: every endpoint, error path, limit and fault.

Each config gets its own ``python -m simulator --port 0`` process; they start in
parallel (module fixture) so the file stays fast.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from secton_harness.errors import BadInput
from simulator import build_app, load_config
from simulator.config import SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
A1, A2, A3, B1 = "sk-test-a1", "sk-test-a2", "sk-test-a3", "sk-test-b1"
KEYS = f"""
[[keys]]
alias = "a1"
key = "{A1}"
org = "org_alpha"
[[keys]]
alias = "a2"
key = "{A2}"
org = "org_alpha"
[[keys]]
alias = "a3"
key = "{A3}"
org = "org_alpha"
[[keys]]
alias = "b1"
key = "{B1}"
org = "org_beta"
"""
NO_LATENCY = "[latency]\nbase_ms = 0\nper_token_ms = 0\njitter_ms = 0\n"
CHAT = {"model": "copilot-zero", "messages": [{"role": "user", "content": "Tell me a joke"}],
        "temperature": 0.8}

CONFIGS = {
    "main": f"""
        max_body_bytes = 4096
        [limits.key]
        limit = 1000
        [limits.org]
        limit = 5000
        [admin]
        enabled = true
        {NO_LATENCY}""",
    "tight": f"""
        [limits]
        algorithm = "fixed_window"
        [limits.key]
        limit = 3
        window_s = "2s"
        [limits.org]
        limit = 5
        window_s = "2s"
        [admin]
        enabled = true
        {NO_LATENCY}""",
    "per_endpoint": f"""
        [limits]
        endpoints = "per_endpoint"
        headers = false
        [limits.key]
        limit = 2
        window_s = "60s"
        {NO_LATENCY}""",
    "latency": """
        [latency]
        base_ms = 40
        per_token_ms = 1
        jitter_ms = 0
        [admin]
        enabled = true""",
    "error_500": f"[faults]\nerror_500 = 1.0\n{NO_LATENCY}",
    "error_503": f"[faults]\nerror_503 = 1.0\n{NO_LATENCY}",
    "slow": f"[faults]\nslow = 1.0\nslow_s = \"300ms\"\n{NO_LATENCY}",
    "malformed_json": f"[faults]\nmalformed_json = 1.0\n{NO_LATENCY}",
    "wrong_content_type": f"[faults]\nwrong_content_type = 1.0\n{NO_LATENCY}",
    "drop_connection": f"[faults]\ndrop_connection = 1.0\n[admin]\nenabled = true\n{NO_LATENCY}",
    "schema_break": f"[faults]\nschema_break = 1.0\n{NO_LATENCY}",
    "auth_open": f"[faults]\nauth_open = true\n{NO_LATENCY}",
}


class Server:
    """One ``python -m simulator`` subprocess on a free port."""

    def __init__(self, config: Path | None, stats_file: Path | None = None) -> None:
        cmd = [sys.executable, "-m", "simulator", "--port", "0"]
        if config is not None:
            cmd += ["--config", str(config)]
        if stats_file is not None:
            cmd += ["--stats-file", str(stats_file)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.url = ""

    def wait_ready(self, timeout: float = 20.0) -> str:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].startswith("serving on "):
            self.stop()
            raise RuntimeError(f"server did not start: {self.proc.stderr.read()}")
        self.url = line[0].split()[-1]
        return self.url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("simulator")
    started: dict[str, Server] = {}
    try:
        for name, body in CONFIGS.items():
            path = folder / f"{name}.toml"
            path.write_text(textwrap.dedent(body) + KEYS)
            started[name] = Server(path)
        yield {name: server.wait_ready() for name, server in started.items()}
    finally:
        for server in started.values():
            server.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()["error"]
    assert set(body) == {"type", "message", "code"}
    if code is not None:
        assert body["code"] == code
    return body


def reset(url: str) -> None:
    assert httpx.post(f"{url}/_admin/reset").status_code == 200


# --- endpoints -----------------------------------------------------------------------


def test_models_list_filter_and_sort(servers):
    url = servers["main"]
    response = httpx.get(f"{url}/v1/models", headers=auth(A1))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "list"
    assert {"copilot-zero", "secton-embed-small"} <= {m["id"] for m in body["data"]}
    for model in body["data"]:
        assert set(model) == {"id", "object", "created", "owned_by", "category"}
        assert model["object"] == "model"
    chat = httpx.get(f"{url}/v1/models", params={"category": "chat", "sort": "name"},
                     headers=auth(A1)).json()["data"]
    names = [m["id"] for m in chat]
    assert names == sorted(names) and {m["category"] for m in chat} == {"chat"}
    newest = httpx.get(f"{url}/v1/models", params={"sort": "-created"},
                       headers=auth(A1)).json()["data"]
    assert [m["created"] for m in newest] == sorted((m["created"] for m in newest),
                                                    reverse=True)
    none = httpx.get(f"{url}/v1/models?category=nope", headers=auth(A1)).json()
    assert none["data"] == []
    bad = httpx.get(f"{url}/v1/models?sort=size", headers=auth(A1))
    assert_error(bad, 400, "invalid_value")


def test_chat_completion_shape_and_usage(servers):
    url = servers["main"]
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(B1))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "copilot-zero"
    assert body["organization_id"] == "org_beta"
    assert body["messages"][:-1] == CHAT["messages"]
    assert body["messages"][-1]["role"] == "assistant"
    usage = body["usage"]
    assert usage["prompt_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 4
    again = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(B1)).json()
    assert again["messages"][-1] == body["messages"][-1]  # deterministic
    short = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": 2},
                       headers=auth(B1)).json()
    assert short["usage"]["completion_tokens"] == 2


def test_healthz_needs_no_auth(servers):
    response = httpx.get(f"{servers['tight']}/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "code"), [
    ({}, "missing_authorization"),
    ({"Authorization": f"Basic {A1}"}, "invalid_authorization_scheme"),
    ({"Authorization": "Bearer"}, "missing_api_key"),
    ({"Authorization": "Token abc"}, "invalid_authorization_scheme"),
    ({"Authorization": "Bearer sk-test-a1x"}, "invalid_api_key"),
])
def test_unauthenticated_is_401(servers, headers, code):
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
        response = httpx.request(method, f"{servers['main']}{path}", headers=headers, json=CHAT)
        assert_error(response, 401, code)
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "invalid_type"),
    (b'{"messages": []}', "missing_field"),
    (b'{"model": "copilot-zero"}', "missing_field"),
    (b'{"model": 5, "messages": []}', "invalid_type"),
    (b'{"model": "copilot-zero", "messages": "hi"}', "invalid_type"),
    (b'{"model": "copilot-zero", "messages": []}', "invalid_value"),
    (b'{"model": "copilot-zero", "messages": [{"role": "robot", "content": "x"}]}',
     "invalid_value"),
    (b'{"model": "copilot-zero", "messages": [{"role": "user"}]}', "missing_field"),
    (b'{"model": "copilot-zero", "messages": [{"role": "user", "content": 1}]}',
     "invalid_type"),
    (b'{"model": "copilot-zero", "messages": [{"role": "user", "content": "x"}], '
     b'"temperature": "hot"}', "invalid_type"),
    (b'{"model": "copilot-zero", "messages": [{"role": "user", "content": "x"}], '
     b'"temperature": true}', "invalid_type"),
    (b'{"model": "copilot-zero", "messages": [{"role": "user", "content": "x"}], '
     b'"temperature": 9}', "invalid_value"),
    (b'{"model": "copilot-zero", "messages": [{"role": "user", "content": "x"}], '
     b'"max_tokens": 0}', "invalid_value"),
    (b'{"model": "secton-embed-small", "messages": [{"role": "user", "content": "x"}]}',
     "model_not_supported"),
])
def test_invalid_chat_is_400(servers, body, code):
    response = httpx.post(f"{servers['main']}/v1/chat/completions", content=body,
                          headers={**auth(A1), "Content-Type": "application/json"})
    assert_error(response, 400, code)


def test_unknown_model_and_path_are_404(servers):
    url = servers["main"]
    response = httpx.post(f"{url}/v1/chat/completions", headers=auth(A1),
                          json={**CHAT, "model": "gpt-9"})
    assert_error(response, 404, "model_not_found")
    assert_error(httpx.get(f"{url}/v1/nothing", headers=auth(A1)), 404, "not_found")


def test_other_methods_are_405_with_allow(servers):
    url = servers["main"]
    for method, path, allow in (("POST", "/v1/models", "GET"),
                                ("DELETE", "/v1/models", "GET"),
                                ("GET", "/v1/chat/completions", "POST"),
                                ("PUT", "/v1/chat/completions", "POST")):
        response = httpx.request(method, f"{url}{path}", headers=auth(A1))
        assert_error(response, 405, "method_not_allowed")
        assert allow in response.headers["allow"]


def test_body_over_limit_is_413(servers):
    url = f"{servers['main']}/v1/chat/completions"
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    assert_error(httpx.post(url, json=big, headers=auth(A1)), 413, "request_too_large")

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    chunked = httpx.post(url, content=chunks(), headers=auth(A1))  # no Content-Length
    assert_error(chunked, 413, "request_too_large")


# --- rate limits ---------------------------------------------------------------------


def test_key_limit_429_retry_after_and_headers(servers):
    url = servers["tight"]
    reset(url)
    started = time.monotonic()
    oks = [httpx.get(f"{url}/v1/models", headers=auth(A1)) for _ in range(3)]
    assert [r.status_code for r in oks] == [200] * 3
    assert [r.headers["x-ratelimit-remaining"] for r in oks] == ["2", "1", "0"]
    assert oks[0].headers["x-ratelimit-limit"] == "3"
    assert oks[0].headers["ratelimit-policy"] == "3;w=2"
    assert oks[0].headers["ratelimit"].startswith("limit=3, remaining=2, reset=")
    refused = httpx.get(f"{url}/v1/models", headers=auth(A1))
    assert_error(refused, 429, "rate_limit_exceeded")
    retry_after = int(refused.headers["retry-after"])
    true_wait = 2.0 - (time.monotonic() - started)
    assert true_wait <= retry_after <= true_wait + 1
    assert refused.headers["x-ratelimit-remaining"] == "0"
    time.sleep(retry_after)
    assert httpx.get(f"{url}/v1/models", headers=auth(A1)).status_code == 200


def test_org_budget_shared_across_its_keys_not_other_orgs(servers):
    url = servers["tight"]
    reset(url)
    statuses = [httpx.get(f"{url}/v1/models", headers=auth(key)).status_code
                for key in (A1, A1, A1, A2, A2, A3)]
    assert statuses == [200, 200, 200, 200, 200, 429]  # org limit 5
    assert "org" in httpx.get(f"{url}/v1/models", headers=auth(A2)).json()["error"]["message"]
    assert httpx.get(f"{url}/v1/models", headers=auth(B1)).status_code == 200
    stats = httpx.get(f"{url}/_admin/stats").json()
    refused = sum(r["count"] for r in stats["requests"] if r["status"] == 429)
    assert refused == 2


def test_shared_budget_spans_endpoints(servers):
    url = servers["tight"]
    reset(url)
    for _ in range(3):
        assert httpx.get(f"{url}/v1/models", headers=auth(A3)).status_code == 200
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(A3))
    assert_error(response, 429)


def test_per_endpoint_budgets_and_headers_off(servers):
    url = servers["per_endpoint"]
    models = [httpx.get(f"{url}/v1/models", headers=auth(A1)) for _ in range(3)]
    assert [r.status_code for r in models] == [200, 200, 429]
    assert "x-ratelimit-limit" not in models[0].headers
    assert "ratelimit" not in models[2].headers
    assert 58 <= int(models[2].headers["retry-after"]) <= 60
    chats = [httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(A1))
             for _ in range(3)]
    assert [r.status_code for r in chats] == [200, 200, 429]


# --- latency and ground truth --------------------------------------------------------


def test_latency_injected_and_recorded_exactly(servers):
    url = servers["latency"]
    reset(url)
    started = time.monotonic()
    body = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(A1)).json()
    elapsed = time.monotonic() - started
    expected = 0.040 + 0.001 * body["usage"]["completion_tokens"]
    assert elapsed >= expected
    stats = httpx.get(f"{url}/_admin/stats").json()
    assert stats["injected_latency_s"]["chat"] == [pytest.approx(expected)]
    assert stats["requests"] == [{"key_alias": "a1", "org": "org_alpha", "endpoint": "chat",
                                  "status": 200, "count": 1}]
    assert A1 not in str(stats)


def test_admin_off_by_default(servers):
    assert_error(httpx.get(f"{servers['error_500']}/_admin/stats"), 404)
    assert_error(httpx.post(f"{servers['error_500']}/_admin/reset"), 404)


def test_admin_refuses_non_loopback_clients():
    config = SimulatorConfig.model_validate({"admin": {"enabled": True}})
    app = build_app(config)

    def get(client_ip: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 1234))

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
                return await client.get("/_admin/stats")

        return asyncio.run(call())

    assert_error(get("10.1.2.3"), 403, "forbidden")
    assert get("127.0.0.1").status_code == 200


# --- faults --------------------------------------------------------------------------


def test_fault_error_500_and_503(servers):
    assert_error(httpx.get(f"{servers['error_500']}/v1/models", headers=auth(A1)), 500)
    assert_error(httpx.post(f"{servers['error_503']}/v1/chat/completions", json=CHAT,
                            headers=auth(A1)), 503)
    # faults replace only successes: a bad request stays a 400
    assert_error(httpx.post(f"{servers['error_500']}/v1/chat/completions", content=b"{",
                            headers=auth(A1)), 400)


def test_fault_slow(servers):
    started = time.monotonic()
    response = httpx.get(f"{servers['slow']}/v1/models", headers=auth(A1))
    assert response.status_code == 200 and time.monotonic() - started >= 0.3


def test_fault_malformed_json(servers):
    response = httpx.post(f"{servers['malformed_json']}/v1/chat/completions", json=CHAT,
                          headers=auth(A1))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        response.json()


def test_fault_wrong_content_type(servers):
    response = httpx.get(f"{servers['wrong_content_type']}/v1/models", headers=auth(A1))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_fault_drop_connection(servers):
    url = servers["drop_connection"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v1/models", headers=auth(A1))
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(A1))
    stats = httpx.get(f"{url}/_admin/stats").json()
    assert {(r["endpoint"], r["status"]) for r in stats["requests"]} == {("models", 0),
                                                                          ("chat", 0)}


def test_fault_schema_break(servers):
    url = servers["schema_break"]
    chat = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(A1)).json()
    assert "usage" not in chat and chat["object"] == "chat.completion"
    assert "data" not in httpx.get(f"{url}/v1/models", headers=auth(A1)).json()


def test_fault_auth_open(servers):
    url = servers["auth_open"]
    response = httpx.get(f"{url}/v1/models", headers=auth("sk-anything-at-all"))
    assert response.status_code == 200
    assert_error(httpx.get(f"{url}/v1/models"), 401)  # a token is still needed


# --- config and process --------------------------------------------------------------


def test_default_config_serves_demo_keys_and_writes_stats_file(tmp_path):
    stats_file = tmp_path / "stats.json"
    server = Server(None, stats_file)
    try:
        url = server.wait_ready()
        response = httpx.get(f"{url}/v1/models", headers=auth("sk-demo-alpha-1"))
        assert response.status_code == 200
    finally:
        server.stop()
    assert '"a1"' in stats_file.read_text()
    assert "sk-demo" not in stats_file.read_text()


def test_demo_keys_file_matches_default_config():
    import tomllib

    demo_file = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
    demo = tomllib.loads(demo_file.read_text())["keys"]
    default = load_config(None)
    assert [(k["alias"], k["key"], k["org"]) for k in demo] == [
        (k.alias, k.key, k.org) for k in default.keys]
    assert {k.org for k in default.keys} == {"org_alpha", "org_beta"}


def test_bad_config_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[limits]\nalgorithm = "magic"\n')
    with pytest.raises(BadInput, match=r"bad.toml: limits.algorithm"):
        load_config(path)
    path.write_text("[limits.key]\nwindow_s = '5x'\n")
    result = subprocess.run([sys.executable, "-m", "simulator", "--config", str(path),
                             "--port", "0"], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "limits.key.window_s" in result.stderr


def test_responses_match_openapi(servers):
    import json

    import jsonschema

    spec = json.loads((ROOT / "simulator" / "openapi.json").read_text())

    def check(response: httpx.Response, schema: str) -> None:
        jsonschema.validate(response.json(), {"$ref": f"#/components/schemas/{schema}",
                                              "components": spec["components"]})

    url = servers["main"]
    check(httpx.get(f"{url}/v1/models", headers=auth(A1)), "ModelList")
    check(httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(A1)),
          "ChatCompletion")
    check(httpx.get(f"{url}/v1/models"), "Error")
    assert set(spec["paths"]) == {"/v1/models", "/v1/chat/completions"}


# --- wire level (plain ASGI on the coalescing protocol) -------------------------------


def _raw_exchange(url: str, payload: bytes) -> bytes:
    import socket

    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_pipelined_requests_and_connection_close_get_whole_responses(servers):
    """Responses leave in one write each (protocol.py): pipelined requests get every
    response whole and in order, and ``Connection: close`` still sends the response
    before closing."""
    request = (f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {A1}\r\n"
               "\r\n").encode()
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    received = _raw_exchange(servers["main"], request + health + request + last)
    statuses = []
    rest = received
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        body, rest = rest[:length], rest[length:]
        assert len(body) == length and headers["content-type"] == "application/json"
        statuses.append(int(lines[0].split()[1]))
    assert statuses == [200, 200, 200, 404]


def test_trailing_slash_and_head(servers):
    url = servers["main"]
    assert_error(httpx.get(f"{url}/v1/models/", headers=auth(A1)), 404, "not_found")
    head = httpx.head(f"{url}/v1/models", headers=auth(A1))
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
