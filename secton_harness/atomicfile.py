"""Write a file so that readers see the old content or the new, never half of it.

One behaviour for every output (run.json, records parts, ratelimit.json, reports,
dashboards, the reference server's stats): a uniquely named temporary file in the same
folder (so two writers never share it and ``os.replace`` stays on one file system), mode
0644 (files are read by other users, e.g. Grafana's container), and the temporary file
removed when writing fails.

Example::

    write_json_atomic(run_dir / "run.json", info)
    with atomic_path(run_dir / "records.parquet") as tmp:
        pyarrow.parquet.write_table(table, tmp)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write; moved over ``path`` when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_json_atomic(path: Path, data: Any, indent: int = 2) -> None:
    """JSON with ``default=str`` (paths, datetimes) and a final newline."""
    write_text_atomic(path, json.dumps(data, indent=indent, default=str) + "\n")
