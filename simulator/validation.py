"""Validation of chat request bodies into a typed request or a 400/404 problem.

Unknown top-level fields (e.g. ``stream``, ``user``) and unknown message fields
(e.g. ``name``) are ignored, as OpenAI-style APIs do; everything the server uses is
checked strictly (booleans are not numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from simulator.catalog import BY_ID, CHAT_CATEGORIES

ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A valid chat request."""

    model: str
    messages: list[dict[str, str]]
    temperature: float | None
    max_tokens: int | None


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a request is not valid: status, error code, one-line message."""

    status: int
    code: str
    message: str


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _encodable(text: str) -> bool:
    """False for strings JSON can hold but UTF-8 cannot (``"\\ud800"``): echoing them
    back would fail while encoding the reply, i.e. a 500 for a client's mistake."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_chat(raw: bytes) -> ChatRequest | Problem:
    """Parse and validate a ``POST /v1/chat/completions`` body."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Problem(400, "invalid_json", "Request body is not valid JSON")
    except RecursionError:
        return Problem(400, "invalid_json", "Request body is nested too deeply")
    if not isinstance(body, dict):
        return Problem(400, "invalid_type", "Request body must be a JSON object")
    model = body.get("model")
    if model is None:
        return Problem(400, "missing_field", "'model' is required")
    if not isinstance(model, str):
        return Problem(400, "invalid_type", "'model' must be a string")
    if not _encodable(model):
        return Problem(400, "invalid_value", "'model' is not valid Unicode (lone surrogate)")
    messages = body.get("messages")
    if messages is None:
        return Problem(400, "missing_field", "'messages' is required")
    if not isinstance(messages, list):
        return Problem(400, "invalid_type", "'messages' must be a list")
    if not messages:
        return Problem(400, "invalid_value", "'messages' must not be empty")
    clean: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return Problem(400, "invalid_type", f"'messages[{index}]' must be an object")
        for field in ("role", "content"):
            if field not in message:
                return Problem(400, "missing_field", f"'messages[{index}].{field}' is required")
            if not isinstance(message[field], str):
                return Problem(400, "invalid_type",
                               f"'messages[{index}].{field}' must be a string")
            if not _encodable(message[field]):
                return Problem(400, "invalid_value", f"'messages[{index}].{field}' is not "
                               "valid Unicode (lone surrogate)")
        if message["role"] not in ROLES:
            return Problem(400, "invalid_value", f"'messages[{index}].role' must be one of "
                           "system, user, assistant")
        clean.append({"role": message["role"], "content": message["content"]})
    temperature = body.get("temperature")
    if temperature is not None:
        if not _number(temperature):
            return Problem(400, "invalid_type", "'temperature' must be a number")
        if not 0 <= temperature <= 2:
            return Problem(400, "invalid_value", "'temperature' must be between 0 and 2")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return Problem(400, "invalid_type", "'max_tokens' must be an integer")
        if max_tokens < 1:
            return Problem(400, "invalid_value", "'max_tokens' must be >= 1")
    entry = BY_ID.get(model)
    if entry is None:
        return Problem(404, "model_not_found", f"The model '{model[:100]}' does not exist")
    if entry["category"] not in CHAT_CATEGORIES:
        return Problem(400, "model_not_supported",
                       f"The model '{model}' is not a chat model")
    return ChatRequest(model, clean, float(temperature) if temperature is not None else None,
                       max_tokens)
