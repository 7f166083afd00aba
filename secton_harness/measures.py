"""The measures of a run, each defined once: thresholds, the live table, run.json, reports
and the dashboards' PromQL all follow these definitions (docs/measurement.md).

* **requests**: one record is one request (answered or not).
* **rate limited** (``ratelimited``): status 429. Counted apart: a 429 is never an error
  and never ok; it stays in the denominator of every rate.
* **errors**: every other request that did not succeed: no response (status 0 or null), a
  status >= 400, an error class in the ``error`` column (e.g. ``contract``), or a record
  whose ``success`` column says false.
* **cancelled**: error class ``cancelled``, a request still open when the run stopped
  (SIGINT/SIGTERM, the drain's end, an abort). Counted apart: never an error, never ok
  (the harness cut it, the target did not fail it); it stays in the denominator of every
  rate, like a 429, and its partial wait is no latency (see percentiles).
* **ok**: none of these. So ``requests = ok + errors + ratelimited + cancelled``.
* **error rate** = errors / requests; **rate-limited rate** = ratelimited / requests;
  **success rate** = ok / requests (None without requests).
* **rps** = (requests - 1) / (last send - first send), over the send times ``ts`` of the
  records in scope (a run, a phase, an endpoint). Why this and not requests / planned
  duration: n sends delimit n - 1 gaps, so an even schedule at r/s gives exactly r
  whatever part of the run is measured (a phase, an endpoint, a run stopped early), and
  it needs nothing but the records — a report over any run folder gets the same figure
  the load command printed. It is None with fewer than two sends. **ok rps** and
  **tokens per s** scale it: rps x ok / requests and rps x tokens / requests.
* **tokens** of a request: the answer's ``usage.total_tokens``; where the target reports
  only ``prompt_tokens``/``completion_tokens``, their sum (:func:`request_tokens`).
* **percentiles** (pNN): linear interpolation between the closest ranks (numpy's
  default, k6 and ``numpy.percentile``), over every request with a latency, 429s and
  errors included; a cancelled request has none (:class:`Columns` blanks it: the time
  until the cut measures the run's stop, not the target).
* **corrected latency**: ``ts + latency_s - intended_ts``, from when the pacer said the
  request was due (coordinated omission). One fallback: a record without
  ``intended_ts`` (probes, the mapper, closed-model load) counts its plain latency.

The dashboards cannot read records; they follow the same words through the request
counter's ``outcome`` label, which the load job sets from :func:`outcome_labels`, so the
PromQL of :func:`promql_error_ratio` is errors / requests with 429s apart, exactly.

Example::

    columns = Columns.from_arrow(read_records(run_dir))
    counts = count(columns)
    print(counts.errors, error_rate(counts), rps(columns.ts), percentile(columns.latency_s, 95))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from secton_harness.error_classes import CANCELLED as CANCELLED_CLASS
from secton_harness.metrics import REQUEST_DURATION, REQUESTS

if TYPE_CHECKING:  # pyarrow is imported where records are read, not by the CLI's --help
    import pyarrow as pa

OK, ERROR, RATELIMITED, CANCELLED = "ok", "error", "ratelimited", CANCELLED_CLASS
#: Values of the request counter's ``outcome`` label.
OUTCOMES = (OK, ERROR, RATELIMITED, CANCELLED)
RATELIMITED_STATUS = 429
#: The availability objective of probes (share of check runs that do not fail): the one
#: default of the report's --slo, the probe dashboard's ``slo`` variable and the factors
#: of the burn-rate alerts in probes/rules/secton-probes.yml.
DEFAULT_SLO = 0.995

#: Names of the figures a threshold or a summary can ask for (plus pNN_latency_s and
#: pNN_corrected_latency_s for any percentile 0 < NN < 100).
SIMPLE_METRICS = ("requests", "rps", "rpm", "ok", "errors", "error_rate", "ratelimited",
                  "ratelimited_rate", "cancelled", "success_rate", "ok_rps", "mean_latency_s",
                  "max_latency_s", "tokens_per_s", "tokens_per_min")
PERCENTILE_RE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)_(corrected_)?latency_s$")


@dataclass(frozen=True)
class Columns:
    """The record columns the measures read, as numpy arrays (null → NaN / False).

    ``latency_s`` is NaN where ``cancelled`` is true, whatever was passed: a request cut by
    the run's stop waited until the cut, which is no latency of the target's, so no
    percentile, mean or max (nor the corrected latency built on it) can take it in.
    """

    ts: np.ndarray           # send time, epoch seconds
    latency_s: np.ndarray    # NaN where none or cancelled
    status: np.ndarray       # float, NaN where null; 0 = no response
    has_error: np.ndarray    # bool: a non-empty error class
    success: np.ndarray      # float 1.0 / 0.0, NaN where the record does not say
    intended_ts: np.ndarray  # NaN where the request had no schedule
    tokens: np.ndarray       # total tokens, NaN where none
    cancelled: np.ndarray | None = None  # bool: error class ``cancelled`` (None: none)

    def __post_init__(self) -> None:
        n = int(np.asarray(self.ts).size)
        cut = (np.zeros(n, dtype=bool) if self.cancelled is None
               else np.asarray(self.cancelled, dtype=bool))
        object.__setattr__(self, "cancelled", cut)
        if cut.any():
            object.__setattr__(self, "latency_s",
                               np.where(cut, np.nan, np.asarray(self.latency_s, dtype=float)))

    def __len__(self) -> int:
        return int(self.ts.size)

    def take(self, mask: np.ndarray) -> Columns:
        """The records where ``mask`` is true."""
        return Columns(*(getattr(self, name)[mask] for name in self.__dataclass_fields__))

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Columns:
        """From a records table (``records.parquet``); absent columns read as null."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = table.num_rows

        def floats(name: str) -> np.ndarray:
            if name not in table.column_names:
                return np.full(n, np.nan)
            column = pc.cast(table[name], pa.float64())
            return column.to_numpy(zero_copy_only=False).astype(float, copy=False)

        def error_where(compare: Any, value: str) -> np.ndarray:
            """Rows whose error class ``compare``s to ``value`` (null: no)."""
            if "error" not in table.column_names:
                return np.zeros(n, dtype=bool)
            found = pc.fill_null(compare(table["error"], value), False)
            return found.to_numpy(zero_copy_only=False).astype(bool)

        return cls(ts=floats("ts"), latency_s=floats("latency_s"), status=floats("status"),
                   has_error=error_where(pc.not_equal, ""), success=floats("success"),
                   intended_ts=floats("intended_ts"),
                   tokens=request_tokens(floats("total_tokens"), floats("prompt_tokens"),
                                         floats("completion_tokens")),
                   cancelled=error_where(pc.equal, CANCELLED_CLASS))


