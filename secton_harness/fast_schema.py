"""A compiled yes/no check in front of the JSON Schema validator, for the load hot path.

Why: ``jsonschema`` walks a schema per call (~175 µs for a models list here), and with the
default ``validate_sample = 0.1`` that was most of the gap between the load generator and a
bare Locust user (benchmarks/RESULTS.md). ``fastjsonschema`` compiles a schema into Python
code (~7 µs for the same body). Only its *valid* answer is used: when it says invalid, or
fails in any way, ``jsonschema`` decides and writes the messages, so the violations a run
reports are jsonschema's, word for word, on either path.

That is sound only where both libraries give a keyword the same meaning, so a schema is
compiled only when every keyword it uses is in :data:`SHARED_KEYWORDS` (draft 7, which
fastjsonschema implements, and 2020-12, the default here, agree on them); a user schema
with ``prefixItems``, ``unevaluatedProperties``, ``$dynamicRef`` and the like keeps the plain
validator. Formats are annotations in 2020-12 and in jsonschema without a format checker,
so the compiled check ignores them too (``use_formats=False``), and it never fills in
defaults (``use_default=False``: validation must not change the body).

Example::

    check = compile_fast(schema)      # None when the schema is not in the shared subset
    if check is not None and passes(check, body):
        violations = []
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema

#: Keywords with one meaning in JSON Schema draft 7 and 2020-12 (or no effect on validity).
SHARED_KEYWORDS = frozenset({
    "$schema", "$id", "$comment", "title", "description", "default", "examples",
    "deprecated", "readOnly", "writeOnly", "format",
    "type", "enum", "const",
    "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern",
    "items", "maxItems", "minItems", "uniqueItems", "contains",
    "maxProperties", "minProperties", "required", "properties", "patternProperties",
    "additionalProperties", "propertyNames",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
})
#: Keywords whose value is a map of name -> schema.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
#: Keywords whose value is a list of schemas.
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
#: Keywords whose value is one schema.
_SCHEMA_VALUES = frozenset({"additionalProperties", "propertyNames", "not", "if", "then",
                            "else", "contains", "items"})

Check = Callable[[Any], Any]


def uses_shared_keywords_only(schema: Any) -> bool:
    """True when every keyword of ``schema``, at every depth, is in SHARED_KEYWORDS."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for keyword, value in schema.items():
        if keyword not in SHARED_KEYWORDS:
            return False
        if keyword in _SCHEMA_MAPS:
            if not isinstance(value, dict) or not all(
                    uses_shared_keywords_only(sub) for sub in value.values()):
                return False
        elif keyword in _SCHEMA_LISTS:
            if not isinstance(value, list) or not all(
                    uses_shared_keywords_only(sub) for sub in value):
                return False
        elif keyword in _SCHEMA_VALUES and not uses_shared_keywords_only(value):
            return False  # also refuses draft 7's list form of items (tuple validation)
    return True


def compile_fast(schema: Any) -> Check | None:
    """A compiled check for ``schema``, or None when it is outside the shared subset."""
    if not uses_shared_keywords_only(schema):
        return None
    try:
        return fastjsonschema.compile(schema, use_default=False, use_formats=False)
    except Exception:
        return None


def passes(check: Check, body: Any) -> bool:
    """True only when the compiled check accepts ``body``; anything else is "ask jsonschema"."""
    try:
        check(body)
    except Exception:
        return False
    return True
