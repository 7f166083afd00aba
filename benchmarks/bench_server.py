"""Throughput of the reference server beside a bare Starlette hello-world.

Both run under uvicorn with the same settings (uvloop + httptools when installed, one
worker, access log off) pinned to core 0; the load generator is pinned to core 1: wrk
when installed, else a headless Locust FastHttpUser run. The reference server serves
``GET /v1/models`` with a valid key, limits high (the limiter still runs) and latency 0.
Median of N runs each; prints a markdown row and the ratio, and replaces the section
``## Reference server throughput`` in benchmarks/RESULTS.md.

Headroom figure ("the target is never the bottleneck"): the reference server's
maximum (wrk, above) divided by what ONE Locust FastHttpUser process (``constant(0)``
wait, no records, pinned to core 1) reaches against the same server (pinned to core 0).
>= 2.0 means a single generator process uses at most half of what one server core can
serve, so a one-process load test measures the harness, never the reference server.

    .venv/bin/python benchmarks/bench_server.py [--runs 3] [--duration 10] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import add_common_args, figure, machine, write_figures  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Reference server throughput"
KEY = "sk-bench-demo-1"

SIM_CONFIG = f"""
[limits]
algorithm = "fixed_window"
[limits.key]
limit = 1000000000
[limits.org]
limit = 1000000000
[latency]
base_ms = 0
per_token_ms = 0
jitter_ms = 0
[[keys]]
alias = "bench"
key = "{KEY}"
org = "org_bench"
"""

HELLO = textwrap.dedent("""
    import importlib.util, socket, sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request):
        return JSONResponse({"hello": "world"})

    app = Starlette(routes=[Route("/", hello)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    config = uvicorn.Config(
        app, access_log=False, log_level="warning", workers=1, server_header=False,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11")

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            print(f"serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)

    Server(config).run(sockets=[sock])
""")


def pinned(core: int) -> list[str]:
    """``taskset -c core`` when available and the core exists."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > core:
        return ["taskset", "-c", str(core)]
    return []


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(pinned(0) + cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(20)
    if not line or not line[0].startswith("serving on"):
        proc.kill()
        raise SystemExit(f"server did not start: {cmd}")
    return proc, line[0].split()[-1]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def load_wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> float:
    cmd = [*pinned(1), "wrk", "-t1", f"-c{connections}", f"-d{duration}s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if match is None or non2xx is not None:
        raise SystemExit(f"wrk run failed or saw errors:\n{out}")
    return float(match.group(1))


def load_locust(url: str, headers: dict[str, str], duration: int, users: int) -> float:
    base, _, path = url.partition("://")[2].partition("/")
    locustfile = textwrap.dedent(f"""
        from locust import task, constant
        from locust.contrib.fasthttp import FastHttpUser

        class U(FastHttpUser):
            wait_time = constant(0)
            @task
            def get(self):
                self.client.get("/{path}", headers={headers!r})
    """)
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "locustfile.py"
        file.write_text(locustfile)
        csv = Path(folder) / "out"
        subprocess.run([*pinned(1), sys.executable, "-m", "locust", "-f", str(file),
                        "--headless", "-u", str(users), "-r", str(users), "-t",
                        f"{duration}s", "-H", f"http://{base}", "--csv", str(csv),
                        "--only-summary"], capture_output=True, text=True, check=False)
        rows = (Path(f"{csv}_stats.csv")).read_text().splitlines()
        total = next(r for r in rows if ",Aggregated," in r).split(",")
        return float(total[9])  # Requests/s column


def measure(cmd: list[str], path: str, headers: dict[str, str], args: argparse.Namespace,
            tool: str) -> float:
    return statistics.median(measure_runs(cmd, path, headers, args, tool))


def measure_runs(cmd: list[str], path: str, headers: dict[str, str],
                 args: argparse.Namespace, tool: str) -> list[float]:
    rates = []
    for _ in range(args.runs):
        proc, url = start(cmd)
        try:
            time.sleep(0.3)
            if tool == "wrk":
                rates.append(load_wrk(url + path, headers, args.duration, args.connections))
            else:
                rates.append(load_locust(url + path, headers, args.duration, args.connections))
        finally:
            stop(proc)
    return rates


def write_section(text: str, results: Path = RESULTS) -> None:
    """Replace only our section of RESULTS.md (atomically)."""
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else \
        old.rstrip("\n") + "\n\n" + text
    tmp = results.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--duration", type=int, default=None,
                        help="seconds per run; default 10 (quick: 3)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--locust-users", type=int, default=20,
                        help="users of the one-process Locust run (headroom figure)")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.duration = args.duration or (3 if args.quick else 10)
    tool = "wrk" if shutil.which("wrk") else "locust"
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "bench.toml"
        config.write_text(SIM_CONFIG)
        sim_cmd = [sys.executable, "-m", "simulator", "--config", str(config), "--port", "0"]
        auth = {"Authorization": f"Bearer {KEY}"}
        sim_runs = measure_runs(sim_cmd, "/v1/models", auth, args, tool)
        bare = measure([sys.executable, "-c", HELLO], "/", {}, args, tool)
        one_args = argparse.Namespace(**{**vars(args), "connections": args.locust_users})
        one_runs = measure_runs(sim_cmd, "/v1/models", auth, one_args, "locust")
    sim, one = statistics.median(sim_runs), statistics.median(one_runs)
    headroom = sim / one if one else None
    ratio = sim / bare
    row = (f"| {time.strftime('%Y-%m-%d')} | {tool}, {args.connections} conns, "
           f"{args.duration}s x {args.runs} | {sim:,.0f} | {bare:,.0f} | {ratio:.2f} |")
    print("| date | load | reference server req/s | bare Starlette req/s | ratio |")
    print("|---|---|---|---|---|")
    print(row)
    print(f"ratio reference/bare = {ratio:.2f}")
    verdict = "met" if headroom and headroom >= 2.0 else "NOT met"
    listed = ", ".join(f"{v:.0f}" for v in one_runs)
    headroom_text = textwrap.dedent(f"""\

        Headroom: the reference server's maximum ({tool}, above) against what ONE Locust
        FastHttpUser process ({args.locust_users} users, `constant(0)`, no records) reaches
        against it, each on its own core, {args.duration}s x {args.runs}:

        | reference server max req/s | one Locust process req/s (runs) | ratio |
        |---|---|---|
        | {sim:,.0f} | {one:,.0f} ({listed}) | **{headroom or 0:.2f}** |

        Target >= 2.0 (the target is never the bottleneck of a one-process load): {verdict}.
        """)
    write_section(textwrap.dedent(f"""\
        {SECTION}

        `benchmarks/bench_server.py`: `GET /v1/models` with a valid key (limiter on, limits
        high, latency 0) vs a bare Starlette hello-world, both uvicorn + uvloop + httptools,
        one worker, access log off, server pinned to core 0, {tool} pinned to core 1;
        median of {args.runs} runs. Machine: {machine()}. The reference server is plain
        ASGI (no framework) on uvicorn's httptools protocol with one socket write per
        response (`simulator/protocol.py`); the hello-world is stock Starlette + uvicorn.

        | date | load | reference server req/s | bare Starlette req/s | ratio |
        |---|---|---|---|---|
        {row}
        """) + headroom_text, args.results)
    write_figures(args.figures, [figure(
        "reference server max / one Locust FastHttpUser process", headroom, ">= 2.0",
        [s / o for s, o in zip(sim_runs, one_runs, strict=True) if o],
        note=f"{tool} vs Locust, one core each")])


if __name__ == "__main__":
    main()
