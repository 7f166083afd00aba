"""The run folder: ``run.json`` (what ran and how it ended) beside the records.

``run.json`` is written when the run starts (``outcome: "running"``) and rewritten
atomically when it ends, so a run killed outright is still described, and a run that was
interrupted says so (``outcome: "interrupted"``). Secrets never enter it: the config is
stored through :func:`scrub`, which drops every field that can hold key material.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from secton_harness.atomicfile import write_json_atomic
from secton_harness.errors import BadInput

RUN_FILE = "run.json"
OUTCOMES = ("running", "passed", "failed", "interrupted", "error", "incomplete")
_SECRET_FIELDS = {"key", "api_key", "token", "secret", "password", "authorization"}


def scrub(value: Any) -> Any:
    """A copy of ``value`` with every secret-holding field replaced by ``"<redacted>"``.

    A secret-named field that holds a table (``expect.key``: the documented per-key
    policy) is a section, not a secret: it is scrubbed inside, not replaced (it was lost
    from run.json)."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if str(k).lower() in _SECRET_FIELDS
                    and not isinstance(v, dict) else scrub(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def versions() -> dict[str, str]:
    """Versions of the harness, Python and the libraries whose behaviour shapes the figures."""
    found = {"python": platform.python_version()}
    for dist in ("secton-harness", "locust", "httpx", "pandas", "pyarrow", "prometheus-client"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


def default_run_dir(command: str, base: str | os.PathLike[str] = "runs") -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(base) / f"{stamp}-{command}"


@dataclass
class RunFolder:
    """One run's folder; create with :meth:`start`, end with :meth:`finish`."""

    path: Path
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, path: str | os.PathLike[str] | None, *, command: str,
              argv: list[str] | None = None, config: Any = None,
              target: str | None = None) -> RunFolder:
        folder = Path(path) if path is not None else default_run_dir(command)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInput(f"{folder}: cannot create the run folder: {error.strerror}") from None
        if not os.access(folder, os.W_OK):
            raise BadInput(f"{folder}: run folder is not writable")
        _refuse_blocked_names(folder)
        info = {
            "command": command,
            "argv": argv if argv is not None else sys.argv[1:],
            "config": scrub(config) if config is not None else None,
            "target": target,
            "versions": versions(),
            "host": socket.gethostname(),
            "started_at": time.time(),
            "ended_at": None,
            "outcome": "running",
        }
        run = cls(folder, info)
        try:
            run.save()
        except OSError as error:
            raise BadInput(f"{folder}: cannot write {RUN_FILE}: "
                           f"{error.strerror or error}") from None
        return run

    def save(self) -> None:
        write_json_atomic(self.path / RUN_FILE, self.info)

    def update(self, **fields: Any) -> None:
        self.info.update(fields)
        self.save()

    def finish(self, outcome: str, **fields: Any) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} not in {OUTCOMES}")
        self.update(outcome=outcome, ended_at=time.time(), **fields)


def _refuse_blocked_names(folder: Path) -> None:
    """An existing folder where a file the run writes is a directory (or the parts
    directory a file): refused before the run, not a traceback when the file is written
    (``run.json`` at once, ``records.parquet`` or ``ratelimit.json`` at the end)."""
    from secton_harness.ratelimit_model import RESULT_FILE
    from secton_harness.records import PARTS_DIR, RECORDS_FILE

    for name, is_dir in ((RUN_FILE, False), (RECORDS_FILE, False), (RESULT_FILE, False),
                         (PARTS_DIR, True)):
        entry = folder / name
        if entry.exists() and entry.is_dir() != is_dir:
            kind = "a file" if is_dir else "a directory"
            raise BadInput(f"{folder}: {name} is {kind}; the run cannot write it, choose "
                           "another --out")


def read_run_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``run.json`` of a folder; missing or corrupt → :class:`BadInput` naming the file."""
    file = Path(run_dir) / RUN_FILE
    if not Path(run_dir).is_dir():
        raise BadInput(f"{run_dir}: not a directory; expected a run folder")
    if not file.exists():
        raise BadInput(f"{file}: missing; not a run folder (or the run never started)")
    return read_json_object(file)


def read_json_object(file: Path) -> dict[str, Any]:
    """A JSON file that must hold an object (run.json, ratelimit.json); else BadInput."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInput(f"{file}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{file}: expected a JSON object")
    return data
