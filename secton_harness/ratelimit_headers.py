"""Parsing rate-limit response headers into one typed, never-raising shape.

Servers announce limits in several dialects, and the harness must observe rather than
assume which one a target speaks. :func:`parse_ratelimit` reads all of them:

============================  =====================================================
source (in ``sources``)        headers
============================  =====================================================
``retry-after``               ``Retry-After`` (delta-seconds or HTTP-date, RFC 9110)
``x-ratelimit``               ``X-RateLimit-Limit/Remaining/Reset`` (reset: delta or epoch)
``ratelimit-fields``          ``RateLimit-Limit/Remaining/Reset`` (IETF draft 00-05)
``ratelimit``                 ``RateLimit: limit=10, remaining=5, reset=3`` (draft 06/07) or
                              ``RateLimit: "default";r=5;t=3`` (draft 08+)
``ratelimit-policy``          ``RateLimit-Policy: 10;w=60`` or ``"default";q=10;w=60``
============================  =====================================================

When several families carry the same figure, the newest dialect wins (``ratelimit``, then
``ratelimit-fields``, then ``x-ratelimit``) and a disagreement is recorded as a problem.
Nothing here raises on header content: a value that cannot be parsed, or a count beyond
:data:`MAX_COUNT` (the records' int64), becomes ``None`` and a line in ``problems``, which
probes report as inconsistent headers.

Example::

    >>> info = parse_ratelimit({"Retry-After": "3", "X-RateLimit-Limit": "10",
    ...                         "X-RateLimit-Remaining": "0"})
    >>> info.retry_after_s, info.limit, info.remaining, info.sources
    (3.0, 10, 0, ('retry-after', 'x-ratelimit'))
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC

__all__ = ["EPOCH_THRESHOLD_S", "HEADER_NAMES", "MAX_COUNT", "NOTHING", "RateLimitInfo",
           "parse_ratelimit", "parse_retry_after"]

#: A reset value above this many seconds is an epoch timestamp, not a delta (2001-09-09).
EPOCH_THRESHOLD_S = 1e9
#: Above this, an epoch timestamp is in milliseconds.
_EPOCH_MS_THRESHOLD = 1e12

_INT_RE = re.compile(r"^[+-]?\d+$")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_DELTA_SECONDS_RE = re.compile(r"^\d+(?:\.\d+)?$")
_MAX_SHOWN = 40
_MAX_DIGITS = 30  # longer numbers are junk (and int() refuses > 4300 digits)
#: The largest count kept: the records store counts as int64, and a batch write must never
#: fail on a value the target sent (``X-RateLimit-Remaining: 99999999999999999999``).
MAX_COUNT = 2**63 - 1
#: Every header :func:`parse_ratelimit` reads (lower case); no other header is looked at.
HEADER_NAMES = frozenset({
    "retry-after", "ratelimit", "ratelimit-policy",
    "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
})


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a response said about rate limits; every field is ``None`` when not announced.

    ``reset_s`` and ``retry_after_s`` are seconds from the moment of parsing (``now``).
    """

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None
    retry_after_s: float | None = None
    policy: str | None = None
    window_s: float | None = None
    sources: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def present(self) -> bool:
        """True when any rate-limit header family was seen."""
        return bool(self.sources)

    def inconsistencies(self) -> tuple[str, ...]:
        """Parse problems plus every broken invariant, each with its resolved values."""
        found = list(self.problems)
        if self.limit is not None and self.limit < 0:
            found.append(f"limit ({self.limit}) >= 0")
        if self.remaining is not None and self.remaining < 0:
            found.append(f"remaining ({self.remaining}) >= 0")
        if (self.limit is not None and self.remaining is not None
                and self.remaining > self.limit):
            found.append(f"remaining ({self.remaining}) <= limit ({self.limit})")
        if self.reset_s is not None and self.reset_s < 0:
            found.append(f"reset_s ({self.reset_s:g}) >= 0")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            found.append(f"retry_after_s ({self.retry_after_s:g}) >= 0")
        if self.window_s is not None and self.window_s <= 0:
            found.append(f"window_s ({self.window_s:g}) > 0")
        if (self.window_s is not None and self.reset_s is not None
                and self.reset_s > self.window_s + 1):
            found.append(f"reset_s ({self.reset_s:g}) <= window_s ({self.window_s:g})")
        return tuple(found)


