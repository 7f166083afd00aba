"""Token counting from text, deterministic and dependency-free.

A token is a run of word characters or a single other non-space character
(``re: \\w+|[^\\w\\s]``): ``"Don't panic!"`` is ``Don ' t panic !`` = 5 tokens. Real
tokenizers differ; the harness only relies on counts being consistent and on
``total = prompt + completion``. ``prompt_tokens`` is the sum over message contents.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """How many tokens ``text`` holds."""
    return len(_TOKEN.findall(text))


def truncate_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut after its first ``max_tokens`` tokens (whole text if shorter)."""
    for index, match in enumerate(_TOKEN.finditer(text), start=1):
        if index == max_tokens:
            return text[: match.end()]
    return text
