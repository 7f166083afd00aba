"""The probe client: error classification, key hygiene, and the real reference server.

Two layers:

- a tiny in-test socket server scripted per path, so every error class is produced
  deterministically without depending on the simulator;
- the reference server (``python -m simulator``) in a subprocess on a free port, one per
  fault config, for the same classes end to end (sync and async).
"""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from secton_harness.client import (
    ERROR_CLASSES,
    USER_AGENT,
    ApiResponse,
    AsyncSectonClient,
    SectonClient,
    chat_payload,
    mask_key,
)
from secton_harness.errors import BadInput
from simulator.launcher import ReferenceServer

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-secret-key-9876"
MESSAGES = [{"role": "user", "content": "Tell me a joke"}]


# --------------------------------------------------------------------------- scripted server


def _reply(status: int, body: bytes, content_type: str = "application/json",
           extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
    return head.encode() + body


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += self.request.recv(65536)
        route = path.split("?")[0]
        sock = self.request
        if route == "/echo":
            sock.sendall(_reply(200, json.dumps({"path": path, "headers": headers,
                                                 "body": body.decode()}).encode()))
        elif route == "/v1/models":
            sock.sendall(_reply(200, json.dumps({"object": "list", "data": [],
                                                 "query": path}).encode()))
        elif route == "/limited":
            sock.sendall(_reply(429, b'{"error":{"type":"rate_limit","message":"slow down"}}',
                                extra="Retry-After: 3\r\nX-RateLimit-Limit: 10\r\n"
                                      "X-RateLimit-Remaining: 0\r\n"))
        elif route == "/slow":
            time.sleep(1.5)
            sock.sendall(_reply(200, b"{}"))
        elif route == "/html":
            sock.sendall(_reply(200, b"<html>hi</html>", "text/html; charset=utf-8"))
        elif route == "/badjson":
            sock.sendall(_reply(200, b'{"object": "chat.comp', "application/json"))
        elif route == "/problem-json":
            sock.sendall(_reply(400, b'{"error":{}}', "application/problem+json"))
        elif route == "/big":
            sock.sendall(_reply(200, json.dumps({"x": "a" * 200_000}).encode()))
        elif route == "/drop":
            sock.shutdown(socket.SHUT_RDWR)
        elif route == "/drop-mid-body":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"partial\":")
            sock.shutdown(socket.SHUT_RDWR)
        elif route == "/500":
            sock.sendall(_reply(500, b'{"error":{"type":"server_error","message":"boom"}}'))
        else:
            sock.sendall(_reply(404, b'{"error":{"type":"not_found","message":"no"}}'))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the async test opens many connections at once


@pytest.fixture(scope="module")
def scripted() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_no_key(reply: ApiResponse, key: str = KEY) -> None:
    for text in (repr(reply), reply.error_detail, str(reply.headers)):
        assert key not in text
        assert key.strip() not in text


# --------------------------------------------------------------------------- unit


def test_error_classes_are_the_core_vocabulary() -> None:
    from secton_harness import error_classes

    assert ERROR_CLASSES is error_classes.ERROR_CLASSES
    assert {"timeout", "connect", "reset", "too_large", "protocol", "invalid_json",
            "content_type"} <= set(ERROR_CLASSES)


def test_mask_key() -> None:
    assert mask_key("sk-demo-alpha-1234") == "sk-…1234"
    assert mask_key("abcdefghijklmnop") == "…mnop"  # no sk- prefix to keep
    assert mask_key("sk-short") == "***"
    assert mask_key("") == "***"


def test_chat_payload() -> None:
    assert chat_payload("m", MESSAGES) == {"model": "m", "messages": MESSAGES}
    assert chat_payload("m", MESSAGES, 0.5, stream=False) == {
        "model": "m", "messages": MESSAGES, "temperature": 0.5, "stream": False}


