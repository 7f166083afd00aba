"""The one request-record shape, and the store every request source writes to.

Everything that sends a request (a probe, a Locust user, the rate-limit mapper) produces a
record with the columns of :data:`SCHEMA` (the run-folder contract of docs/architecture.md plus a
few optional columns). A :class:`RecordSink` collects them in memory and flushes them in
batches as Parquet part files under ``records.parts/``, so an interrupted run (even one
killed outright) keeps every batch already flushed; :meth:`RecordSink.close` merges the
parts into ``records.parquet``. :func:`read_records` reads either form.

Example::

    sink = RecordSink(run_dir, source="probe")
    sink.add(ts=time.time(), endpoint="/v1/models", method="GET", status=200, latency_s=0.012)
    sink.close()
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from secton_harness.atomicfile import atomic_path
from secton_harness.errors import BadInput

RECORDS_FILE = "records.parquet"
PARTS_DIR = "records.parts"

#: The run-folder contract's columns first, then the optional ones (docs/architecture.md).
SCHEMA = pa.schema([
    ("ts", pa.float64()),                 # epoch seconds when the request was sent
    ("source", pa.string()),              # load | probe | ratelimit
    ("phase", pa.string()),               # load stage, mapper phase, or probe check group
    ("endpoint", pa.string()),            # path template, e.g. /v1/chat/completions
    ("method", pa.string()),
    ("key_alias", pa.string()),           # never the key itself
    ("org", pa.string()),
    ("status", pa.int32()),               # 0 when no response arrived
    ("latency_s", pa.float64()),          # monotonic-clock duration, full precision
    ("error", pa.string()),               # error class or ""
    ("bytes", pa.int64()),
    ("retry_after_s", pa.float64()),
    ("ratelimit_limit", pa.int64()),
    ("ratelimit_remaining", pa.int64()),
    ("ratelimit_reset_s", pa.float64()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("total_tokens", pa.int64()),
    # optional columns (added by this project)
    ("target", pa.string()),              # target label (probes may watch several targets)
    ("check", pa.string()),               # probe check name
    ("success", pa.bool_()),              # the check's / request's verdict
    ("reason", pa.string()),              # failure reason of a probe check, else ""
    ("detail", pa.string()),              # failed condition, e.g. expected [STATUS] == 200, got 500
    ("intended_ts", pa.float64()),        # open-model pacing: when the request was due
    ("worker", pa.string()),              # which process produced the record
    ("step", pa.string()),                # rate-limit mapper: sub-phase (burst, cooldown, ...)
])
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
_DEFAULTS: dict[str, Any] = {"error": "", "reason": "", "detail": "", "phase": "", "target": "",
                             "check": "", "worker": "", "step": "", "status": 0}
_COLUMN_SET = frozenset(COLUMNS)
#: Rows a sink keeps waiting while its writes fail (a full disk) before the oldest go.
MAX_WAITING_ROWS = 200_000


class RecordSink:
    """Collects records and flushes them as Parquet parts every ``batch_size`` rows or
    ``flush_interval_s`` seconds; thread-safe; ``close()`` merges the parts."""

    def __init__(self, run_dir: str | os.PathLike[str], *, source: str = "",
                 batch_size: int = 5000, flush_interval_s: float = 2.0,
                 part_prefix: str = "part", defaults: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.parts_dir = self.run_dir / PARTS_DIR
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.part_prefix = part_prefix
        #: column values for rows that do not set them (filled per batch, not per row)
        self.defaults = {**({"source": source} if source else {}), **(defaults or {})}
        self.count = 0
        #: rows given up (oldest first) because writes kept failing past MAX_WAITING_ROWS
        self.dropped = 0
        self._rows: list[dict[str, Any]] = []
        self._parts = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._closed = False
        warm_up()

    def add(self, record: dict[str, Any] | None = None, /, **fields: Any) -> None:
        """Add one record (a dict and/or keyword fields); unknown columns are an error."""
        self.extend([{**record, **fields} if record is not None else fields])

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        """Add many records at once (the rows are kept as given, not copied)."""
        with self._lock:
            before = len(self._rows)
            self._rows.extend(records)
            self.count += len(self._rows) - before
            due = (len(self._rows) >= self.batch_size
                   or time.monotonic() - self._last_flush >= self.flush_interval_s)
        if due:
            self.flush()

    def flush(self) -> pa.Table | None:
        """Write what is buffered as one new part file (atomically); returns that batch."""
        with self._lock:
            rows, self._rows = self._rows, []
            self._last_flush = time.monotonic()
        if not rows:
            return None
        table = rows_to_table(rows, self.defaults)
        try:
            self.write_table(table)
        except OSError:  # e.g. a full disk: the rows wait for the next flush, not lost
            with self._lock:
                self._rows[:0] = rows
                excess = len(self._rows) - MAX_WAITING_ROWS
                if excess > 0:  # memory stays bounded however long the disk stays full
                    del self._rows[:excess]
                    self.dropped += excess
            raise
        return table

    def write_table(self, table: pa.Table) -> Path:
        """Write a batch already in table form (the full schema) as one new part file;
        returns its path (the load recorder ships it to a remote master).

        For producers that build their own tables (the load recorder); :attr:`count`
        only counts rows given to :meth:`add`/:meth:`extend`.
        """
        with self._lock:
            self._parts += 1
            name = f"{self.part_prefix}-{os.getpid()}-{self._parts:06d}.parquet"
        write_table_atomic(table, self.parts_dir / name)
        return self.parts_dir / name

    def close(self, merge: bool = True) -> Path:
        """Flush, then (if ``merge``) merge all parts of the folder into records.parquet."""
        if not self._closed:
            self.flush()
            self._closed = True
        if merge:
            return merge_parts(self.run_dir)
        return self.run_dir / RECORDS_FILE

    def __enter__(self) -> RecordSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rows_to_table(rows: list[dict[str, Any]],
                  defaults: dict[str, Any] | None = None) -> pa.Table:
    """Rows (dicts with any subset of the columns) as a table with the full schema.

    A column a row leaves out gets ``defaults[column]``, else the schema default ("" for
    text columns, 0 for status), else null. Arrow converts the dicts in C++
    (``from_pylist``) and the defaults are filled column-wise. A value its column cannot
    hold (``99999999999999999999`` in an int64 column) never fails the batch: that row is
    converted alone, the value becomes null and ``detail`` names it.
    """
    unknown = (set().union(*rows) | set(defaults or ())) - _COLUMN_SET
    if unknown:
        raise ValueError(f"unknown record column(s): {', '.join(sorted(unknown))}")
    try:
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
    except _CONVERSION_ERRORS:  # one value that does not fit must not cost the batch
        table = pa.Table.from_pylist([_fitting(row) for row in rows], schema=SCHEMA)
    return _fill_defaults(table, defaults)


#: What Arrow raises for a value its column cannot hold (an int beyond int64, text in a
#: number column): ArrowInvalid, ArrowTypeError, OverflowError.
_CONVERSION_ERRORS = (pa.ArrowException, OverflowError, TypeError, ValueError)
_SHOWN_VALUE = 40


def _fitting(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` if Arrow can store it, else a copy whose misfit values are null and named in
    ``detail`` (the row is kept: the offending value is isolated, not the batch lost)."""
    try:
        pa.Table.from_pylist([row], schema=SCHEMA)
        return row
    except _CONVERSION_ERRORS:
        pass
    fixed, notes = dict(row), []
    for name, value in row.items():
        try:
            pa.array([value], SCHEMA.field(name).type)
        except _CONVERSION_ERRORS:
            fixed[name] = None
            notes.append(f"{name} {_shown(value)} does not fit {SCHEMA.field(name).type}")
    note = "record: " + "; ".join(notes) + " (stored as null)"
    detail = fixed.get("detail")
    fixed["detail"] = f"{detail}; {note}" if isinstance(detail, str) and detail else note
    return fixed


