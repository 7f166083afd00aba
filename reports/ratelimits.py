"""Rate-limits section: the limit card per scope and the per-key timeline of requests.

The card comes from ``ratelimit.json`` (written by ``secton-harness ratelimit`` into its
run folder; its model is ``secton_harness/ratelimit_model.py``). The timeline and the 429
intervals come from the ``source == "ratelimit"`` records; the Retry-After accuracy is also
measured from them: for each 429 that carried ``Retry-After``, the time until that key's
next success minus the advertised wait (positive: the server allowed requests later than
it said).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports.stats import bucket_width, outcomes, status_class
from secton_harness.ratelimit_model import CARD_FIELDS

MAX_KEYS = 16
MAX_INTERVALS = 50


def analyse_ratelimits(records: pd.DataFrame, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of the Rate-limits section."""
    cards = [card for result in results for card in _cards(result)]
    out: dict[str, Any] = {"available": bool(cards) or not records.empty, "cards": cards}
    stop = _stop(results)
    if stop:
        out["stop"] = stop
    if not cards:
        out["cards_missing"] = "no ratelimit.json in these run folders"
    if records.empty:
        out["records_missing"] = "no rate-limit records (source=ratelimit) in these runs"
        if not out["available"]:
            out["missing"] = ("no rate-limit results (ratelimit.json) and no "
                              "source=ratelimit records")
        return out
    out.update(_timeline(records))
    return out


#: ratelimit.json ``stopped_by`` values and the flag or event each names.
STOP_CAUSES = {"max_duration": "--max-duration", "max_requests": "--max-requests",
               "budget": "--budget",
               "target_down": "the target stopped answering (failures in a row)"}


