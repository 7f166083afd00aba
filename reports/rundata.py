"""Reading run folders for a report: only files, only the columns the analysis needs.

A report reads one or more run folders (``run.json`` + ``records.parquet`` or the leftover
``records.parts/`` of a killed run, plus an optional ``ratelimit.json``) and combines their
records into one pandas frame. String columns arrive dictionary-encoded (pandas
``category``), so a million records cost tens of megabytes, not gigabytes.

What is missing is recorded in :attr:`RunData.notes` and shown in the report; what makes a
report impossible (a folder that does not exist, unreadable JSON, a corrupt Parquet file,
no records and no run.json, a records file missing where run.json counts records, a
field the report reads holding the wrong type: a nested
``started_at``, a text ``status`` column) is a one-line :class:`BadInput`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from secton_harness.errors import BadInput
from secton_harness.ratelimit_model import RESULT_FILE
from secton_harness.records import PARTS_DIR, RECORDS_FILE, read_records
from secton_harness.runfolder import RUN_FILE, read_json_object, read_run_info

#: Columns the analysis reads (``bytes``, ``worker`` and the rate-limit header columns are
#: never needed, so they are never loaded).
NEEDED = ["ts", "source", "phase", "endpoint", "key_alias", "org", "status", "latency_s",
          "error", "retry_after_s", "prompt_tokens", "completion_tokens", "total_tokens",
          "target",
          "check", "success", "reason", "intended_ts", "detail"]
CATEGORICAL = ["source", "phase", "endpoint", "key_alias", "org", "error", "target", "check",
               "reason", "detail"]
RATELIMIT_FILE = RESULT_FILE


@dataclass
class RunData:
    """The combined input of one report."""

    dirs: list[Path]
    infos: list[dict[str, Any]]
    records: pd.DataFrame
    ratelimit: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def source(self, name: str) -> pd.DataFrame:
        """The records of one source (load, probe, ratelimit)."""
        if self.records.empty:
            return self.records
        return self.records[self.records["source"] == name]


def _table_to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow → pandas with strings as categories (small and fast to group by)."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if name in CATEGORICAL:
            column = pa.chunked_array(
                [chunk.cast(pa.string()).fill_null("") for chunk in column.chunks]
                or [pa.array([], pa.string())]).dictionary_encode()
        columns[name] = column
    frame = pa.table(columns).to_pandas(split_blocks=True, self_destruct=True)
    for name in CATEGORICAL:
        if name in frame and not isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype("category")
    return frame


def _read_frame(run_dir: Path) -> pd.DataFrame:
    try:
        schema_columns = _available_columns(run_dir)
        table = read_records(run_dir, columns=[c for c in NEEDED if c in schema_columns])
    except BadInput:
        raise
    except (pa.ArrowException, OSError, ValueError) as error:
        raise BadInput(f"{run_dir}: records cannot be read ({error})") from None
    missing = [c for c in NEEDED if c not in table.column_names]
    for name in missing:  # an older file: absent columns read as nulls
        table = table.append_column(name, pa.nulls(table.num_rows, _NULL_TYPES.get(name)))
    return _table_to_frame(_typed(table, run_dir))


def _typed(table: pa.Table, run_dir: Path) -> pa.Table:
    """Every needed column in the type the analysis expects (``status`` as text would
    break every comparison); a column that cannot be read so is :class:`BadInput`."""
    for index, name in enumerate(table.column_names):
        expected = _NULL_TYPES[name]
        column = table.column(index)
        if column.type == expected:
            continue
        try:
            table = table.set_column(index, name, column.cast(expected))
        except (pa.ArrowException, ValueError):
            raise BadInput(f"{run_dir}: records column {name!r} holds {column.type}, which "
                           f"does not read as {expected}; not a harness records file?"
                           ) from None
    return table


_NULL_TYPES = {"ts": pa.float64(), "latency_s": pa.float64(), "status": pa.int32(),
               "success": pa.bool_(), "retry_after_s": pa.float64(),
               "intended_ts": pa.float64(), "prompt_tokens": pa.int64(),
               "completion_tokens": pa.int64(), "total_tokens": pa.int64()}
for _name in CATEGORICAL:
    _NULL_TYPES[_name] = pa.string()


def _available_columns(run_dir: Path) -> set[str]:
    """Column names of the first records file (so an older file missing a column still reads)."""
    import pyarrow.parquet as pq

    files = [run_dir / RECORDS_FILE] if (run_dir / RECORDS_FILE).exists() else []
    parts = run_dir / PARTS_DIR
    files += sorted(parts.glob("*.parquet")) if parts.is_dir() else []
    for file in files:
        try:
            return set(pq.read_schema(file).names)
        except (pa.ArrowException, OSError) as error:
            raise BadInput(f"{file}: records file is corrupt or truncated ({error})") from None
    return set(NEEDED)


def _read_ratelimit(run_dir: Path) -> dict[str, Any] | None:
    file = run_dir / RATELIMIT_FILE
    if not file.exists():
        return None
    data = read_json_object(file)
    holders = [("", data)] + [(f"{where}.", scope) for where, scope in _scope_dicts(data)]
    for prefix, holder in holders:
        for name in _RATELIMIT_NUMBERS:
            _check_field(file, f"{prefix}{name}", holder.get(name), _is_number,
                         "a number")
    return data


#: ratelimit.json fields the report does arithmetic on (at the top and in every scope).
_RATELIMIT_NUMBERS = ("requests_sent", "elapsed_s")


def _scope_dicts(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    scopes = data.get("scopes")
    if isinstance(scopes, list):
        return [(f"scopes[{i}]", s) for i, s in enumerate(scopes) if isinstance(s, dict)]
    holder = scopes if isinstance(scopes, dict) else data
    prefix = "scopes." if isinstance(scopes, dict) else ""
    return [(f"{prefix}{name}", value) for name, value in holder.items()
            if isinstance(value, dict)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _is_unix_time(value: Any) -> bool:
    return _is_number(value) and 0 <= value < _MAX_UNIX_TIME


_MAX_UNIX_TIME = 1e11  # year 5138: beyond it a "time" is no Unix time in seconds
#: run.json fields the report reads, with what each must be (or null / absent).
_RUN_FIELDS: dict[str, tuple[Any, str]] = {
    "command": (lambda v: isinstance(v, str), "a string"),
    "target": (lambda v: isinstance(v, str), "a string"),
    "outcome": (lambda v: isinstance(v, str), "a string"),
    "started_at": (_is_unix_time, "a Unix time in seconds"),
    "ended_at": (_is_unix_time, "a Unix time in seconds"),
    "thresholds": (lambda v: isinstance(v, list | dict), "a list or an object"),
}


def _check_field(file: Path, name: str, value: Any, valid: Any, what: str) -> None:
    if value is not None and not valid(value):
        raise BadInput(f"{file}: {name}: expected {what} (or null), found "
                       f"{_json_kind(value)}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value:g}" if math.isfinite(value) else "a non-finite number"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a value")


def _checked_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json, with every field the report reads of the type it needs (else BadInput)."""
    info = read_run_info(run_dir)
    for name, (valid, what) in _RUN_FIELDS.items():
        _check_field(run_dir / RUN_FILE, name, info.get(name), valid, what)
    return info