@pytest.mark.parametrize("url", ["ftp://host", "http://", "127.0.0.1:8080", "", "http://h:x"])
def test_bad_base_url_is_bad_input(url: str) -> None:
    with pytest.raises(BadInput, match="not an http"):
        SectonClient(url)


def test_bad_base_url_hides_password() -> None:
    with pytest.raises(BadInput) as caught:
        SectonClient("http://user:hunter2@:99")
    assert "hunter2" not in str(caught.value)


def test_bad_timeout_is_bad_input() -> None:
    with pytest.raises(BadInput, match="timeout_s"):
        SectonClient("http://127.0.0.1:1", timeout_s=0)


def test_repr_has_no_secrets() -> None:
    client = SectonClient("http://127.0.0.1:1", timeout_s=2)
    assert repr(client) == "SectonClient('http://127.0.0.1:1', timeout_s=2)"
    client.close()


# --------------------------------------------------------------------------- scripted server


def test_headers_sent_and_v1_not_doubled(scripted: str) -> None:
    with SectonClient(scripted + "/") as client:
        reply = client.request("POST", "/echo", key=KEY, json_body={"a": 1})
        assert reply.ok and reply.status == 200 and reply.error == ""
        sent = reply.body["headers"]
        assert sent["authorization"] == f"Bearer {KEY}"
        assert sent["content-type"] == "application/json"
        assert sent["user-agent"] == USER_AGENT
        assert json.loads(reply.body["body"]) == {"a": 1}
        assert reply.method == "POST" and reply.path == "/echo"
        assert reply.bytes == len(reply.text.encode())
        assert reply.latency_s > 0 and abs(reply.ts - time.time()) < 60
        _assert_no_key(reply)
    with SectonClient(scripted + "/v1") as client:
        reply = client.list_models(KEY, category="chat", sort="name")
        assert reply.body["query"] == "/v1/models?category=chat&sort=name"


def test_authorization_override_and_no_auth(scripted: str) -> None:
    with SectonClient(scripted) as client:
        reply = client.request("GET", "/echo", key=KEY, authorization="Basic eDp5")
        assert reply.body["headers"]["authorization"] == "Basic eDp5"
        reply = client.request("GET", "/echo", key=None)
        assert "authorization" not in reply.body["headers"]
        reply = client.request("GET", "/echo", key=None, authorization="Bearer ")
        assert reply.body["headers"]["authorization"] == "Bearer"  # OWS is not part of it
        reply = client.request("GET", "/echo", key=None, authorization="")
        assert reply.body["headers"]["authorization"] == ""
        reply = client.request("POST", "/echo", key=KEY, content=b"{not json")
        assert reply.body["body"] == "{not json"
        with pytest.raises(BadInput, match="not both"):
            client.request("POST", "/echo", key=KEY, json_body={}, content="x")


def test_ratelimited_response_parsed(scripted: str) -> None:
    with SectonClient(scripted) as client:
        reply = client.request("GET", "/limited", key=KEY)
    assert reply.status == 429 and not reply.ok
    assert reply.error == ""
    assert reply.body["error"]["type"] == "rate_limit"
    assert (reply.ratelimit.retry_after_s, reply.ratelimit.limit,
            reply.ratelimit.remaining) == (3.0, 10, 0)


@pytest.mark.parametrize(("path", "status", "error"), [
    ("/html", 200, "content_type"),
    ("/badjson", 200, "invalid_json"),
    ("/problem-json", 400, ""),
    ("/drop", 0, "reset"),
    ("/drop-mid-body", 200, "reset"),
    ("/500", 500, ""),
])
def test_error_classification(scripted: str, path: str, status: int, error: str) -> None:
    with SectonClient(scripted) as client:
        reply = client.request("GET", path, key=KEY)
    assert (reply.status, reply.error) == (status, error), reply.error_detail
    assert not reply.ok
    assert (reply.body is None) == (error != "")
    _assert_no_key(reply)


