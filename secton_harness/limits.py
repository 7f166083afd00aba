"""How much of an answer any command reads: the caps that bound memory and time.

A monitoring tool is pointed at proxies and gateways it does not control, so every request
path reads an answer through the same caps, applied *while* reading (a 100 MB body or an
endless stream is cut at the cap, never buffered first):

* :data:`MAX_HEAD_BYTES` - status line plus headers. The probe client (httpx) inherits
  httpcore's fixed 100 KiB (``HTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE``; a test checks
  the two agree); the Locust paths count the bytes fed to the parser.
* :func:`max_body_bytes` - the body, after decompression; default
  :data:`DEFAULT_MAX_BODY_BYTES`, configurable with the environment variable
  ``SECTON_MAX_BODY_BYTES`` (inherited by the Locust child processes).
* every request has a deadline for the *whole* answer (a target trickling one byte a
  second never resets it); see each command's timeout in docs/guarantees.md.

An answer past a cap is the error class ``too_large`` (:mod:`.error_classes`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from secton_harness.errors import BadInput

MAX_HEAD_BYTES = 100 * 1024
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
BODY_ENV = "SECTON_MAX_BODY_BYTES"
#: The most text taken from an answer into an error detail or a record's reason.
TEXT_LIMIT_CHARS = 200


def max_body_bytes(env: Mapping[str, str] | None = None) -> int:
    """The body cap: ``SECTON_MAX_BODY_BYTES`` (1 KiB .. 1 GiB) or the default."""
    env = os.environ if env is None else env
    raw = env.get(BODY_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{BODY_ENV}: {raw[:40]!r} is not a whole number of bytes; "
                       "use e.g. 4194304") from None
    if not 1024 <= value <= 1 << 30:
        raise BadInput(f"{BODY_ENV}: {value} is outside 1024 .. 1073741824 bytes")
    return value