def _shown(value: Any) -> str:
    """A misfit value as a note may show it: numbers cut short, anything else by type only
    (a text value could be response content, and this note bypasses no redaction)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= _SHOWN_VALUE else text[:_SHOWN_VALUE] + "…"
    return f"(a {type(value).__name__})"


def tuples_to_table(rows: list[tuple[Any, ...]], fields: tuple[str, ...],
                    defaults: dict[str, Any] | None = None) -> pa.Table:
    """Rows as tuples in the order of ``fields`` (the load generator's cheap form of a
    record), as a table with the full schema; other columns as in :func:`rows_to_table`.

    Converted column by column (``zip(*rows)`` and one ``pa.array`` each): about a third
    of the cost of converting dicts, on a thread that shares the generator's GIL.
    """
    unknown = (set(fields) | set(defaults or ())) - _COLUMN_SET
    if unknown:
        raise ValueError(f"unknown record column(s): {', '.join(sorted(unknown))}")
    columns = dict(zip(fields, zip(*rows, strict=True), strict=True)) if rows else {}
    try:
        arrays = [pa.array(columns[name], SCHEMA.field(name).type) if name in columns
                  else pa.nulls(len(rows), SCHEMA.field(name).type) for name in COLUMNS]
    except _CONVERSION_ERRORS:  # a misfit value: the row-wise path isolates it
        return rows_to_table([dict(zip(fields, row, strict=True)) for row in rows], defaults)
    return _fill_defaults(pa.Table.from_arrays(arrays, schema=SCHEMA), defaults)


def _fill_defaults(table: pa.Table, defaults: dict[str, Any] | None) -> pa.Table:
    """Nulls of the default-carrying columns replaced, column-wise.

    Scalars are made here, not at import: pyarrow's first scalar imports pandas (~0.3 s),
    which every command that merely imports this module would otherwise pay.
    """
    fills = {**_DEFAULTS, **(defaults or {})}
    for name, value in fills.items():
        default = pa.scalar(value, SCHEMA.field(name).type)
        index = table.schema.get_field_index(name)
        column = table.column(index)
        if column.null_count:
            table = table.set_column(index, name, pc.fill_null(column, default))
    return table


@functools.cache
def warm_up() -> None:
    """Convert one dummy row now: pyarrow's first conversion imports pandas (~0.3 s with
    the GIL held), which would otherwise stall the first flush in the middle of a run
    (a load generator's users, a rate-limit mapper's timed burst), or the load CLI's
    merge of the records after a signal (it made every stop 0.2-0.3 s slower)."""
    rows_to_table([{}])


def write_table_atomic(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _part_files(run_dir: Path) -> list[Path]:
    parts = run_dir / PARTS_DIR
    return sorted(parts.glob("*.parquet")) if parts.is_dir() else []


def merge_parts(run_dir: str | os.PathLike[str]) -> Path:
    """Fold every part file (and an existing records.parquet) into records.parquet."""
    run_dir = Path(run_dir)
    target = run_dir / RECORDS_FILE
    parts = _part_files(run_dir)
    if not parts and target.exists():
        return target
    tables = [pq.read_table(target, schema=SCHEMA)] if target.exists() else []
    tables += [pq.read_table(part, schema=SCHEMA) for part in parts]
    merged = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    if "ts" in merged.column_names and merged.num_rows:
        merged = merged.sort_by("ts")
    write_table_atomic(merged, target)
    for part in parts:
        part.unlink(missing_ok=True)
    if (run_dir / PARTS_DIR).exists():
        _rmdir_quietly(run_dir / PARTS_DIR)
    return target


def _rmdir_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def read_records(run_dir: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """Every record of a run: records.parquet plus any unmerged parts (an interrupted run).

    A corrupt or truncated file becomes :class:`BadInput` naming it.
    """
    run_dir = Path(run_dir)
    files = ([run_dir / RECORDS_FILE] if (run_dir / RECORDS_FILE).exists() else [])
    files += _part_files(run_dir)
    if not files:
        raise BadInput(f"{run_dir}: no {RECORDS_FILE} (and no {PARTS_DIR}/); not a run folder?")
    tables = []
    for file in files:
        try:
            tables.append(pq.read_table(file, columns=columns))
        except (pa.ArrowException, OSError) as error:
            raise BadInput(f"{file}: records file is corrupt or truncated ({error})") from None
    return pa.concat_tables(tables, promote_options="default")
