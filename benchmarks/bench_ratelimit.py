"""Rate-limit mapping accuracy: every simulator algorithm x every figure -> error, and the
requests sent against the minimum. Writes the ``## Rate-limit mapping accuracy`` section of
benchmarks/RESULTS.md (only that section is replaced).

Usage: .venv/bin/python benchmarks/bench_ratelimit.py
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import add_common_args, machine, write_figures  # noqa: E402
from benchmarks.common import figure as headline  # noqa: E402
from simulator.launcher import ReferenceServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## Rate-limit mapping accuracy"
KEYS = [{"alias": "a1", "key": "sk-bench-1", "org": "org_alpha"},
        {"alias": "a2", "key": "sk-bench-2", "org": "org_alpha"},
        {"alias": "a3", "key": "sk-bench-3", "org": "org_alpha"}]
# name: algorithm, key limit, window, penalty, extends, org limit, org window
MATRIX = {
    "fixed_window 10/1s": ("fixed_window", 10, 1.0, 0.0, False, 24, 2.0),
    "fixed_window 5/3s": ("fixed_window", 5, 3.0, 0.0, False, 12, 3.0),
    "sliding_window 10/1s": ("sliding_window", 10, 1.0, 0.0, False, 24, 2.0),
    "token_bucket 20/2s": ("token_bucket", 20, 2.0, 0.0, False, 45, 3.0),
    "token_bucket 5/3s": ("token_bucket", 5, 3.0, 0.0, False, 12, 3.0),
    "leaky_bucket 10/1s": ("leaky_bucket", 10, 1.0, 0.0, False, 24, 2.0),
    "penalty 8/1s, 0.6s": ("penalty_cooldown", 8, 1.0, 0.6, False, 20, 2.0),
    "penalty extends 8/1s, 0.3s": ("penalty_cooldown", 8, 1.0, 0.3, True, 20, 2.0),
}
BUCKETS = {"token_bucket", "leaky_bucket"}
QUICK = ("fixed_window 10/1s", "sliding_window 10/1s", "token_bucket 20/2s",
         "leaky_bucket 10/1s", "penalty 8/1s, 0.6s")
NOTE = (
    'Remaining gaps, explained: (1) token_bucket 5/3s key cooldown/full recovery read ≈ '
    '+0.29/+0.33 s against a truth taken as the centre of (0, 1/rate] = 0.3 s; the real '
    'wait after the first 429 depends on the token fraction left, which the burst at '
    '`--max-rps` leaves near 0 here, so the true cooldown is close to the full 0.6 s '
    "interval measured (the table's truth, not the measurement, is the approximation). (2) "
    'leaky_bucket org `120 % ✗`: a steady 120 % run of 21 requests over three keys was '
    'absorbed by the queue without a 429; the figure is unchanged and only the confidence '
    'is lowered a step. (3) Windows and penalties are not verified by steady runs: after '
    'their two bursts the cost bound leaves room for less than the ≈ 1.1 bursts a '
    'meaningful run needs.'
)


def truth(algorithm: str, limit: int, window: float, penalty: float,
          obs: dict) -> dict[str, float]:
    rate = limit / window
    first_429 = obs["first_429_s"]
    if algorithm in BUCKETS:
        cooldown, full = 0.5 / rate, window - 0.5 / rate  # centre of (0, 1/rate]
    elif algorithm == "penalty_cooldown":
        cooldown = full = penalty
    else:
        cooldown = window - first_429
        full = cooldown + (obs["last_allowed_s"] if algorithm == "sliding_window" else 0.0)
    return {"burst": limit, "sustained_per_min": 60 * rate, "cooldown_s": cooldown,
            "full_recovery_s": full}


def verify_cell(verify: dict) -> str:
    """The steady-run check of the sustained figure, in a few words: each run's factor
    with ✓ when it saw what it must (90 %: no 429, 115 %: one), then the verdict."""
    parts = [f"{run['factor']:.0%} {'✓' if run['refused'] == (run['factor'] > 1) else '✗'}"
             for run in verify.get("runs", [])]
    verdict = "verified" if verify.get("verified") else (
        f"unverified ({verify['unverified']})" if verify.get("unverified") else "-")
    return ", ".join([*parts, verdict])


def cost_ratio(cost: dict) -> float:
    """Requests sent beyond the recovery probes per request of the minimum (each scope's
    burst + its first 429): the mapper's cost bound is ``sent <= 3 x bursts + probes``,
    i.e. this ratio <= 3. Probes are the polls that time cooldown/recovery; their number
    is set by the times measured, not by the mapper's thrift."""
    return (cost["requests_sent"] - cost["recovery_probes"]) / max(1, cost["minimum_bursts"])