#: What a response without any rate-limit header said (one shared, frozen instance).
NOTHING = RateLimitInfo()


# --------------------------------------------------------------------------- helpers


def _show(value: str) -> str:
    """A header value quoted for a problem line, cut short so junk can't flood a report."""
    if len(value) > _MAX_SHOWN:
        value = value[:_MAX_SHOWN] + "…"
    return repr(value)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers of ``headers`` (:data:`HEADER_NAMES`), by lower-case name,
    repeated lines joined with ", "; every other header is skipped unread."""
    lowered: dict[str, str] = {}
    try:
        items = list(headers.items())
    except Exception:  # a broken mapping is still no reason to raise
        return lowered
    for name, value in items:
        key = name.lower() if isinstance(name, str) else None
        if key not in HEADER_NAMES:  # the common case: a header not about rate limits
            key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            key = key.strip().lower()
            if key not in HEADER_NAMES:
                continue
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        lowered[key] = f"{lowered[key]}, {text}" if key in lowered else text
    return lowered


def _plain_int(text: str) -> bool:
    """ASCII digits only, short enough for int() and the records (the common case)."""
    return text.isdigit() and text.isascii() and len(text) <= _MAX_DIGITS


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on ``sep`` except inside double-quoted strings (structured-field lists)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


@dataclass
class _Member:
    """One structured-field list member: ``item;k=v;k=v`` or ``key=value;k=v``."""

    item: str
    key: str | None
    params: dict[str, str]


def _members(value: str) -> list[_Member]:
    members = []
    for raw in _split_outside_quotes(value, ","):
        if not raw:
            continue
        parts = _split_outside_quotes(raw, ";")
        head, params = parts[0], {}
        for part in parts[1:]:
            name, _, val = part.partition("=")
            if name.strip():
                params[name.strip().lower()] = _unquote(val) if val else "?1"
        key = None
        if "=" in head and not head.startswith('"'):
            name, _, val = head.partition("=")
            key, head = name.strip().lower(), _unquote(val)
        else:
            head = _unquote(head)
        members.append(_Member(head, key, params))
    return members


class _Parser:
    def __init__(self, now: float) -> None:
        self.now = now
        self.problems: list[str] = []

    def integer(self, header: str, value: str) -> int | None:
        if _plain_int(value) and len(value) < 19:  # below 10^18: within MAX_COUNT
            return int(value)
        text = value.strip()
        # RateLimit-Limit (draft 00-02) may append quota policies: "10, 10;w=1, 50;w=60".
        text = re.split(r"[,;]", text, maxsplit=1)[0].strip()
        if not (_INT_RE.match(text) and len(text) <= _MAX_DIGITS):
            self.problems.append(f"{header}: {_show(value)} is not an integer")
            return None
        number = int(text)
        if abs(number) > MAX_COUNT:
            self.problems.append(f"{header}: {_show(value)} is out of range (> 2^63-1)")
            return None
        return number

    def reset(self, header: str, value: str) -> float | None:
        """Seconds until reset from a delta or an epoch timestamp (s or ms)."""
        if _plain_int(value) and len(value) <= 9:  # below 10^9 s: a delta, not an epoch
            return float(value)
        text = value.strip()
        if not _NUMBER_RE.match(text):
            return self._date_or_problem(header, value, "is not a number of seconds")
        number = float(text)
        if not math.isfinite(number) or len(text) > _MAX_DIGITS:
            self.problems.append(f"{header}: {_show(value)} is out of range")
            return None
        if number > _EPOCH_MS_THRESHOLD:
            return max(0.0, number / 1000.0 - self.now)
        if number > EPOCH_THRESHOLD_S:
            return max(0.0, number - self.now)
        return number

    def number(self, header: str, value: str) -> float | None:
        text = value.strip()
        if _NUMBER_RE.match(text) and len(text) <= _MAX_DIGITS:
            number = float(text)
            if math.isfinite(number):
                return number
        self.problems.append(f"{header}: {_show(value)} is not a number")
        return None

    def _date_or_problem(self, header: str, value: str, why: str) -> float | None:
        seconds = _http_date_delta(value, self.now)
        if seconds is None:
            self.problems.append(f"{header}: {_show(value)} {why}")
        return seconds


def _http_date_delta(value: str, now: float) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(value.strip())
        if moment.tzinfo is None:  # asctime form carries no zone; RFC 9110 says GMT
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, moment.timestamp() - now)
    except Exception:  # parsedate raises ValueError, TypeError, IndexError, OverflowError…
        return None


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    >>> parse_retry_after("120")
    120.0
    >>> parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=784111767.0)
    10.0
    """
    now = time.time() if now is None else now
    text = value.strip()
    if _DELTA_SECONDS_RE.match(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) and len(text) <= _MAX_DIGITS else None
    return _http_date_delta(text, now)


