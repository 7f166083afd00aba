"""The run folder of a ``load`` whose CLI was killed: the Locust process closes it.

``secton-harness load`` writes ``run.json`` twice: ``outcome: "running"`` at the start,
the verdict at the end. When the CLI is killed outright (SIGKILL, OOM killer) the Locust
child stops itself (parent-death signal, its watch of the CLI's pid) and flushes its
records, but nobody wrote the end: the folder said ``running`` forever. So the Locust
process started by the CLI, as its very last act, finishes ``run.json`` as
``interrupted`` with a reason and the records on disk, and judges nothing (thresholds
and default checks need the CLI's merge and its view of the run).

One writer only: the CLI writes ``run.json`` whenever it is alive to do so; the child
writes only when the CLI's pid is gone or a zombie, which a process can never come back
from (a pid reused by another process reads as alive: then nobody writes, and the report
names the run "never finished"). The write is atomic (:mod:`secton_harness.atomicfile`)
and happens only while ``run.json`` still says ``running``. Plain Python, no gevent:
called from ``loadtests/locustfile.py`` at exit.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from loadtests.run_files import SUMMARY_FILE
from secton_harness.errors import HarnessError
from secton_harness.records import read_records
from secton_harness.runfolder import RUN_FILE, RunFolder, read_run_info

#: run.json ``stopped_by`` when the Locust process closed the folder itself.
STOPPED_BY = "cli_gone"


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed CLI not reaped yet is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: existence is all we can tell
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def finish_orphaned_run(run_dir: str | os.PathLike[str], cli_pid: int) -> bool:
    """Finish ``run_dir/run.json`` as ``interrupted`` if the CLI ``cli_pid`` is gone.

    Returns whether it wrote. Nothing is written while the CLI lives, when there is no
    run.json (Locust run by hand), or when run.json no longer says ``running``.
    """
    run_dir = Path(run_dir)
    if cli_pid <= 0 or alive(cli_pid) or not (run_dir / RUN_FILE).is_file():
        return False
    try:
        info = read_run_info(run_dir)
    except HarnessError:
        return False
    if info.get("outcome") != "running":
        return False
    try:
        records: int | None = read_records(run_dir).num_rows
    except HarnessError:
        records = 0 if not any(run_dir.glob("records.parts/*.parquet")) else None
    locust: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((run_dir / SUMMARY_FILE).read_text())
        locust = loaded if isinstance(loaded, dict) else {}
    kept = "its records" if records is None else f"its {records} records"
    reason = (f"the load command (pid {cli_pid}) was killed before the run ended; the "
              f"Locust process stopped itself and kept {kept}; thresholds and default "
              "checks were not judged")
    RunFolder(run_dir, info).finish("interrupted", reason=reason, records=records,
                                    stopped_by=STOPPED_BY, locust=locust)
    return True
