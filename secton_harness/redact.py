"""The one place where content from the network becomes text: redacted, one line, capped.

A target can echo the request's ``Authorization`` value anywhere: in a JSON field, the
``Content-Type``, ``Retry-After``, an error message. Every piece of an answer that is
printed, recorded (``detail``, ``reason``), exported or reported passes through
:meth:`Redactor.text` first, which

* replaces every token-like run of characters that shares :data:`WINDOW` consecutive
  characters (in any case) with a configured key or with the key's base64 forms (so a key
  cut at the front or the back, quoted, lowered, URL- or base64-encoded, is caught), and
  every ``Bearer``/``Basic`` credential whatever it is, by ``<key ALIAS>`` or ``***``;
* turns control characters (newlines too: a reason is one line) into spaces;
* caps the result at ``limit`` characters (:data:`~secton_harness.limits.TEXT_LIMIT_CHARS`).

Example::

    >>> r = Redactor({"sk-LEAKCANARY-0123456789": "c1"})
    >>> r.text("bad key Bearer sk-LEAKCANARY-0123456789")
    'bad key Bearer ***'
    >>> r.text('{"id": "sk-LEAKCANARY-01234"}')
    '{"id": "<key c1>"}'
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping

from secton_harness.limits import TEXT_LIMIT_CHARS

#: A run this long shared with a key is the key (shorter keys: the whole key).
WINDOW = 10
#: Characters a key or its encodings are made of; a run of them is judged as a whole.
_RUN = re.compile(r"[A-Za-z0-9_\-+/=.~%:]+")
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic|token)(\s+|%20|\+)[^\s\"',;&]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
#: Read at most this many characters of raw text per output character (before redaction).
_READ_FACTOR = 4


def _forms(secret: str) -> list[str]:
    """The key and its base64 encodings in every alignment (inner parts only)."""
    forms = [secret]
    raw = secret.encode("utf-8", "replace")
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        inner = encoded[4:-4] if pad else encoded[:-4]
        forms += [inner, inner.replace("+", "-").replace("/", "_")]
    return [form for form in forms if form]


class Redactor:
    """Removes a set of secrets (keys, by alias) from any text; cheap to call often."""

    def __init__(self, secrets: Mapping[str, str] | Iterable[str] = ()) -> None:
        named = (dict(secrets) if isinstance(secrets, Mapping)
                 else dict.fromkeys(secrets, ""))
        self._windows: dict[str, str] = {}
        self._whole: dict[str, str] = {}
        for secret, alias in named.items():
            if not secret or not secret.strip():
                continue
            shown = f"<key {alias}>" if alias else "***"
            for form in _forms(secret):
                form = form.lower()  # a target may change case (a media type is lowered)
                if len(form) <= WINDOW:
                    self._whole[form] = shown
                    continue
                for i in range(len(form) - WINDOW + 1):
                    self._windows.setdefault(form[i:i + WINDOW], shown)

    @classmethod
    def none(cls) -> Redactor:
        """A redactor that knows no key (still masks credentials and control characters)."""
        return cls()

    def _run(self, match: re.Match[str]) -> str:
        run = match.group(0).lower()
        for whole, shown in self._whole.items():
            if whole in run:
                return shown
        if len(run) >= WINDOW and self._windows:
            windows = self._windows
            for i in range(len(run) - WINDOW + 1):
                found = windows.get(run[i:i + WINDOW])
                if found is not None:
                    return found
        return match.group(0)

    def redact(self, text: str) -> str:
        """``text`` without any secret or credential (length not capped)."""
        text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} ***", text)
        if self._windows or self._whole:
            text = _RUN.sub(self._run, text)
        return text

    def text(self, content: object, limit: int = TEXT_LIMIT_CHARS) -> str:
        """Network content (bytes, str or anything with a ``str``) as one safe line of at
        most ``limit`` characters: redacted, control characters as spaces."""
        if isinstance(content, bytes | bytearray | memoryview):
            raw = bytes(content[:limit * _READ_FACTOR]).decode("utf-8", "replace")
        else:
            try:
                raw = str(content)[:limit * _READ_FACTOR]
            except Exception:  # a hostile object's __str__ must not escape
                raw = f"<{type(content).__name__}>"
        line = _CONTROL.sub(" ", self.redact(raw))
        if len(line) > limit:
            line = line[:max(limit - 1, 0)] + "…"
        return line