def test_timeout_and_connect(scripted: str) -> None:
    with SectonClient(scripted, timeout_s=0.3) as client:
        reply = client.request("GET", "/slow", key=KEY)
    assert (reply.status, reply.error) == (0, "timeout")
    assert 0.2 < reply.latency_s < 1.4
    with SectonClient(f"http://127.0.0.1:{_free_port()}") as client:
        reply = client.request("GET", "/v1/models", key=KEY)
    assert (reply.status, reply.error) == (0, "connect")
    assert reply.error_detail.startswith("ConnectError: ")
    _assert_no_key(reply)


def test_text_is_truncated_but_bytes_and_body_are_whole(scripted: str) -> None:
    with SectonClient(scripted) as client:
        reply = client.request("GET", "/big", key=KEY)
    assert reply.ok and len(reply.body["x"]) == 200_000
    assert len(reply.text) == 64 * 1024 and reply.bytes > 200_000


@pytest.mark.parametrize("key", ["sk-bad-newline-key-4321\n", "sk-nön-ascii-key-4321"])
def test_illegal_key_never_leaks(scripted: str, key: str) -> None:
    with SectonClient(scripted) as client:
        reply = client.request("GET", "/echo", key=key)
    assert reply.status == 0 and reply.error == "protocol"
    _assert_no_key(reply, key)
    assert "4321" not in reply.error_detail.replace("…4321", "")


def test_connection_reuse(scripted: str) -> None:
    with SectonClient(scripted) as client:
        replies = [client.request("GET", "/echo", key=KEY) for _ in range(3)]
    assert all(r.ok for r in replies)


def test_async_client_same_classes(scripted: str) -> None:
    async def run() -> list[ApiResponse]:
        async with AsyncSectonClient(scripted, timeout_s=0.5) as client:
            return list(await asyncio.gather(
                client.request("GET", "/echo", key=KEY),
                client.request("GET", "/limited", key=KEY),
                client.request("GET", "/html", key=KEY),
                client.request("GET", "/badjson", key=KEY),
                client.request("GET", "/drop", key=KEY),
                client.request("GET", "/drop-mid-body", key=KEY),
                client.request("GET", "/slow", key=KEY),
                client.list_models(KEY, sort="name"),
                client.chat(KEY, "copilot-zero", MESSAGES),
            ))

    got = [(r.status, r.error) for r in asyncio.run(run())]
    assert got == [(200, ""), (429, ""), (200, "content_type"), (200, "invalid_json"),
                   (0, "reset"), (200, "reset"), (0, "timeout"), (200, ""), (404, "")]


# --------------------------------------------------------------------------- reference server


_KEYS = """
[[keys]]
alias = "a1"
key = "sk-demo-alpha-1"
org = "org_alpha"

[[keys]]
alias = "a2"
key = "sk-demo-alpha-2"
org = "org_alpha"
"""


