"""The compiled yes/no check in front of jsonschema (secton_harness.fast_schema): the same
violations on both paths, for any body, and used only where its meaning is the same."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secton_harness.contract import Contract, default_contract
from secton_harness.fast_schema import compile_fast, passes, uses_shared_keywords_only

FAST = default_contract()
PLAIN = Contract(FAST._validators, FAST.sources)  # the same validators, no compiled checks

#: Field names of the three schemas, so generated bodies often come close to valid ones.
NAMES = ["object", "data", "id", "created", "owned_by", "choices", "index", "message",
         "role", "content", "finish_reason", "usage", "prompt_tokens", "completion_tokens",
         "total_tokens", "model", "error", "type", "code", "list", "chat.completion",
         "assistant", "stop"]
SCALARS = (st.none() | st.booleans() | st.integers(-3, 10**20) | st.sampled_from(NAMES)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5)
           | st.sampled_from([0, 1, 1.0, -1, True, False, "", 0.5]))
BODIES = st.recursive(
    SCALARS,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=3), inner,
                                     max_size=6)),
    max_leaves=30)

VALID_MODELS = {"object": "list", "data": [{"id": "m1", "object": "model", "created": 1,
                                            "owned_by": "secton"}]}
VALID_CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m1",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
VALID_ERROR = {"error": {"type": "invalid_request_error", "message": "no", "code": "x"}}


def _mutations(body: Any) -> st.SearchStrategy[Any]:
    """A valid body with one value somewhere replaced by a generated one."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*path, index))

    walk(body, ())

    def replace(path: tuple[Any, ...], value: Any) -> Any:
        if not path:
            return value
        out = copy.deepcopy(body)
        node = out
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        return out

    return st.builds(replace, st.sampled_from(paths), BODIES)


def _same(name: str, body: Any) -> None:
    assert FAST.validate(name, body) == PLAIN.validate(name, body)


def test_every_packaged_schema_has_a_compiled_check() -> None:
    """Else the hot path silently falls back to the slow validator."""
    assert all(FAST._fast_checks[name] is not None for name in ("models", "chat", "error"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES | _mutations(VALID_MODELS))
def test_models_same_violations_on_both_paths(body: Any) -> None:
    _same("models", body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES | _mutations(VALID_CHAT))
def test_chat_same_violations_on_both_paths(body: Any) -> None:
    _same("chat", body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES | _mutations(VALID_ERROR))
def test_error_same_violations_on_both_paths(body: Any) -> None:
    _same("error", body)


@pytest.mark.parametrize("body", [
    VALID_MODELS, VALID_CHAT, VALID_ERROR, {"object": "list", "data": [{"id": 1.0}]},
    {"object": "list", "data": [{"id": True}]}, {"object": "list", "data": math.nan},
])
def test_edge_values_agree(body: Any) -> None:
    for name in ("models", "chat", "error"):
        _same(name, body)


@pytest.mark.parametrize("keyword", [
    {"prefixItems": [{"type": "string"}]}, {"unevaluatedProperties": False},
    {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
    {"dependentRequired": {"a": ["b"]}}, {"items": [{"type": "string"}]},
    {"properties": {"a": {"minContains": 1}}},
])
def test_schemas_outside_the_shared_keywords_keep_the_plain_validator(
        keyword: dict[str, Any]) -> None:
    schema = {"type": "object", **keyword}
    assert not uses_shared_keywords_only(schema)
    assert compile_fast(schema) is None


def test_the_check_never_fills_in_defaults() -> None:
    check = compile_fast({"type": "object", "properties": {"a": {"default": 1}}})
    assert check is not None
    body: dict[str, Any] = {}
    assert passes(check, body) and body == {}


def test_formats_are_annotations_on_both_paths() -> None:
    check = compile_fast({"type": "string", "format": "email"})
    assert check is not None and passes(check, "not an email")