def request_tokens(total: np.ndarray, prompt: np.ndarray, completion: np.ndarray
                   ) -> np.ndarray:
    """Each request's tokens: ``total`` where the answer reported it, else prompt +
    completion where either was reported, else NaN (one definition for the CLI's
    thresholds and the report, which reads its records through pandas)."""
    parts = np.where(np.isnan(prompt) & np.isnan(completion), np.nan,
                     np.nan_to_num(prompt) + np.nan_to_num(completion))
    return np.where(np.isnan(total), parts, total)


# ---------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Outcomes:
    """One boolean mask per outcome; exactly one is true for each record."""

    ok: np.ndarray
    error: np.ndarray
    ratelimited: np.ndarray
    cancelled: np.ndarray


def classify(status: np.ndarray, has_error: np.ndarray, success: np.ndarray,
             cancelled: np.ndarray | None = None) -> Outcomes:
    """Each record's outcome (module docstring): cancelled apart (the run cut it, whatever
    else the record says), then 429 apart, then error, else ok."""
    status = np.asarray(status, dtype=float)
    cut = (np.zeros(status.size, dtype=bool) if cancelled is None
           else np.asarray(cancelled, dtype=bool))
    ratelimited = (status == RATELIMITED_STATUS) & ~cut
    no_response = ~(status > 0)  # 0 or NaN
    failed = (no_response | (status >= 400) | np.asarray(has_error, dtype=bool)
              | (np.asarray(success, dtype=float) == 0.0))
    error = failed & ~ratelimited & ~cut
    return Outcomes(ok=~(error | ratelimited | cut), error=error, ratelimited=ratelimited,
                    cancelled=cut)


def outcomes_of(columns: Columns) -> Outcomes:
    """:func:`classify` over a :class:`Columns`."""
    return classify(columns.status, columns.has_error, columns.success, columns.cancelled)


def outcome_labels(columns: Columns) -> np.ndarray:
    """The ``outcome`` label of each record (``ok``, ``error``, ``ratelimited``,
    ``cancelled``)."""
    o = outcomes_of(columns)
    return np.select([o.cancelled, o.ratelimited, o.error], [CANCELLED, RATELIMITED, ERROR],
                     default=OK)


@dataclass(frozen=True)
class Counts:
    requests: int
    ok: int
    errors: int
    ratelimited: int
    cancelled: int = 0


def count(columns: Columns) -> Counts:
    o = outcomes_of(columns)
    return Counts(len(columns), int(o.ok.sum()), int(o.error.sum()), int(o.ratelimited.sum()),
                  int(o.cancelled.sum()))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def error_rate(counts: Counts) -> float | None:
    """errors / requests (429s in the denominator, never in the numerator)."""
    return _share(counts.errors, counts.requests)


def ratelimited_rate(counts: Counts) -> float | None:
    return _share(counts.ratelimited, counts.requests)


def success_rate(counts: Counts) -> float | None:
    return _share(counts.ok, counts.requests)


# ---------------------------------------------------------------------- rates