def _stop(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What stopped the mapping, in ratelimit.json's own words (``stopped_by``, with the
    requests and seconds spent): the verdict names it instead of listing every bound."""
    for result in results:
        cause = result.get("stopped_by")
        if isinstance(cause, str) and cause:
            sent, spent = result.get("requests_sent"), result.get("duration_s")
            return {"stopped_by": cause[:60],
                    "requests_sent": sent if isinstance(sent, int) else None,
                    "duration_s": spent if isinstance(spent, int | float) else None}
    return None


def stop_words(stop: dict[str, Any]) -> str:
    """``stopped by --max-duration after 18.7 s and 644 requests, before it finished:
    partial figures``."""
    cause = stop["stopped_by"]
    spent = [f"{stop['duration_s']:.1f} s" if stop.get("duration_s") is not None else "",
             f"{stop['requests_sent']} requests" if stop.get("requests_sent") is not None
             else ""]
    after = " and ".join(part for part in spent if part)
    return (f"the rate-limit mapping was stopped by {STOP_CAUSES.get(cause, cause)} "
            f"(ratelimit.json stopped_by: {cause})" + (f" after {after}" if after else "")
            + ", before it finished: its figures are partial")


def _scopes(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    scopes = result.get("scopes", result)
    if isinstance(scopes, list):
        return [(str(s.get("scope", f"#{i}")), s) for i, s in enumerate(scopes)
                if isinstance(s, dict)]
    if isinstance(scopes, dict):
        return [(str(name), value) for name, value in scopes.items()
                if isinstance(value, dict) and any(f in value for f in CARD_FIELDS)]
    return []


def _cards(result: dict[str, Any]) -> list[dict[str, Any]]:
    cards = []
    for scope, data in _scopes(result):
        figures = []
        for name in CARD_FIELDS:
            if name in data:
                value = data[name]
                if value is None and name in (data.get("unverified") or []):
                    value = shown_bound(data.get(f"{name.removesuffix('_per_min')}_bound"))
                figures.append(_figure(name, value, _check_for(data, result, scope, name)))
        cards.append({"scope": scope, "org": data.get("org"), "figures": figures,
                      "passed": _scope_verdict(figures, data.get("checks")),
                      "requests_sent": data.get("requests_sent", result.get("requests_sent")),
                      "elapsed_s": next((v for v in (data.get("elapsed_s"),
                                                     result.get("elapsed_s"),
                                                     result.get("duration_s"))
                                         if isinstance(v, int | float)), None),
                      "evidence": _short(data.get("evidence")), "dir": result.get("dir")})
    return cards


def _check_for(data: dict[str, Any], result: dict[str, Any], scope: str,
               name: str) -> dict[str, Any] | None:
    """A pass/fail entry for one figure, wherever the result file put it."""
    for holder in (data.get("checks"), data.get("expected"),
                   (result.get("checks") or {}).get(scope) if isinstance(
                       result.get("checks"), dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get(name), dict):
            return holder[name]
        if isinstance(holder, list):
            for item in holder:
                if isinstance(item, dict) and name in (item.get("name"), item.get("quantity"),
                                                       item.get("field")):
                    return item
    return None


def shown_bound(bound: Any) -> str:
    """An unverified figure as its bounds, never as a number that looks measured."""
    if not isinstance(bound, dict):
        return "unverified"
    parts = [f"{word} {bound[key]}" for word, key in (("≥", "at_least"), ("≤", "at_most"))
             if bound.get(key) is not None]
    return "unverified" + (f" ({', '.join(parts)})" if parts else "")


def _figure(name: str, value: Any, check: dict[str, Any] | None) -> dict[str, Any]:
    passed = expected = tolerance = None
    if isinstance(value, dict) and name != "retry_after":
        check = check or value
        value = value.get("value", value.get("observed"))
    if check:
        passed = check.get("passed", check.get("pass", check.get("ok")))
        expected = check.get("expected")
        tolerance = check.get("tolerance")
    return {"name": name, "value": _short(value), "expected": _short(expected),
            "tolerance": _short(tolerance),
            "passed": bool(passed) if passed is not None else None}


def _scope_verdict(figures: list[dict[str, Any]], checks: Any) -> bool | None:
    """Pass only when every figure and every other check of the scope passed (a failed
    ``retry_after_max_error_s`` has no figure row but fails the scope all the same)."""
    verdicts = [f["passed"] for f in figures if f["passed"] is not None]
    if isinstance(checks, dict):
        for name, check in checks.items():
            passed = check.get("pass", check.get("passed")) if isinstance(check, dict) \
                else None
            if name not in CARD_FIELDS and isinstance(passed, bool):
                verdicts.append(passed)
    return all(verdicts) if verdicts else None


def _short(value: Any) -> Any:
    """Keep evidence readable: long lists are cut to their first items."""
    if isinstance(value, list) and len(value) > 8:
        return [*value[:8], f"… {len(value) - 8} more"]
    if isinstance(value, dict):
        return {k: _short(v) for k, v in list(value.items())[:12]}
    return value


def _timeline(records: pd.DataFrame) -> dict[str, Any]:
    frame = pd.DataFrame({"key": records["key_alias"].astype(str).replace("", "(none)"),
                          "ts": records["ts"].to_numpy(dtype=float),
                          "cls": status_class(records).to_numpy(),
                          "ok": outcomes(records).ok,
                          "retry_after_s": records["retry_after_s"].to_numpy(dtype=float)})
    frame["key"] = frame["key"].astype("category")
    frame = frame.sort_values(["key", "ts"], kind="stable", ignore_index=True)
    t0 = float(frame["ts"].min())
    span = max(float(frame["ts"].max()) - t0, 1e-9)
    width = bucket_width(span)
    bucket = (np.floor((frame["ts"] - t0) / width) * width).rename("t")
    is429 = frame["cls"] == "429"
    kind = np.where(frame["ok"], "ok", np.where(is429, "429", "other"))
    counts = pd.crosstab([frame["key"], bucket], pd.Series(kind, name="kind"))
    counts = counts.reindex(columns=["ok", "429", "other"], fill_value=0)
    keys = list(frame["key"].value_counts().index[:MAX_KEYS])
    lanes = {}
    for key in sorted(map(str, keys)):
        part = counts.loc[key]
        lanes[key] = [[float(t), int(r["ok"]), int(r["429"]), int(r["other"])]
                      for t, r in part.iterrows()]  # ≤ MAX_BUCKETS rows per key
    intervals, interval_count = _intervals(frame, is429, t0)
    per_key = (frame.assign(is429=is429).groupby("key", observed=True)
               .agg(requests=("ok", "size"), ok=("ok", "sum"), r429=("is429", "sum")))
    return {
        "requests": len(frame), "ratelimited": int(is429.sum()), "start_ts": t0,
        "duration_s": span,
        "per_key": [{"key": str(k), "requests": int(r.requests), "ok": int(r.ok),
                     "ratelimited": int(r.r429)} for k, r in per_key.iterrows()],
        "timeline": {"bucket_s": width, "span_s": span, "lanes": lanes},
        "intervals_429": intervals, "interval_count": interval_count,
        "retry_after_observed": _retry_after_accuracy(frame, is429),
    }


def _intervals(frame: pd.DataFrame, is429: pd.Series, t0: float) -> tuple[list, int]:
    """Runs of consecutive 429s per key (start = first 429, end = last 429 of the run)."""
    if not is429.any():
        return [], 0
    change = (frame["key"] != frame["key"].shift()) | (is429 != is429.shift())
    run = change.cumsum()[is429]
    part = frame.loc[is429].assign(run=run)
    agg = part.groupby("run").agg(key=("key", "first"), start=("ts", "min"), end=("ts", "max"),
                                  count=("ts", "size"))
    agg = agg.sort_values("start")
    rows = [{"key": str(r.key), "start_s": float(r.start - t0), "end_s": float(r.end - t0),
             "duration_s": float(r.end - r.start), "count": int(r.count)}
            for r in agg.head(MAX_INTERVALS).itertuples()]
    return rows, len(agg)


def _retry_after_accuracy(frame: pd.DataFrame, is429: pd.Series) -> dict[str, Any] | None:
    with_header = is429 & frame["retry_after_s"].notna()
    if not with_header.any():
        return None
    ok_ts = frame["ts"].where(frame["ok"])
    next_ok = ok_ts.groupby(frame["key"], observed=True).bfill()
    waited = (next_ok - frame["ts"])[with_header]
    error = (waited - frame["retry_after_s"][with_header]).dropna()
    if error.empty:
        return {"with_retry_after": int(with_header.sum()), "measured": 0}
    return {"with_retry_after": int(with_header.sum()), "measured": len(error),
            "mean_error_s": float(error.mean()), "max_abs_error_s": float(error.abs().max()),
            "p95_abs_error_s": float(error.abs().quantile(0.95))}
