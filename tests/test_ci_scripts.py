"""The CI entry scripts: a shell habit that failed CI once must not come back.

``.ci/run`` runs under ``set -o pipefail``. ``haproxy -v | head -1`` failed it after 1 s with
exit 141: ``head`` closed the pipe after one line while HAProxy still wrote, and the writer's
SIGPIPE became the pipeline's status. Whether it happens depends on timing, so the test both
runs the script's version step for real and refuses the pattern outright.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / ".ci"


def ci_scripts() -> list[Path]:
    return sorted(path for path in CI.iterdir() if path.is_file())


def test_no_pipeline_into_head_under_pipefail() -> None:
    offenders = []
    for script in ci_scripts():
        text = script.read_text()
        if "pipefail" not in text:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\|\s*head\b", code):
                offenders.append(f"{script.name}:{number}: {line.strip()}")
    assert not offenders, "a pipe into head can SIGPIPE its writer under pipefail: " + \
        "; ".join(offenders)


def test_scripts_parse() -> None:
    for script in ci_scripts():
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_version_step_exits_zero_and_names_every_tool() -> None:
    """The lines of .ci/run before ``make test``, run as CI runs them, twenty times."""
    text = (CI / "run").read_text()
    step = text.split("\nmake test", 1)[0]
    step = step.replace('cd "$(dirname "$0")/.."', f"cd {ROOT}")
    step = step.replace(".ci/install-deps", "true")  # the suite is running: the deps are here
    for _ in range(20):
        result = subprocess.run(["bash", "-c", step], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, (result.returncode, result.stderr)
        out = result.stdout + result.stderr
        for tool in ("prometheus, version", "promtool, version", "nginx version",
                     "HAProxy version", "Chromium"):
            assert tool in out, (tool, out)