def rps(ts: np.ndarray) -> float | None:
    """(n - 1) / (last send - first send); None with fewer than two sends or no span."""
    values = np.asarray(ts, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    span = float(values.max() - values.min())
    return (values.size - 1) / span if span > 0 else None


def scaled_rps(rate: float | None, part: float, requests: int) -> float | None:
    """``rate x part / requests``: the ok rate, the token rate… on the same span as rps."""
    if rate is None or not requests:
        return None
    return rate * part / requests


# ---------------------------------------------------------------------- latency


def percentile(values: np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (0..100), linear interpolation; None without values."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    return float(np.percentile(finite, q))


def percentiles(values: np.ndarray, qs: dict[str, float]) -> dict[str, float | None]:
    """Several percentiles at once: ``{"p95": 95.0}`` → ``{"p95": 0.123}``."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {name: None for name in qs}
    found = np.percentile(finite, list(qs.values()))
    return {name: float(v) for name, v in zip(qs, found, strict=True)}


def corrected_latency(columns: Columns) -> np.ndarray:
    """``ts + latency_s - intended_ts``; plain latency where there is no ``intended_ts``."""
    corrected = columns.ts + columns.latency_s - columns.intended_ts
    return np.where(np.isfinite(columns.intended_ts), corrected, columns.latency_s)


# ---------------------------------------------------------------------- by name


def check_metric_name(metric: str) -> None:
    """ValueError unless ``metric`` is one :func:`measure` can compute."""
    if metric in SIMPLE_METRICS:
        return
    match = PERCENTILE_RE.match(metric)
    if match and 0 < float(match.group(1)) < 100:
        return
    raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(SIMPLE_METRICS)}, "
                     "pNN_latency_s or pNN_corrected_latency_s")


def measure(metric: str, data: pa.Table | Columns) -> float | None:
    """The value of ``metric`` over the records (None when there is no data for it)."""
    columns = data if isinstance(data, Columns) else Columns.from_arrow(data)
    n = len(columns)
    if metric == "requests":
        return float(n)
    if n == 0:
        return None
    counts = count(columns)
    rate = rps(columns.ts)
    per = 60.0 if metric.endswith("_min") or metric == "rpm" else 1.0
    if metric in ("rps", "rpm"):
        return None if rate is None else rate * per
    if metric in ("tokens_per_s", "tokens_per_min"):
        tokens = float(np.nansum(columns.tokens))
        scaled = scaled_rps(rate, tokens, n)
        return None if scaled is None else scaled * per
    simple = {"ok": float(counts.ok), "errors": float(counts.errors),
              "ratelimited": float(counts.ratelimited), "error_rate": error_rate(counts),
              "cancelled": float(counts.cancelled),
              "ratelimited_rate": ratelimited_rate(counts),
              "success_rate": success_rate(counts)}
    if metric in simple:
        return simple[metric]
    if metric == "ok_rps":
        return scaled_rps(rate, counts.ok, n)
    if metric in ("mean_latency_s", "max_latency_s"):
        finite = columns.latency_s[np.isfinite(columns.latency_s)]
        if finite.size == 0:
            return None
        return float(finite.mean() if metric.startswith("mean") else finite.max())
    match = PERCENTILE_RE.match(metric)
    if match:
        values = corrected_latency(columns) if match.group(2) else columns.latency_s
        return percentile(values, float(match.group(1)))
    raise ValueError(f"unknown metric {metric!r}")


# ---------------------------------------------------------------------- PromQL


#: Label matchers of the request counter's outcome label.
IS_OK, IS_RATELIMITED, NOT_ERROR = (f'outcome="{OK}"', f'outcome="{RATELIMITED}"',
                                    f'outcome!="{ERROR}"')


def _sel(selector: str, extra: str = "") -> str:
    inner = ", ".join(part for part in (selector, extra) if part)
    return f"{{{inner}}}"


def promql_rps(selector: str, window: str = "$__rate_interval", by: str = "") -> str:
    """Requests per second over ``window`` (every outcome, 429s included)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({REQUESTS}{_sel(selector)}[{window}]))"


def promql_error_ratio(selector: str, window: str = "$__rate_interval") -> str:
    """errors / requests by the ``outcome`` label: 429s and cancelled requests in the
    denominator only.

    Written as ``1 - not-error / all`` so a run without errors shows 0, not "No data".
    """
    not_error = f"sum (rate({REQUESTS}{_sel(selector, NOT_ERROR)}[{window}]))"
    return f"1 - {not_error} / {promql_rps(selector, window)}"


def promql_ratelimited_ratio(selector: str, window: str = "$__rate_interval") -> str:
    """ratelimited / requests by the ``outcome`` label."""
    limited = f"sum (rate({REQUESTS}{_sel(selector, IS_RATELIMITED)}[{window}]))"
    return f"{limited} / {promql_rps(selector, window)}"


def promql_ok_rps(selector: str, window: str = "$__rate_interval", by: str = "") -> str:
    """Requests per second whose outcome is ok."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({REQUESTS}{_sel(selector, IS_OK)}[{window}]))"


def promql_latency_quantile(q: float, selector: str, window: str = "$__rate_interval",
                            by: str = "") -> str:
    """The pNN of request latency from the histogram (bucket layout: metrics.py)."""
    grouping = f"le, {by}" if by else "le"
    return (f"histogram_quantile({q:g}, sum by ({grouping}) "
            f"(rate({REQUEST_DURATION}_bucket{_sel(selector)}[{window}])))")
