"""The probe checks as a table: what each sends and the conditions its answers must meet.

Each :class:`CheckSpec` lists the requests it sends (which key, which endpoint) and its
conditions in evaluation order; :mod:`probes.runner` sends the requests, resolves the
placeholders of :func:`resolve_values` for each answer and lets one evaluator
(:mod:`probes.conditions`) decide. Transport conditions come first, then status, content
type, schema and invariants, so a failure has exactly one reason. Latency thresholds are
applied by the runner from the config (``degraded``/``failed`` per check).

To add a check: add a row to :data:`CHECKS` (``probes.config`` takes the check names from
it; give it other defaults than 30 s / 10 s / 1 s / 5 s in ``BUILTIN_DEFAULTS`` there).

Placeholders (all resolved for every answer):

=======================  ===========================================================
``CONNECTION``           ``ok`` or the answer's transport error class: ``timeout``,
                         ``connect`` (never opened), ``reset``, ``too_large``, ``protocol``
``STATUS``               HTTP status (0: none)
``CONTENT_TYPE``         media type of the answer, lower case
``SCHEMA_ERRORS``        JSON Schema violations (contract.check_response)
``INVARIANT_ERRORS``     contract invariants broken (usage sums, echo, filter, sort)
``MODEL_IDS``            ids in a models list
``EXPECTED_MODELS``      ``probes.expected_models``
``JSON_BODY``            whether the body parsed as JSON
``ORG``/``KEY_ORG``      ``organization_id`` answered / the org of the key sent
``RATELIMIT_PRESENT``    whether any rate-limit header family was sent
``RATELIMIT_PARSE_ERRORS``, ``RATELIMIT_INCONSISTENCIES``  counts (ratelimit_headers)
``WARNINGS``             conventional fields missing (contract.CONVENTIONS): never a
                         condition, shown as the result ``warning``
=======================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from secton_harness.client import ApiResponse
from secton_harness.contract import Contract
from secton_harness.endpoints import CHAT, MODELS
from secton_harness.error_classes import CONNECT, TRANSPORT_CLASSES
from secton_harness.metrics import TRANSPORT_REASONS

from .conditions import Condition

#: How a request authenticates: the probe key, none, a random unknown key, ``Bearer``
#: without a token, the probe key under a wrong scheme, or each key of the pool in turn.
Auth = Literal["key", "none", "invalid", "bearer_empty", "wrong_scheme", "each_key"]
#: What a request's answer is checked against: an endpoint's name (a 2xx against that
#: endpoint's contract, anything else against the error schema), ``error`` (the error
#: schema) or ``none``.
Validate = str


@dataclass(frozen=True, slots=True)
class RequestSpec:
    method: str
    path: str
    auth: Auth
    validate: Validate


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One named check: its requests, its conditions (ordered) and what it proves."""

    name: str
    summary: str
    requests: tuple[RequestSpec, ...]
    conditions: tuple[Condition, ...]
    min_orgs: int = 0


def _conditions(*rows: tuple[str, str]) -> tuple[Condition, ...]:
    return tuple(Condition.parse(text, reason) for text, reason in rows)


#: One condition per transport class, each failing with that class as its reason: a
#: gateway sending 100 MB fails ``too_large``, a dropped connection ``reset``, and only a
#: connection that never opened ``connect`` (what on-call reads the label as).
TRANSPORT = tuple((f"[CONNECTION] != {error}", error) for error in TRANSPORT_REASONS)
#: The quick start: "All responses are in JSON", so an accepted answer's body must parse
#: (a JSON content type over a body that does not parse fails ``schema``, as elsewhere).
ACCEPTED = (*TRANSPORT, ("[STATUS] != 429", "ratelimited"), ("[STATUS] == 200", "status"),
            ("[CONTENT_TYPE] =~ json", "content_type"), ("[JSON_BODY] == true", "schema"))
REFUSED = (*TRANSPORT, ("[STATUS] == 401", "status"), ("[CONTENT_TYPE] =~ json", "content_type"),
           ("[SCHEMA_ERRORS] == 0", "schema"))
CONTRACT = (("[SCHEMA_ERRORS] == 0", "schema"), ("[INVARIANT_ERRORS] == 0", "invariant"))