def run_case(name: str, spec: tuple, workdir: Path, costs: dict[str, list[float]]) -> list[str]:
    algorithm, limit, window, penalty, extends, org_limit, org_window = spec
    config = {"limits": {"algorithm": algorithm,
                         "key": {"limit": limit, "window_s": window, "penalty_s": penalty,
                                 "penalty_extends": extends},
                         "org": {"limit": org_limit, "window_s": org_window,
                                 "penalty_s": penalty, "penalty_extends": extends}},
              "latency": {"base_ms": 0, "per_token_ms": 0, "jitter_ms": 0}, "keys": KEYS}
    cfg = workdir / f"{len(list(workdir.iterdir()))}.toml"
    cfg.write_bytes(tomli_w.dumps(config).encode())
    keys = workdir / "keys.toml"
    keys.write_bytes(tomli_w.dumps({"keys": KEYS}).encode())
    out = workdir / f"out-{cfg.stem}"
    with ReferenceServer(cfg) as server:
        subprocess.run([sys.executable, "-m", "secton_harness", "ratelimit", "--target",
                        server.url, "--keys", str(keys), "--out", str(out), "--max-rps",
                        "200"], check=False, capture_output=True, timeout=300)
    result = json.loads((out / "ratelimit.json").read_text())
    rows = []
    for scope, (lim, win) in (("key", (limit, window)), ("org", (org_limit, org_window))):
        got = result["scopes"].get(scope)
        if got is None:
            continue
        want = truth(algorithm, lim, win, penalty, got["observations"]["burst_a"])
        cells = []
        for figure in ("burst", "sustained_per_min", "cooldown_s", "full_recovery_s"):
            if got[figure] is None:
                cells.append("unverified" if figure in got.get("unverified", []) else "-")
                continue
            error = got[figure] - want[figure]
            cells.append(f"{error:+d}" if figure == "burst" else
                         f"{100 * error / want[figure]:+.1f} %" if figure == "sustained_per_min"
                         else f"{error:+.3f} s")
        right = got["algorithm"] == algorithm or (
            algorithm in BUCKETS and got["algorithm"] in BUCKETS)
        cells.append(f"{got['algorithm']} {'✓' if right else '✗'}")
        cells.append(verify_cell(got["observations"].get("verify") or {}))
        rows.append(f"| {name} | {scope} | " + " | ".join(cells) + " |")
    cost = result["cost"]
    costs.setdefault(algorithm, []).append(cost_ratio(cost))
    rows.append(f"| {name} | cost | sent {cost['requests_sent']}, bursts+429 "
                f"{cost['minimum_bursts']}, probes {cost['recovery_probes']}, verification "
                f"{cost['verification_requests']}, budget {cost['budget']} "
                f"{'✓' if cost['within_budget'] else '✗'}; "
                f"(sent - probes) / minimum **{cost_ratio(cost):.2f}** | | | | "
                f"{result['duration_s']} s | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    args = parser.parse_args()
    matrix = {k: v for k, v in MATRIX.items() if k in QUICK} if args.quick else MATRIX
    costs: dict[str, list[float]] = {}
    lines = [HEADING, "",
             "Errors of `secton-harness ratelimit` against the reference server's configured "
             "limits (loopback, `--max-rps 200`, no injected latency). Targets: burst ±1, "
             "sustained ±10 %, times ±max(10 %, 0.25 s). Bucket cooldown truth is the centre "
             "of (0, 1/rate]; window cooldown truth is window - time of the first 429. "
             "Org limits are measured over 3 keys of one org whose own limits sum only a "
             "little above the org's (the hard case: the keys' own 429s must be set aside). "
             "`sustained check`: the steady runs that verify the inferred sustained rate "
             "(90 % must see no 429, 120 % must see one; skipped when they would break the "
             "cost bound, which is the case for windows and penalties with small bursts). "
             "Cost: `(sent - probes) / minimum` where minimum = each scope's burst + its "
             "first 429 and probes = the polls that time cooldown and recovery; the "
             "mapper's bound `sent <= 3 x bursts + probes` is this ratio <= 3. One run "
             "per config (the request count is set by the limits, not by chance); the "
             "summary shows the worst config of each algorithm. "
             f"Produced by `benchmarks/bench_ratelimit.py`{' --quick' if args.quick else ''}"
             f" on {machine()}.", "",
             NOTE, "",
             "| config | scope | burst | sustained | cooldown | full recovery | algorithm "
             "| sustained check |",
             "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in matrix.items():
            lines += run_case(name, spec, Path(tmp), costs)
            print(lines[-1], flush=True)
    section = "\n".join(lines) + "\n"
    results = args.results
    text = results.read_text() if results.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else (
        text.rstrip("\n") + "\n\n" + section)
    results.write_text(text)
    write_figures(args.figures, [
        headline(f"rate-limit mapping, {algorithm}: (sent - probes) / minimum", max(values),
               "<= 3", values, note="worst of its configs")
        for algorithm, values in costs.items()])


if __name__ == "__main__":
    main()
