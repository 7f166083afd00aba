"""The API contract: packaged schemas, invariants, user overrides, and bad schema files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from secton_harness.client import ApiResponse
from secton_harness.contract import (
    DEFAULT_SCHEMA_DIR,
    SCHEMA_FILES,
    Contract,
    Violation,
    default_contract,
)
from secton_harness.errors import BadInput
from secton_harness.ratelimit_headers import RateLimitInfo

REQUEST = {"model": "copilot-zero", "messages": [{"role": "user", "content": "Tell me a joke"}],
           "temperature": 0.8}
CHAT = {  # the quick start's sample response
    "object": "chat.completion",
    "model": "copilot-zero",
    "organization_id": "org_12345678",
    "messages": [
        {"role": "user", "content": "Tell me a joke"},
        {"role": "assistant",
         "content": "Why don't skeletons fight each other? They don't have the guts."},
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28},
}
MODELS = {"object": "list", "data": [
    {"id": "copilot-mini", "object": "model", "created": 1700000000, "owned_by": "secton",
     "category": "chat"},
    {"id": "copilot-zero", "object": "model", "created": 1700000000, "owned_by": "secton",
     "category": "chat"},
]}
ERROR = {"error": {"type": "rate_limit_exceeded", "message": "Too many requests",
                   "code": "rate_limited"}}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load()


def response(status: int, body: Any, *, content_type: str = "application/json",
             error: str = "") -> ApiResponse:
    return ApiResponse(method="POST", path="/v1/chat/completions", status=status,
                       latency_s=0.01, ts=0.0, headers={"content-type": content_type},
                       content_type=content_type, body=body, text=json.dumps(body),
                       bytes=10, error=error, error_detail="", ratelimit=RateLimitInfo())


def broken(base: dict[str, Any], path: str, value: Any = ..., ) -> dict[str, Any]:
    """A deep copy of ``base`` with ``a.b[0].c`` set to ``value`` (or deleted: ...)."""
    body = copy.deepcopy(base)
    *parents, last = [int(p) if p.isdigit() else p for p in path.replace("[", ".")
                      .replace("]", "").split(".")]
    target: Any = body
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return body


# --------------------------------------------------------------------------- good bodies


def test_good_bodies_pass(contract: Contract) -> None:
    assert contract.check_chat(REQUEST, CHAT, expected_org="org_12345678") == []
    assert contract.check_models(MODELS, {"category": "chat", "sort": "name"}) == []
    assert contract.check_error(ERROR) == []
    assert contract.check_error({"error": {"type": "invalid_request", "message": "x"}}) == []


def test_extra_properties_are_allowed(contract: Contract) -> None:
    chat = {**CHAT, "id": "chatcmpl-1", "created": 1700000000, "system_fingerprint": "fp"}
    assert contract.check_chat(REQUEST, chat) == []
    models = broken(MODELS, "data[0].context_window", 8192)
    assert contract.check_models(models) == []


def test_default_contract_is_cached() -> None:
    assert default_contract() is default_contract()
    assert set(default_contract().sources) == set(SCHEMA_FILES)


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(("path", "value", "fragment"), [
    ("object", "completion", "object: 'chat.completion' was expected"),
    ("usage", ..., "'usage' is a required property"),
    ("usage.prompt_tokens", -1, "usage.prompt_tokens: -1 is less than the minimum of 0"),
    ("usage.total_tokens", "28", "usage.total_tokens: '28' is not of type 'integer'"),
    ("messages[1].role", "robot", "messages[1].role: 'robot' is not one of"),
    ("messages[0].content", None, "messages[0].content: None is not of type 'string'"),
    ("organization_id", ..., "'organization_id' is a required property"),
])
def test_chat_schema_violations(contract: Contract, path: str, value: Any,
                                fragment: str) -> None:
    found = contract.check_chat(None, broken(CHAT, path, value))
    assert any(v.kind == "schema" and fragment in v.message for v in found), found


@pytest.mark.parametrize(("path", "value", "fragment"), [
    ("object", "models", "object: 'list' was expected"),
    ("data", ..., "'data' is a required property"),
    ("data[1].created", "yesterday", "data[1].created: 'yesterday' is not of type 'integer'"),
    ("data[0].object", "engine", "data[0].object: 'model' was expected"),
    ("data[0].id", ..., "data[0]: 'id' is a required property"),
])
def test_models_schema_violations(contract: Contract, path: str, value: Any,
                                  fragment: str) -> None:
    found = contract.check_models(broken(MODELS, path, value))
    assert any(v.kind == "schema" and fragment in v.message for v in found), found


def test_error_schema_violations(contract: Contract) -> None:
    assert [v.message for v in contract.check_error({"detail": "nope"})] == [
        "(body): 'error' is a required property"]
    found = contract.check_error(broken(ERROR, "error.message", ...))
    assert [v.message for v in found] == ["error: 'message' is a required property"]


# --------------------------------------------------------------------------- invariants


def invariants(found: list[Violation]) -> list[str]:
    return [v.message for v in found if v.kind == "invariant"]


def test_total_tokens_invariant_shows_resolved_values(contract: Contract) -> None:
    found = contract.check_chat(REQUEST, broken(CHAT, "usage.total_tokens", 27))
    assert invariants(found) == [
        "usage.total_tokens (27) == prompt_tokens + completion_tokens (28)"]
    assert str(found[0]) == (
        "invariant: usage.total_tokens (27) == prompt_tokens + completion_tokens (28)")


def test_conversation_must_echo_request(contract: Contract) -> None:
    found = contract.check_chat(REQUEST, broken(CHAT, "messages[0].content", "Tell me a jok"))
    assert invariants(found) == [
        "messages[0].content ('Tell me a jok') == request.messages[0].content "
        "('Tell me a joke')"]
    found = contract.check_chat(REQUEST, broken(CHAT, "messages[0].role", "system"))
    assert invariants(found) == ["messages[0].role ('system') == request.messages[0].role "
                                 "('user')"]


def test_exactly_one_new_assistant_message(contract: Contract) -> None:
    two_new = copy.deepcopy(CHAT)
    two_new["messages"].append({"role": "assistant", "content": "again"})
    assert invariants(contract.check_chat(REQUEST, two_new)) == [
        "len(messages) (3) == len(request.messages) + 1 (2)"]
    none_new = broken(CHAT, "messages[1]", ...)
    assert invariants(contract.check_chat(REQUEST, none_new)) == [
        "len(messages) (1) == len(request.messages) + 1 (2)",
        "messages[-1].role ('user') == 'assistant'"]
    wrong_role = broken(CHAT, "messages[1].role", "tool")
    assert invariants(contract.check_chat(REQUEST, wrong_role)) == [
        "messages[-1].role ('tool') == 'assistant'"]


def test_model_and_org_echo(contract: Contract) -> None:
    found = contract.check_chat(REQUEST, broken(CHAT, "model", "copilot-one"),
                                expected_org="org_alpha")
    assert invariants(found) == [
        "model ('copilot-one') == request.model ('copilot-zero')",
        "organization_id ('org_12345678') == expected org ('org_alpha')"]


def test_models_category_and_sort_invariants(contract: Contract) -> None:
    mixed = broken(MODELS, "data[1].category", "code")
    assert invariants(contract.check_models(mixed, {"category": "chat"})) == [
        "data[1].category ('code') == category param ('chat')"]
    unsorted = copy.deepcopy(MODELS)
    unsorted["data"].reverse()
    assert invariants(contract.check_models(unsorted, {"sort": "name"})) == [
        "data sorted by name: data[0] ('copilot-zero') <= data[1] ('copilot-mini')"]
    assert contract.check_models(unsorted) == []  # no sort asked, no order required


def test_invariants_survive_broken_shapes(contract: Contract) -> None:
    for body in (None, [], "text", {"messages": "x", "usage": []}, {"data": [1, None]}):
        contract.check_chat(REQUEST, body)
        contract.check_models(body, {"category": "chat", "sort": "name"})
        contract.check_error(body)


# --------------------------------------------------------------------------- check_response


def test_check_response_dispatches_by_status(contract: Contract) -> None:
    assert contract.check_response("chat", response(200, CHAT), REQUEST) == []
    assert contract.check_response("chat", response(429, ERROR), REQUEST) == []
    assert contract.check_response("models", response(200, MODELS)) == []
    found = contract.check_response("chat", response(500, {"oops": True}), REQUEST)
    assert [v.kind for v in found] == ["schema"]


def test_check_response_content_type_on_every_status(contract: Contract) -> None:
    for status in (200, 401, 500):
        found = contract.check_response(
            "chat", response(status, None, content_type="text/html", error="content_type"))
        assert found == [Violation("content_type",
                                   "content_type ('text/html') == application/json")]


def test_check_response_invalid_json_and_no_response(contract: Contract) -> None:
    found = contract.check_response("chat", response(200, None, error="invalid_json"))
    assert [v.kind for v in found] == ["schema"]
    assert "not valid JSON" in found[0].message
    found = contract.check_response("models", response(0, None, error="connect"))
    assert [v.kind for v in found] == ["status"]


def test_check_response_expected_status(contract: Contract) -> None:
    found = contract.check_response("chat", response(429, ERROR), REQUEST, expected_status=200)
    assert found == [Violation("status", "status (429) == 200")]
    found = contract.check_response("chat", response(500, ERROR), expected_status=(401, 403))
    assert found == [Violation("status", "status (500) in [401, 403]")]


def test_check_response_rejects_unknown_kind(contract: Contract) -> None:
    with pytest.raises(BadInput, match="unknown"):
        contract.check_response("embeddings", response(200, {}))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- loading


def test_user_dir_overrides_single_files(tmp_path: Path) -> None:
    strict_error = json.loads((DEFAULT_SCHEMA_DIR / "error.schema.json").read_text())
    strict_error["properties"]["error"]["required"].append("code")
    (tmp_path / "error.schema.json").write_text(json.dumps(strict_error))
    (tmp_path / "README.txt").write_text("other files are ignored")
    contract = Contract.load(tmp_path)
    assert contract.sources["error"] == tmp_path / "error.schema.json"
    assert contract.sources["chat"] == DEFAULT_SCHEMA_DIR / "chat_completion.schema.json"
    found = contract.check_error({"error": {"type": "x", "message": "y"}})
    assert [v.message for v in found] == ["error: 'code' is a required property"]
    assert contract.check_chat(REQUEST, CHAT) == []


def test_bad_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "chat_completion.schema.json").write_text("{not json")
    with pytest.raises(BadInput, match=r"chat_completion\.schema\.json: not valid JSON"):
        Contract.load(tmp_path)


def test_invalid_schema_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "models_list.schema.json").write_text(json.dumps(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "lists"}))
    with pytest.raises(BadInput, match=r"models_list\.schema\.json: invalid JSON Schema"):
        Contract.load(tmp_path)
    (tmp_path / "models_list.schema.json").write_text("[1, 2]")
    with pytest.raises(BadInput, match=r"models_list\.schema\.json: a JSON Schema is an"):
        Contract.load(tmp_path)


def test_unknown_schema_file_and_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a directory"):
        Contract.load(tmp_path / "nope")
    (tmp_path / "chat.schema.json").write_text("{}")
    with pytest.raises(BadInput, match=r"chat\.schema\.json: unknown schema file"):
        Contract.load(tmp_path)


def test_packaged_schemas_are_valid_2020_12() -> None:
    for file in SCHEMA_FILES.values():
        schema = json.loads((DEFAULT_SCHEMA_DIR / file).read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
