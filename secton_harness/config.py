"""Loading TOML configuration into typed, frozen, validated objects.

Every file a user writes (the harness config, a load scenario, a rate-limit policy, the
reference server's config) is a pydantic model loaded through :func:`load_toml_model`.
Validation happens once, at load, and every problem becomes one line naming the file, the
field and what is wrong, e.g.::

    harness.toml: probes.interval_s: '5x' is not a duration; use e.g. '30s'

Shared field types live here: :data:`Duration` (``"30s"``, ``"500ms"``, ``"5m"`` or a
number of seconds), :data:`Rate` (``"5/s"``, ``"30/min"``, ``"0.5/s"`` or a number per
second) and :data:`HttpUrl` (``http`` or ``https`` with a host).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from secton_harness.errors import BadInput

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?\s*$")
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 1 / 60, "min": 1 / 60,
               "minute": 1 / 60, "h": 1 / 3600, "hour": 1 / 3600}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


def duration_flag(value: Any, flag: str) -> float:
    """A command-line duration: seconds, or :class:`BadInput` naming the flag (one line)."""
    try:
        return parse_duration(value)
    except ValueError as error:
        raise BadInput(f"{flag}: {error}") from None


def parse_duration(value: Any) -> float:
    """Seconds from ``"30s"``, ``"250ms"``, ``"5m"``, ``"1h"`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use e.g. '30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration; use e.g. '30s'")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration; use e.g. '30s'")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; a duration is >= 0")
    return seconds


def parse_rate(value: Any) -> float:
    """Requests per second from ``"5/s"``, ``"30/min"``, ``"0.5/s"`` or a number per second."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a rate; use e.g. '5/s' or '30/min'")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str) and (match := _RATE_RE.match(value.lower())):
        unit = match.group(2)
        if unit not in _RATE_UNITS:
            raise ValueError(f"{value!r}: unknown unit {unit!r}; use /s, /min or /h")
        rate = float(match.group(1)) * _RATE_UNITS[unit]
    else:
        raise ValueError(f"{value!r} is not a rate; use e.g. '5/s' or '30/min'")
    if not math.isfinite(rate):
        raise ValueError(f"{value!r} is not a finite rate; use e.g. '5/s' or '30/min'")
    if rate < 0:
        raise ValueError(f"{value!r} is negative; a rate is >= 0")
    return rate


def parse_http_url(value: Any) -> str:
    """An ``http(s)://host[:port][/path]`` URL with the trailing slash removed.

    The one place every target URL is validated (``--target``, ``url`` fields,
    ``SECTON_BASE_URL``; the loopback guard runs on what this returns). Refused, and never
    echoed: ``user:password@`` (it would be written to run.json, reports and output, and
    sent as Basic auth instead of the Bearer key) and a query string or fragment (every
    request path is appended to the URL, so ``?x=1`` would garble them all, and a query
    may hold a token too).
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a URL; use e.g. 'http://127.0.0.1:8080'")
    text = value.strip()
    parts = urlsplit(text)
    shown = _shown_url(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shown} is not an http(s) URL; use e.g. 'http://127.0.0.1:8080'")
    if "@" in parts.netloc:
        raise ValueError(f"{shown}: user:password in the URL is refused (it would be "
                         "written to every output); keys go in --keys")
    if "?" in text or "#" in text:
        raise ValueError(f"{shown}: a query string or fragment is refused; give the base "
                         "URL only, e.g. 'http://127.0.0.1:8080'")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{shown} has an invalid port") from None
    return text.rstrip("/")


def _shown_url(text: str) -> str:
    """A URL as an error may quote it: no user:password, query or fragment, cut short."""
    base = re.split(r"[?#]", text, maxsplit=1)[0]
    scheme, sep, rest = base.partition("://")
    if not sep:
        scheme, rest = "", base
    shown = scheme + sep + rest.rpartition("@")[2]  # after the last @: no userinfo at all
    return repr(shown if len(shown) <= 80 else shown[:80] + "…")


def is_loopback(url: str) -> bool:
    """True when the URL's host is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(url: str, allow_remote: bool, why: str) -> None:
    """Refuse a non-loopback target unless ``--allow-remote`` confirms it (load safety)."""
    if not allow_remote and not is_loopback(url):
        raise BadInput(f"--target {urlsplit(url).hostname} is not loopback: {why}; "
                       "pass --allow-remote to confirm")


Duration = Annotated[float, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
HttpUrl = Annotated[str, BeforeValidator(parse_http_url)]


class Model(BaseModel):
    """Base of every config model: frozen, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


_FIELD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")


def format_location(loc: tuple[int | str, ...], secret_safe: bool = False) -> str:
    """``("keys", 0, "org")`` → ``keys[0].org`` (the way users read their TOML).

    ``secret_safe`` hides a field name that does not look like one (a key pasted as a
    TOML key, ``"sk-…" = 1``): it is shown as ``<a field name>``.
    """
    text = ""
    for part in loc:
        if secret_safe and isinstance(part, str) and not _FIELD_NAME_RE.match(part):
            part = "<a field name>"
        if isinstance(part, str) and not part.isprintable():
            part = repr(part)  # a key with a newline must not break the one-line message
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def format_validation_error(source: str, error: ValidationError,
                            secret_safe: bool = False) -> str:
    """One line: ``file: field.path: problem`` for the first problem (and a count of others).

    ``secret_safe`` (the keys file) never shows a value, and no odd field name either: a
    key put in the wrong place (``keys = "sk-…"``) must not be printed by the error.
    """
    problems = error.errors()
    first = problems[0]
    location = format_location(first["loc"], secret_safe)
    kind = first["type"]
    if kind == "extra_forbidden":
        message = "unknown field; check the spelling or remove it"
    elif kind == "missing":
        message = "missing; this field is required"
    else:
        message = first["msg"].removeprefix("Value error, ")
        if "input" in first and kind not in ("value_error",) and not secret_safe and not \
                isinstance(first["input"], dict | list):
            message = f"{first['input']!r}: {message}"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return " ".join(f"{source}: {location}: {message}{more}".splitlines())


def model_from_dict(model: type[M], data: dict[str, Any], source: str,
                    secret_safe: bool = False) -> M:
    """Validate ``data`` into ``model``; a problem becomes :class:`BadInput` naming ``source``
    (without any value when ``secret_safe``, see :func:`format_validation_error`)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BadInput(format_validation_error(source, error, secret_safe)) from None


def read_toml(path: str | os.PathLike[str], what: str = "file") -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or malformed file becomes :class:`BadInput`."""
    file = Path(path)
    if not file.exists():
        raise BadInput(f"{file}: {what} not found")
    if file.is_dir():
        raise BadInput(f"{file}: is a directory; expected a TOML {what}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{file}: cannot read {what}: {error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"{file}: not valid TOML: {error}") from None


def load_toml_model(path: str | os.PathLike[str], model: type[M], what: str = "config") -> M:
    """Read a TOML file and validate it into ``model``, naming the file in every error."""
    return model_from_dict(model, read_toml(path, what), str(path))