def _has_records(run_dir: Path) -> bool:
    parts = run_dir / PARTS_DIR
    return (run_dir / RECORDS_FILE).exists() or (parts.is_dir() and any(parts.glob("*.parquet")))


def _check_records_present(run_dir: Path, info: dict[str, Any], has_records: bool) -> None:
    """BadInput when run.json counts records that are not there: a report over the rest
    would say "recorded nothing" (a verdict on the target) where a file is lost."""
    said = info.get("records")
    if not has_records and isinstance(said, int | float) and _is_number(said) and said > 0:
        raise BadInput(f"{run_dir / RECORDS_FILE}: missing, though {RUN_FILE} says "
                       f"{said:g} records were taken (no {PARTS_DIR}/ either); restore "
                       "the file or report another run")


def load_runs(dirs: list[str | os.PathLike[str]]) -> RunData:
    """Read every run folder; raise BadInput for what cannot be reported at all."""
    paths = [Path(d) for d in dirs]
    infos: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    ratelimit: list[dict[str, Any]] = []
    notes: list[str] = []
    for run_dir in paths:
        if not run_dir.is_dir():
            raise BadInput(f"{run_dir}: not a directory; expected a run folder")
        has_records = _has_records(run_dir)
        limits = _read_ratelimit(run_dir)
        if (run_dir / RUN_FILE).exists() or not (has_records or limits):
            info = _checked_run_info(run_dir)  # BadInput when missing/corrupt/mistyped
        else:
            info = {}
            notes.append(f"{run_dir}: run.json is missing; command, target and outcome "
                         "are unknown")
        info = {**info, "dir": str(run_dir)}
        infos.append(info)
        if limits is not None:
            ratelimit.append({**limits, "dir": str(run_dir)})
        _check_records_present(run_dir, info, has_records)
        if has_records:
            frame = _read_frame(run_dir)
            if frame.empty:
                notes.append(f"{run_dir}: records file holds no records")
            frames.append(frame)
        elif limits is None:
            notes.append(f"{run_dir}: no {RECORDS_FILE} (and no {PARTS_DIR}/); "
                         "the run recorded nothing")
        if info.get("outcome") in ("running", "interrupted", "error", "incomplete"):
            notes.append(f"{run_dir}: run outcome is {info['outcome']!r}; figures cover "
                         "only what was recorded")
    frames = [f for f in frames if not f.empty]
    if frames:
        records = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        for name in CATEGORICAL:  # concat of differing categories falls back to object
            if not isinstance(records[name].dtype, pd.CategoricalDtype):
                records[name] = records[name].astype("category")
    else:
        records = _table_to_frame(pa.table({c: pa.array([], _NULL_TYPES[c]) for c in NEEDED}))
    return RunData(paths, infos, records, ratelimit, notes)