def _config(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(f"seed = 7\n[latency]\nbase_ms = 0\nper_token_ms = 0\njitter_ms = 0\n"
                    f"{body}\n{_KEYS}")
    return path


_FAULT_CONFIGS = {
    "plain": "[limits.key]\nlimit = 3\nwindow_s = \"60s\"\n",
    "slow": "[faults]\nslow = 1.0\nslow_s = \"2s\"\n",
    "malformed_json": "[faults]\nmalformed_json = 1.0\n",
    "wrong_content_type": "[faults]\nwrong_content_type = 1.0\n",
    "drop_connection": "[faults]\ndrop_connection = 1.0\n",
    "error_500": "[faults]\nerror_500 = 1.0\n",
}


@pytest.fixture(scope="module")
def simulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """Start one reference server per fault config on first use; stop them all at the end."""
    tmp = tmp_path_factory.mktemp("simulator")
    started: dict[str, ReferenceServer] = {}

    def url(name: str) -> str:
        if name not in started:
            started[name] = ReferenceServer(_config(tmp, name, _FAULT_CONFIGS[name])).start()
        return started[name].url

    yield url
    for sim in started.values():
        sim.stop()


def test_simulator_200_401_429(simulators: Callable[[str], str]) -> None:
    with SectonClient(simulators("plain")) as client:
        models = client.list_models("sk-demo-alpha-1")
        assert models.ok, (models.status, models.error, models.text[:200])
        assert models.body["object"] == "list"
        denied = client.list_models("sk-not-a-key-0000")
        assert denied.status == 401 and denied.error == ""
        assert set(denied.body["error"]) >= {"type", "message"}
        _assert_no_key(denied, "sk-not-a-key-0000")
        bad_auth = client.request("GET", "/v1/models", key=None, authorization="Basic eDp5")
        assert bad_auth.status == 401
        replies = [client.chat("sk-demo-alpha-1", "copilot-zero", MESSAGES) for _ in range(4)]
    statuses = [r.status for r in replies]
    assert 429 in statuses, statuses
    limited = next(r for r in replies if r.status == 429)
    assert limited.status == 429 and limited.error == ""
    assert limited.ratelimit.present and limited.ratelimit.retry_after_s is not None
    assert limited.ratelimit.retry_after_s >= 0
    assert limited.ratelimit.inconsistencies() == ()


def test_simulator_chat_conforms_to_contract(simulators: Callable[[str], str]) -> None:
    from secton_harness.contract import default_contract

    contract = default_contract()
    payload = chat_payload("copilot-zero", MESSAGES, temperature=0.8)
    with SectonClient(simulators("plain")) as client:
        reply = client.chat("sk-demo-alpha-2", "copilot-zero", MESSAGES, temperature=0.8)
        assert reply.ok
        assert contract.check_response("chat", reply, request_payload=payload,
                                       expected_org="org_alpha", expected_status=200) == []
        params = {"category": "chat", "sort": "name"}
        reply = client.list_models("sk-demo-alpha-2", **params)
        assert contract.check_response("models", reply, params=params) == []
        reply = client.chat("sk-demo-alpha-2-unknown", "copilot-zero", MESSAGES)
        assert reply.status == 401
        assert contract.check_response("chat", reply) == []  # a conforming error body
    with SectonClient(simulators("error_500")) as client:
        reply = client.list_models("sk-demo-alpha-1")
        assert default_contract().check_response("models", reply) == []


@pytest.mark.parametrize(("fault", "status", "error"), [
    ("malformed_json", 200, "invalid_json"),
    ("wrong_content_type", 200, "content_type"),
    ("drop_connection", 0, "reset"),
    ("error_500", 500, ""),
])
def test_simulator_faults_sync_and_async(simulators: Callable[[str], str], fault: str,
                                         status: int, error: str) -> None:
    url = simulators(fault)
    with SectonClient(url) as client:
        reply = client.chat("sk-demo-alpha-1", "copilot-zero", MESSAGES)
    assert (reply.status, reply.error) == (status, error), reply.error_detail

    async def run() -> ApiResponse:
        async with AsyncSectonClient(url) as client:
            return await client.chat("sk-demo-alpha-1", "copilot-zero", MESSAGES)

    reply = asyncio.run(run())
    assert (reply.status, reply.error) == (status, error), reply.error_detail


def test_simulator_slow_fault_times_out(simulators: Callable[[str], str]) -> None:
    url = simulators("slow")
    with SectonClient(url, timeout_s=0.5) as client:
        reply = client.chat("sk-demo-alpha-1", "copilot-zero", MESSAGES)
    assert (reply.status, reply.error) == (0, "timeout")

    async def run() -> ApiResponse:
        async with AsyncSectonClient(url, timeout_s=0.5) as client:
            return await client.list_models("sk-demo-alpha-1")

    assert asyncio.run(run()).error == "timeout"
