"""``secton-harness demo``: a guided tour against the embedded reference server.

The demo starts everything it needs (reference servers on free loopback ports), runs each
job the way a user would — every later step through the real ``secton-harness`` CLI in a
child process, so the demo exercises exactly what users run and never imports a job — and
stops everything it started, even on Ctrl-C. Step one, the smoke check, runs in-process
with the shared client and contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from secton_harness.client import SectonClient
from secton_harness.contract import default_contract
from secton_harness.errors import BadInput
from secton_harness.keys import KeyPool, load_keys
from secton_harness.refserver import ReferenceServer

ROOT = Path(__file__).resolve().parent.parent
DEMO_KEYS = ROOT / "examples" / "demo-keys.toml"


@dataclass(frozen=True)
class SmokeResult:
    check: str
    passed: bool
    status: int
    latency_s: float
    detail: str


def smoke_check(url: str, keys: KeyPool) -> list[SmokeResult]:
    """Both endpoints and auth, once each, validated against the contract."""
    contract = default_contract()
    first = keys.keys[0]
    other_org = next((k for k in keys if k.org != first.org), None)
    results: list[SmokeResult] = []

    def add(check: str, response, problems: list[str]) -> None:  # type: ignore[no-untyped-def]
        results.append(SmokeResult(check, not problems, response.status, response.latency_s,
                                   "; ".join(problems) or "ok"))

    with SectonClient(url, timeout_s=10.0) as client:
        response = client.list_models(first.secret, category="chat", sort="name")
        problems = [str(v) for v in contract.check_response(
            "models", response, params={"category": "chat", "sort": "name"},
            expected_status=200)]
        add("models_list", response, problems)

        messages = [{"role": "user", "content": "Tell me a joke"}]
        payload = {"model": "copilot-zero", "messages": messages, "temperature": 0.8}
        response = client.chat(first.secret, "copilot-zero", messages, temperature=0.8)
        problems = [str(v) for v in contract.check_response(
            "chat", response, request_payload=payload, expected_org=first.org,
            expected_status=200)]
        add("chat_completion", response, problems)

        if other_org is not None:
            response = client.chat(other_org.secret, "copilot-zero", messages)
            body = response.body if isinstance(response.body, dict) else {}
            got = body.get("organization_id")
            problems = [] if got == other_org.org else [
                f"organization_id ({got!r}) == {other_org.org!r}"]
            add("org_isolation", response, problems)

        for check, authorization, key in (
            ("auth_missing", None, None),
            ("auth_invalid", None, "sk-demo-not-a-key-0000"),
            ("auth_malformed", "Bearer ", None),
            ("auth_wrong_scheme", f"Basic {first.alias}", None),
        ):
            response = client.request("GET", "/v1/models", key=key, authorization=authorization)
            problems = [str(v) for v in contract.check_response(
                "models", response, expected_status=401)]
            add(check, response, problems)
    return results


def _print_smoke(console: Console, url: str, results: list[SmokeResult]) -> None:
    table = Table(title=f"Smoke check of {url}", title_justify="left")
    for column in ("check", "result", "status", "latency", "detail"):
        table.add_column(column)
    for result in results:
        verdict = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
        table.add_row(result.check, verdict, str(result.status),
                      f"{result.latency_s * 1000:.1f} ms", result.detail)
    console.print(table)


def run_cli(console: Console, title: str, args: list[str], timeout_s: float) -> int:
    """Run one ``secton-harness`` command as a child process, streaming its output."""
    console.rule(f"[bold]{title}[/bold]")
    console.print(f"$ secton-harness {' '.join(args)}", style="dim")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        completed = subprocess.run([sys.executable, "-m", "secton_harness", *args], env=env,
                                   timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        console.print(f"[red]{title}: did not finish within {timeout_s:.0f}s[/red]")
        return 1
    return completed.returncode


#: Later tour steps: (title, builder of CLI args from (server url, out dir)); each must exist.
TourStep = tuple[str, Callable[[str, Path], list[str]], float]
TOUR: list[TourStep] = []


def run_demo(out: Path | None) -> int:
    """Run the tour; 0 when every step passed."""
    console = Console()
    if not DEMO_KEYS.exists():
        raise BadInput(f"{DEMO_KEYS}: demo keys file missing; run the demo from a clone")
    keys = load_keys(DEMO_KEYS)
    out = out or ROOT / "runs" / f"demo-{time.strftime('%Y%m%dT%H%M%S')}"
    failures = 0
    with ReferenceServer() as server:
        console.print(f"reference server: [bold]{server.url}[/bold] "
                      f"(keys: {', '.join(str(k) for k in keys)})")
        results = smoke_check(server.url, keys)
        _print_smoke(console, server.url, results)
        failures += sum(not r.passed for r in results)
        for title, build_args, timeout_s in TOUR:
            code = run_cli(console, title, build_args(server.url, out), timeout_s)
            if code != 0:
                console.print(f"[red]{title}: exit code {code}[/red]")
                failures += 1
    verdict = "[green]all checks passed[/green]" if not failures else \
        f"[red]{failures} check(s) failed[/red]"
    console.print(f"demo finished: {verdict}")
    return 0 if not failures else 1