# --------------------------------------------------------------------------- parsing


def parse_ratelimit(headers: Mapping[str, str], now: float | None = None) -> RateLimitInfo:
    """Read every rate-limit header dialect in ``headers``; never raises on their content.

    ``now`` (epoch seconds, default ``time.time()``) turns HTTP-dates and epoch resets
    into seconds from now, which makes parsing exact and testable.
    """
    lowered = _lower_headers(headers)
    if not lowered:
        return NOTHING
    plain = _plain(lowered)
    if plain is not None:
        return plain
    return _parse_general(lowered, time.time() if now is None else now)


#: The dialect most targets send; :func:`_plain` reads it when its values are plain digits.
_PLAIN_FIELDS = (("x-ratelimit-limit", 18), ("x-ratelimit-remaining", 18),
                 ("x-ratelimit-reset", 9), ("retry-after", 9))  # (name, most digits)
_PLAIN_NAMES = frozenset(name for name, _ in _PLAIN_FIELDS)


def _plain(lowered: dict[str, str]) -> RateLimitInfo | None:
    """``X-RateLimit-*`` and ``Retry-After`` alone, each plain ASCII digits (counts below
    10^18, a reset below 10^9 s: a delta, not an epoch): exactly what
    :func:`_parse_general` gives for them, at a fifth of its cost (the load path reads
    every answer); None for anything else (tests/test_ratelimit_headers.py)."""
    if not lowered.keys() <= _PLAIN_NAMES:
        return None
    values: list[str | None] = []
    for name, most in _PLAIN_FIELDS:
        value = lowered.get(name)
        if value is not None and not (value.isdigit() and value.isascii()
                                      and len(value) <= most):
            return None
        values.append(value)
    limit, remaining, reset, retry = values
    counted = limit is not None or remaining is not None or reset is not None
    return RateLimitInfo(
        limit=None if limit is None else int(limit),
        remaining=None if remaining is None else int(remaining),
        reset_s=None if reset is None else float(reset),
        retry_after_s=None if retry is None else float(retry),
        sources=(("retry-after",) if retry is not None else ())
        + (("x-ratelimit",) if counted else ()))


def _parse_general(lowered: dict[str, str], now: float) -> RateLimitInfo:
    """Every dialect, every problem: :func:`parse_ratelimit` past its shortcuts."""
    parser = _Parser(now)
    sources: list[str] = []
    # figure -> list of (source, value), newest dialect first
    seen: dict[str, list[tuple[str, float | int]]] = {"limit": [], "remaining": [], "reset": []}

    retry_after = None
    if "retry-after" in lowered:
        sources.append("retry-after")
        raw = lowered["retry-after"]
        retry_after = parse_retry_after(raw, now)
        if retry_after is None:
            parser.problems.append(
                f"retry-after: {_show(raw)} is neither delta-seconds nor an HTTP-date")

    policy_raw = lowered.get("ratelimit-policy")
    chosen_name = _parse_structured(lowered, parser, seen, sources)
    _parse_fields(lowered, parser, seen, sources, "ratelimit-", "ratelimit-fields")
    _parse_fields(lowered, parser, seen, sources, "x-ratelimit-", "x-ratelimit")

    window = None
    if policy_raw is not None:
        sources.append("ratelimit-policy")
        quota, window = _parse_policy(policy_raw, chosen_name, parser)
        if quota is not None:
            seen["limit"].append(("ratelimit-policy", quota))

    limit = _pick("limit", seen["limit"], parser, tolerance=0)
    remaining = _pick("remaining", seen["remaining"], parser, tolerance=0)
    reset = _pick("reset", seen["reset"], parser, tolerance=1.0)
    return RateLimitInfo(
        limit=None if limit is None else int(limit),
        remaining=None if remaining is None else int(remaining),
        reset_s=None if reset is None else float(reset),
        retry_after_s=retry_after,
        policy=policy_raw,
        window_s=window,
        sources=tuple(sources),
        problems=tuple(parser.problems),
    )


