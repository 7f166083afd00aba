"""The API contract: JSON Schemas users can edit, plus the invariants a schema can't express.

One :class:`Contract` serves probes, load tests and the reference server's tests, so all
three judge a response the same way. The schemas live in ``secton_harness/schemas/``
(draft 2020-12); a user directory may override any of them file by file:

=====================  =============================================================
``models``             ``models_list.schema.json`` — ``GET /v1/models``
``chat``               ``chat_completion.schema.json`` — ``POST /v1/chat/completions``
``error``              ``error.schema.json`` — every non-2xx response
=====================  =============================================================

Every check returns a list of :class:`Violation`; empty means the response conforms.
Messages show the resolved values, Gatus-style::

    invariant: usage.total_tokens (27) == prompt_tokens + completion_tokens (28)

Example::

    contract = Contract.load(Path("my-schemas"))   # or Contract.load() / default_contract()
    for violation in contract.check_response("chat", reply, request_payload=payload):
        print(violation)
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jsonschema
from jsonschema.protocols import Validator

from secton_harness.client import ApiResponse
from secton_harness.endpoints import BY_NAME, CHAT, ENDPOINTS, MODELS
from secton_harness.errors import BadInput
from secton_harness.fast_schema import Check, compile_fast, passes

__all__ = [
    "DEFAULT_SCHEMA_DIR",
    "SCHEMA_FILES",
    "VIOLATION_KINDS",
    "Contract",
    "Violation",
    "default_contract",
]

DEFAULT_SCHEMA_DIR = Path(__file__).with_name("schemas")
#: Schema name -> file name, in both the packaged and a user schema directory.
SCHEMA_FILES: dict[str, str] = {
    **{endpoint.name: endpoint.schema for endpoint in ENDPOINTS},
    "error": "error.schema.json",
}
VIOLATION_KINDS = ("schema", "invariant", "content_type", "status")
ViolationKind = Literal["schema", "invariant", "content_type", "status"]
_MAX_SCHEMA_ERRORS = 20
_MAX_SHOWN = 60


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a response breaks the contract: ``kind`` is one of :data:`VIOLATION_KINDS`."""

    kind: ViolationKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