CHECKS: dict[str, CheckSpec] = {spec.name: spec for spec in (
    CheckSpec("auth_valid", "a valid key is accepted: GET /v1/models -> 200 with a JSON "
              "body that parses",
              (RequestSpec("GET", MODELS.path, "key", "none"),), _conditions(*ACCEPTED)),
    CheckSpec("auth_missing", "no Authorization header -> 401 with a JSON error body",
              (RequestSpec("GET", MODELS.path, "none", "error"),), _conditions(*REFUSED)),
    CheckSpec("auth_invalid", "an unknown key -> 401 with a JSON error body",
              (RequestSpec("GET", MODELS.path, "invalid", "error"),), _conditions(*REFUSED)),
    CheckSpec("auth_malformed", "'Bearer' with no token, and a key under a wrong scheme -> 401",
              (RequestSpec("GET", MODELS.path, "bearer_empty", "error"),
               RequestSpec("GET", MODELS.path, "wrong_scheme", "error")),
              _conditions(*REFUSED)),
    CheckSpec("models_list", "GET /v1/models?category=&sort=name: schema, filter and order "
              "honoured, expected models listed",
              (RequestSpec("GET", MODELS.path, "key", "models"),),
              _conditions(*ACCEPTED, *CONTRACT,
                          ("[MODEL_IDS] contains [EXPECTED_MODELS]", "invariant"))),
    CheckSpec("chat_completion", "POST /v1/chat/completions: schema and the contract's "
              "invariants (usage sums, conversation echo, model echo)",
              (RequestSpec("POST", CHAT.path, "key", "chat"),),
              _conditions(*ACCEPTED, *CONTRACT)),
    CheckSpec("org_isolation", "every key's chat answer carries its own organization_id",
              (RequestSpec("POST", CHAT.path, "each_key", "none"),),
              _conditions(*ACCEPTED, ("[ORG] == [KEY_ORG]", "invariant")), min_orgs=2),
    CheckSpec("ratelimit_headers", "an accepted (2xx) or rate-limited (429) answer; its "
              "rate-limit headers, when sent, parse and agree (remaining <= limit, reset "
              "within the window, ...). A 401/404/5xx fails: nothing was checked",
              (RequestSpec("GET", MODELS.path, "key", "none"),),
              _conditions(*TRANSPORT, (r"[STATUS] =~ ^(2\d\d|429)$", "status"),
                          ("[RATELIMIT_PARSE_ERRORS] == 0", "schema"),
                          ("[RATELIMIT_INCONSISTENCIES] == 0", "invariant"))),
)}


def connection_state(response: ApiResponse) -> str:
    """``ok``, or the transport error class that kept a usable answer from arriving
    (``timeout``, ``connect``, ``reset``, ``too_large``, ``protocol``)."""
    if response.error in TRANSPORT_CLASSES:
        return response.error
    if response.status == 0:  # no answer and no class: nothing was received
        return CONNECT
    return "ok"


def resolve_values(response: ApiResponse, validate: Validate, contract: Contract, *,
                   params: dict[str, Any] | None, payload: dict[str, Any] | None,
                   key_org: str | None, expected_models: list[str]) -> tuple[
                       dict[str, Any], dict[str, str]]:
    """Every placeholder's value for one answer, and a detail line per placeholder
    (e.g. the first schema violation) shown after a failed condition."""
    media = response.content_type.split(";", 1)[0].strip().lower()
    body = response.body if isinstance(response.body, dict) else {}
    values: dict[str, Any] = {
        "CONNECTION": connection_state(response),
        "STATUS": response.status,
        "CONTENT_TYPE": media or "(none)",
        "KEY_ORG": key_org,
        "ORG": body.get("organization_id", "(missing)"),
        "EXPECTED_MODELS": expected_models,
        "JSON_BODY": response.body is not None and response.error != "invalid_json",
    }
    details: dict[str, str] = {}
    schema: list[str] = []
    invariants: list[str] = []
    if validate != "none" and response.status and response.error not in TRANSPORT_CLASSES:
        if validate == "error":
            violations = (contract.check_error(response) if response.body is not None
                          else [])
            if response.error == "invalid_json":
                schema.append(f"body: not valid JSON ({response.error_detail})")
        else:
            violations = contract.check_response(validate, response, request_payload=payload,
                                                 params=params)
        schema += [v.message for v in violations if v.kind == "schema"]
        invariants += [v.message for v in violations if v.kind == "invariant"]
        kind = validate if 200 <= response.status < 300 or validate == "error" else "error"
        values["WARNINGS"] = contract.conventions(kind, response.body)
    values.setdefault("WARNINGS", [])
    values["SCHEMA_ERRORS"] = len(schema)
    values["INVARIANT_ERRORS"] = len(invariants)
    if schema:
        details["SCHEMA_ERRORS"] = schema[0]
    if invariants:
        details["INVARIANT_ERRORS"] = invariants[0]
    data = body.get("data")
    values["MODEL_IDS"] = ([m.get("id") for m in data if isinstance(m, dict)]
                           if isinstance(data, list) else [])
    info = response.ratelimit
    values["RATELIMIT_PRESENT"] = info.present
    values["RATELIMIT_PARSE_ERRORS"] = len(info.problems)
    inconsistent = [p for p in info.inconsistencies() if p not in info.problems]
    values["RATELIMIT_INCONSISTENCIES"] = len(inconsistent)
    if info.problems:
        details["RATELIMIT_PARSE_ERRORS"] = info.problems[0]
    if inconsistent:
        details["RATELIMIT_INCONSISTENCIES"] = inconsistent[0]
    if response.error:
        details["JSON_BODY"] = response.error_detail or response.error
        details["CONNECTION"] = response.error_detail or response.error
        details["CONTENT_TYPE"] = response.error_detail or response.error
    return values, details