def _pick(name: str, values: list[tuple[str, float | int]], parser: _Parser,
          tolerance: float) -> float | int | None:
    if not values:
        return None
    source, first = values[0]
    for other_source, other in values[1:]:
        if abs(other - first) > tolerance:
            parser.problems.append(
                f"{name}: {other_source} ({other:g}) disagrees with {source} ({first:g})")
    return first


def _parse_fields(lowered: dict[str, str], parser: _Parser,
                  seen: dict[str, list[tuple[str, float | int]]], sources: list[str],
                  prefix: str, source: str) -> None:
    found = False
    for figure in ("limit", "remaining", "reset"):
        header = prefix + figure
        if header not in lowered:
            continue
        found = True
        raw = lowered[header]
        value = (parser.reset(header, raw) if figure == "reset"
                 else parser.integer(header, raw))
        if value is not None:
            seen[figure].append((source, value))
    if found:
        sources.append(source)


_DICT_KEYS = {"limit": "limit", "l": "limit", "remaining": "remaining", "r": "remaining",
              "reset": "reset", "t": "reset"}


def _parse_structured(lowered: dict[str, str], parser: _Parser,
                      seen: dict[str, list[tuple[str, float | int]]],
                      sources: list[str]) -> str | None:
    """``RateLimit`` in draft 06/07 (dictionary) or draft 08+ (named policy items).

    Returns the policy name the figures came from (draft 08+), to match ``RateLimit-Policy``.
    """
    raw = lowered.get("ratelimit")
    if raw is None:
        return None
    sources.append("ratelimit")
    figures: dict[str, float | int] = {}
    chosen_name = None
    items = []
    for member in _members(raw):
        if member.key is not None:  # limit=10, remaining=5, reset=3
            figure = _DICT_KEYS.get(member.key)
            if figure is None:
                continue
            value = (parser.reset(f"ratelimit {member.key}", member.item) if figure == "reset"
                     else parser.integer(f"ratelimit {member.key}", member.item))
            if value is not None:
                figures.setdefault(figure, value)
        else:  # "default";r=5;t=3 — several policies: report the most constrained one
            items.append(member)
    for member in items:
        remaining = (parser.integer(f"ratelimit {member.item!r} r", member.params["r"])
                     if "r" in member.params else None)
        reset = (parser.reset(f"ratelimit {member.item!r} t", member.params["t"])
                 if "t" in member.params else None)
        if remaining is None and reset is None:
            parser.problems.append(f"ratelimit: {_show(member.item)} has neither r= nor t=")
            continue
        current = figures.get("remaining")
        if chosen_name is None or (remaining is not None
                                   and (current is None or remaining < current)):
            chosen_name = member.item
            figures.pop("remaining", None)
            figures.pop("reset", None)
            if remaining is not None:
                figures["remaining"] = remaining
            if reset is not None:
                figures["reset"] = reset
    if not figures and not items:
        parser.problems.append(f"ratelimit: {_show(raw)} has no limit, remaining or reset")
    for figure, value in figures.items():
        seen[figure].append(("ratelimit", value))
    return chosen_name


def _parse_policy(raw: str, chosen_name: str | None,
                  parser: _Parser) -> tuple[int | None, float | None]:
    """Quota and window from ``10;w=60``, ``10, 10;w=1, 50;w=60`` or ``"p";q=10;w=60``."""
    members = _members(raw)
    if not members:
        parser.problems.append(f"ratelimit-policy: {_show(raw)} is empty")
        return None, None
    member = next((m for m in members if chosen_name is not None and m.item == chosen_name),
                  members[0])
    quota = None
    if "q" in member.params:
        quota = parser.integer("ratelimit-policy q", member.params["q"])
    elif member.key is None and _INT_RE.match(member.item):
        quota = parser.integer("ratelimit-policy", member.item)
    elif member.key == "q" or member.key == "limit":
        quota = parser.integer(f"ratelimit-policy {member.key}", member.item)
    window = None
    if "w" in member.params:
        window = parser.number("ratelimit-policy w", member.params["w"])
    if quota is None and window is None:
        parser.problems.append(f"ratelimit-policy: {_show(raw)} has no quota or window")
    return quota, window