def _path(parts: Collection[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def _load_schema(path: Path) -> tuple[Validator, Check | None]:
    """The validator of the schema at ``path`` and its compiled yes/no check (if any)."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"{path}: cannot read schema: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(schema, dict | bool):
        raise BadInput(f"{path}: a JSON Schema is an object (or true/false), "
                       f"not {type(schema).__name__}")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _path(exc.absolute_path)
        raise BadInput(f"{path}: invalid JSON Schema at {where}: {exc.message}") from None
    return cls(schema), compile_fast(schema)


#: Conventional fields the quick start does not document, by schema: ``(list key, field)``
#: with an empty list key for the body's top-level object (``"error"`` for the error
#: object). A missing one is a *warning* (the probe result ``warning``), never a failure:
#: the contract's own words decide what is required. A user schema that requires them
#: turns them into schema failures.
CONVENTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "models": (("data", "created"), ("data", "owned_by")),
    "error": (("error", "code"),),
}


class Contract:
    """Compiled validators for the three schemas plus the invariant checks."""

    def __init__(self, validators: Mapping[str, Validator], sources: Mapping[str, Path],
                 fast_checks: Mapping[str, Check | None] | None = None) -> None:
        self._validators = dict(validators)
        #: Compiled yes/no checks in front of the validators (secton_harness.fast_schema).
        self._fast_checks = dict(fast_checks or {})
        #: Where each schema was loaded from (for run.json and error messages).
        self.sources: dict[str, Path] = dict(sources)

    @classmethod
    def load(cls, schema_dir: Path | str | None = None) -> Contract:
        """The packaged schemas, each replaced by the same-named file in ``schema_dir``.

        Raises :class:`BadInput` naming the file for a missing directory, an unknown
        ``*.schema.json`` file (likely a typo), bad JSON or an invalid schema.
        """
        sources = {name: DEFAULT_SCHEMA_DIR / file for name, file in SCHEMA_FILES.items()}
        if schema_dir is not None:
            user_dir = Path(schema_dir)
            if not user_dir.is_dir():
                raise BadInput(f"schema directory {user_dir}: not a directory; give a folder "
                               f"holding any of {', '.join(SCHEMA_FILES.values())}")
            known = set(SCHEMA_FILES.values())
            for found in sorted(user_dir.glob("*.schema.json")):
                if found.name not in known:
                    raise BadInput(f"{found}: unknown schema file; the names are "
                                   f"{', '.join(SCHEMA_FILES.values())}")
            for name, file in SCHEMA_FILES.items():
                if (user_dir / file).is_file():
                    sources[name] = user_dir / file
        loaded = {name: _load_schema(path) for name, path in sources.items()}
        return cls({name: pair[0] for name, pair in loaded.items()}, sources,
                   {name: pair[1] for name, pair in loaded.items()})

    # ------------------------------------------------------------------ schema

    def validate(self, name: str, body: Any) -> list[Violation]:
        """Schema violations of ``body`` against schema ``name`` (models, chat or error)."""
        try:
            validator = self._validators[name]
        except KeyError:
            raise BadInput(f"schema {name!r}: unknown; use one of "
                           f"{', '.join(SCHEMA_FILES)}") from None
        fast_check = self._fast_checks.get(name)
        if fast_check is not None and passes(fast_check, body):
            return []  # jsonschema would find nothing either (fast_schema's docstring)
        errors = sorted(validator.iter_errors(body),
                        key=lambda e: (list(map(str, e.absolute_path)), e.message))
        found = [Violation("schema", f"{_path(e.absolute_path)}: {e.message}")
                 for e in errors[:_MAX_SCHEMA_ERRORS]]
        if len(errors) > _MAX_SCHEMA_ERRORS:
            found.append(Violation("schema", f"… and {len(errors) - _MAX_SCHEMA_ERRORS} more"))
        return found

    def conventions(self, name: str, body: Any) -> list[str]:
        """Warnings: conventional but undocumented fields of ``body`` that are missing."""
        if not isinstance(body, dict):
            return []
        missing: list[str] = []
        for container, field in CONVENTIONS.get(name, ()):
            node = body.get(container)
            if isinstance(node, list):
                holes = [i for i, item in enumerate(node)
                         if isinstance(item, dict) and field not in item]
                if holes:
                    missing.append(f"{container}[].{field} missing in {len(holes)} of "
                                   f"{len(node)} items (conventional, not in the quick start)")
            elif isinstance(node, dict) and field not in node:
                missing.append(f"{container}.{field} missing (conventional, not in the "
                               "quick start)")
        return missing

    # ------------------------------------------------------------------ per endpoint

    def check_models(self, response_or_body: ApiResponse | Any,
                     params: Mapping[str, Any] | None = None) -> list[Violation]:
        """Schema; with ``category``, every item has it; with ``sort=name``, ids ascend."""
        body = _body(response_or_body)
        found = self.validate("models", body)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not params:
            return found
        items = [(i, item) for i, item in enumerate(data) if isinstance(item, dict)]
        category = params.get("category")
        if category is not None:
            for i, item in items:
                if item.get("category") != category:
                    found.append(Violation("invariant", f"data[{i}].category "
                                           f"({_show(item.get('category'))}) == "
                                           f"category param ({_show(category)})"))
        if params.get("sort") == "name":
            names: list[tuple[int, str]] = [
                (i, n) for i, item in items
                if isinstance(n := item.get("name", item.get("id")), str)]
            for (i, a), (j, b) in itertools.pairwise(names):
                if a > b:
                    found.append(Violation("invariant", f"data sorted by name: data[{i}] "
                                           f"({_show(a)}) <= data[{j}] ({_show(b)})"))
                    break
        return found

    def check_chat(self, request_payload: Mapping[str, Any] | None, body: ApiResponse | Any,
                   expected_org: str | None = None) -> list[Violation]:
        """Schema plus the invariants of the quick start's sample response.

        ``usage.total_tokens == prompt_tokens + completion_tokens``; the response
        ``messages`` are the request messages (same roles and contents, in order) plus
        exactly one new ``assistant`` message; ``model`` echoes the request; and
        ``organization_id == expected_org`` when given.
        """
        body = _body(body)
        found = self.validate("chat", body)
        if not isinstance(body, dict):
            return found
        found.extend(_usage_invariant(body.get("usage")))
        request = request_payload or {}
        sent = request.get("messages")
        got = body.get("messages")
        if isinstance(sent, list) and isinstance(got, list):
            found.extend(_conversation_invariants(sent, got))
        if "model" in request and body.get("model") != request["model"]:
            found.append(Violation("invariant", f"model ({_show(body.get('model'))}) == "
                                   f"request.model ({_show(request['model'])})"))
        if expected_org is not None and body.get("organization_id") != expected_org:
            found.append(Violation("invariant", "organization_id "
                                   f"({_show(body.get('organization_id'))}) == "
                                   f"expected org ({_show(expected_org)})"))
        return found

    def check_error(self, body: ApiResponse | Any) -> list[Violation]:
        """The error schema (``{"error": {"type", "message", "code"?}}`` by default)."""
        return self.validate("error", _body(body))

    def check_response(self, kind: str, response: ApiResponse,
                       request_payload: Mapping[str, Any] | None = None,
                       params: Mapping[str, Any] | None = None,
                       expected_org: str | None = None,
                       expected_status: int | Collection[int] | None = None,
                       ) -> list[Violation]:
        """Everything about one response: status, JSON content type, then the body.

        A 2xx body is checked as endpoint ``kind`` (an endpoint's name: its schema, plus the
        invariants of ``models`` and ``chat``), any other status against the error schema.
        The content type is checked on every response.
        """
        if kind not in BY_NAME:
            raise BadInput(f"response kind {kind!r}: unknown; use one of "
                           f"{', '.join(repr(name) for name in BY_NAME)}")
        found: list[Violation] = []
        if response.status == 0:
            return [Violation("status", f"status (0): no response ({response.error}: "
                                        f"{response.error_detail})")]
        if expected_status is not None:
            wanted = ({expected_status} if isinstance(expected_status, int)
                      else set(expected_status))
            if response.status not in wanted:
                shown = (f"== {expected_status}" if isinstance(expected_status, int)
                         else f"in {sorted(wanted)}")
                found.append(Violation("status", f"status ({response.status}) {shown}"))
        if response.error == "content_type":
            found.append(Violation("content_type", f"content_type ({response.content_type!r})"
                                                   " == application/json"))
            return found
        if response.error == "invalid_json":
            found.append(Violation("schema", f"body: not valid JSON ({response.error_detail})"))
            return found
        if response.error:
            found.append(Violation("status", f"status ({response.status}) arrived but the "
                                   f"response failed: {response.error} "
                                   f"({response.error_detail})"))
            return found
        if 200 <= response.status < 300:
            if kind == MODELS.name:
                found.extend(self.check_models(response.body, params))
            elif kind == CHAT.name:
                found.extend(self.check_chat(request_payload, response.body, expected_org))
            else:  # an endpoint without invariants of its own: its schema
                found.extend(self.validate(kind, _body(response.body)))
        else:
            found.extend(self.check_error(response.body))
        return found


def _body(response_or_body: ApiResponse | Any) -> Any:
    return response_or_body.body if isinstance(response_or_body, ApiResponse) else response_or_body


def _usage_invariant(usage: Any) -> list[Violation]:
    if not isinstance(usage, dict):
        return []
    numbers = [usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return []  # the schema reports missing or non-integer counts
    prompt, completion, total = (int(n) for n in numbers if n is not None)
    if total != prompt + completion:
        return [Violation("invariant", f"usage.total_tokens ({total}) == prompt_tokens + "
                                       f"completion_tokens ({prompt + completion})")]
    return []


def _conversation_invariants(sent: list[Any], got: list[Any]) -> list[Violation]:
    found = []
    for i, (want, have) in enumerate(zip(sent, got, strict=False)):
        if not isinstance(want, dict) or not isinstance(have, dict):
            continue
        for part in ("role", "content"):
            if have.get(part) != want.get(part):
                found.append(Violation("invariant", f"messages[{i}].{part} "
                                       f"({_show(have.get(part))}) == request.messages[{i}]."
                                       f"{part} ({_show(want.get(part))})"))
    if len(got) != len(sent) + 1:
        found.append(Violation("invariant", f"len(messages) ({len(got)}) == "
                                            f"len(request.messages) + 1 ({len(sent) + 1})"))
    if got and isinstance(got[-1], dict) and got[-1].get("role") != "assistant":
        found.append(Violation("invariant", f"messages[-1].role ({_show(got[-1].get('role'))})"
                                            " == 'assistant'"))
    return found


@functools.cache
def default_contract() -> Contract:
    """The packaged contract, loaded once per process (cheap to call on every response)."""
    return Contract.load()
