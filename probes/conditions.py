"""Gatus-style conditions: a check's expectations as data, one evaluator for all of them.

A condition is one line, ``[PLACEHOLDER] OP EXPECTED``, plus the failure reason it stands
for. It is parsed once (a typo fails at import, not at 3 a.m.) and, when it fails, says
what was expected and what came, so the failure explains itself and never reads as a
true statement (``[STATUS] (429) != 429`` did)::

    >>> c = Condition.parse("[STATUS] == 200", reason="status")
    >>> c.evaluate({"STATUS": 500}).shown
    'expected [STATUS] == 200, got 500'

``EXPECTED`` is a literal (int, float, ``true``/``false`` or text; comma-separated for
``in``) or another placeholder (``[ORG] == [KEY_ORG]``). Operators: ``== != < <= > >=``,
``in`` (value is one of a list), ``contains`` (the value, a list, holds every expected
item), ``=~`` (regular-expression search in the text of the value).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from secton_harness.metrics import CHECK_REASONS

_CONDITION_RE = re.compile(r"^\[([A-Z_]+)\]\s*(==|!=|<=|>=|<|>|=~|in|contains)\s*(.+?)\s*$")
_PLACEHOLDER_RE = re.compile(r"^\[([A-Z_]+)\]$")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict of one condition on one set of values, with the resolved line."""

    ok: bool
    shown: str


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "(none)"
    return str(value)


@dataclass(frozen=True, slots=True)
class Condition:
    """``[PLACEHOLDER] OP EXPECTED`` and the reason a failure of it is recorded under."""

    text: str
    placeholder: str
    op: str
    expected: str
    reason: str

    @classmethod
    def parse(cls, text: str, reason: str) -> Condition:
        """Parse and validate; raises ValueError naming the problem."""
        match = _CONDITION_RE.match(text.strip())
        if not match:
            raise ValueError(f"condition {text!r}: expected '[PLACEHOLDER] OP VALUE', "
                             "e.g. '[STATUS] == 200'")
        if reason not in CHECK_REASONS:
            raise ValueError(f"condition {text!r}: reason {reason!r} not in "
                             f"{', '.join(CHECK_REASONS)}")
        placeholder, op, expected = match.groups()
        if op == "=~":
            re.compile(expected)
        return cls(text.strip(), placeholder, op, expected, reason)

    def placeholders(self) -> set[str]:
        found = {self.placeholder}
        if match := _PLACEHOLDER_RE.match(self.expected):
            found.add(match.group(1))
        return found

    def _expected(self, values: Mapping[str, Any]) -> tuple[Any, str]:
        if match := _PLACEHOLDER_RE.match(self.expected):
            value = values.get(match.group(1))
            return value, f"{self.expected} ({_fmt(value)})"
        if self.op in ("in", "contains"):
            items = [_literal(p.strip()) for p in self.expected.split(",") if p.strip()]
            return items, self.expected
        return _literal(self.expected), self.expected

    def evaluate(self, values: Mapping[str, Any]) -> Outcome:
        """Evaluate against resolved placeholder values; a missing value fails."""
        value = values.get(self.placeholder)
        expected, expected_shown = self._expected(values)
        shown = f"expected [{self.placeholder}] {self.op} {expected_shown}, got {_fmt(value)}"
        if value is None:
            return Outcome(False, shown)
        try:
            if self.op == "in":
                ok = value in (expected if isinstance(expected, list) else [expected])
            elif self.op == "contains":
                wanted = expected if isinstance(expected, list | tuple) else [expected]
                ok = all(item in value for item in wanted)
            elif self.op == "=~":
                ok = re.search(str(expected), str(value)) is not None
            else:
                ok = _COMPARE[self.op](value, expected)
        except TypeError:
            ok = False
        return Outcome(bool(ok), shown)


def first_failure(conditions: list[Condition] | tuple[Condition, ...],
                  values: Mapping[str, Any]) -> tuple[Condition, Outcome] | None:
    """The first condition that fails (conditions are ordered: transport before status
    before body), or None when all hold. One failure, one reason."""
    for condition in conditions:
        outcome = condition.evaluate(values)
        if not outcome.ok:
            return condition, outcome
    return None
