"""What a person sees: the ``--once`` table, and state changes in continuous mode."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from .runner import CheckResult

_STYLE = {"success": "green", "warning": "cyan", "degraded": "yellow", "failure": "bold red",
          "skipped": "dim"}
_SHOWN = {"success": "PASS", "warning": "PASS (warning)", "degraded": "PASS (degraded)",
          "failure": "FAIL", "skipped": "SKIP"}


def results_table(results: list[CheckResult], title: str = "secton probes") -> Table:
    """One row per check run: check, target, result, latency, status, reason/detail."""
    table = Table(title=title, title_justify="left")
    for name, justify in (("check", "left"), ("target", "left"), ("result", "left"),
                          ("latency", "right"), ("status", "right"), ("reason / detail", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in results:
        style = _STYLE[r.result]
        latency = "" if r.skipped else f"{r.duration_s * 1000:.0f} ms"
        status = str(r.status) if r.status else ("" if r.skipped else "-")
        why = f"{r.reason}: {r.detail}" if r.reason else r.detail
        table.add_row(r.check, r.target, f"[{style}]{_SHOWN[r.result]}[/]", latency, status,
                      why)
    return table


def summary_line(results: list[CheckResult]) -> str:
    counts = Counter(r.result for r in results)
    failed = counts["failure"]
    verdict = "all checks passed" if not failed else f"{failed} check(s) FAILED"
    parts = [f"{counts[k]} {k}" for k in ("success", "degraded", "failure", "skipped")
             if counts[k]]
    return f"{verdict} ({', '.join(parts)})"


@dataclass
class StateLog:
    """Continuous mode: print a line when a check changes state (first run, fail, recover),
    and keep run counts for the final summary."""

    console: Console
    last: dict[tuple[str, str], str] = field(default_factory=dict)
    runs: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def __call__(self, result: CheckResult) -> None:
        key = (result.target, result.check)
        state = "failure" if not result.success else "success"
        self.runs[(result.target, result.check, result.result)] += 1
        if self.last.get(key) != state:
            self.last[key] = state
            style = _STYLE[result.result]
            why = f" {result.reason}: {result.detail}" if result.reason else ""
            self.console.log(f"{result.target}/{result.check}: [{style}]"
                             f"{_SHOWN[result.result]}[/] ({result.duration_s * 1000:.0f} ms)"
                             f"{why}", highlight=False)

    def failures(self) -> int:
        return sum(n for (_t, _c, res), n in self.runs.items() if res == "failure")

    def table(self) -> Table:
        table = Table(title="probe runs", title_justify="left")
        for name in ("target", "check", "runs", "failures", "warnings", "degraded", "last"):
            table.add_column(name)
        for (target, check), last in sorted(self.last.items()):
            counts = {res: self.runs[(target, check, res)]
                      for res in ("success", "warning", "degraded", "failure")}
            table.add_row(target, check, str(sum(counts.values())), str(counts["failure"]),
                          str(counts["warning"]), str(counts["degraded"]),
                          "FAIL" if last == "failure" else "PASS")
        return table
