"""The import rules of the layout, read from the code's own imports (every ``import`` and
``from`` statement, module level or inside a function), and the shared words defined once.

- the core (``secton_harness``) imports no job, no simulator, no entry layer;
- no job imports another job (``loadtests``, ``probes``, ``reports``, ``dashboards``);
- only ``loadtests`` imports locust or gevent;
- nothing imports the entry layer (``secton_cli``) but itself and the ``python -m`` shim.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import ROOT

CORE = "secton_harness"
JOBS = ("loadtests", "probes", "reports", "dashboards")
ENTRY = "secton_cli"
PACKAGES = (CORE, ENTRY, "simulator", *JOBS)
#: The one core module allowed to reach the entry layer: it is run, never imported.
SHIM = ROOT / CORE / "__main__.py"


def _imports(path: Path) -> set[str]:
    """Top-level package names of every absolute import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


IMPORTS = {path: _imports(path) for package in PACKAGES for path in _modules(package)}


def _offenders(package: str, forbidden: set[str]) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {', '.join(sorted(names & forbidden))}"
            for path, names in IMPORTS.items()
            if path.is_relative_to(ROOT / package) and path != SHIM and names & forbidden]


def test_the_rules_see_imports_inside_functions() -> None:
    """The checker itself: a lazy import in a function body counts."""
    assert "simulator" in IMPORTS[ROOT / "simulator" / "command.py"]


def test_core_imports_no_job_simulator_or_entry_layer() -> None:
    assert _offenders(CORE, {*JOBS, "simulator", ENTRY, "benchmarks", "tests"}) == []


@pytest.mark.parametrize("job", JOBS)
def test_no_job_imports_another_job_or_the_entry_layer(job: str) -> None:
    others = {other for other in JOBS if other != job}
    assert _offenders(job, {*others, ENTRY, "simulator", "benchmarks", "tests"}) == []


def test_simulator_imports_only_the_core() -> None:
    assert _offenders("simulator", {*JOBS, ENTRY, "benchmarks", "tests"}) == []


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "loadtests"])
def test_only_the_load_job_imports_locust_or_gevent(package: str) -> None:
    assert _offenders(package, {"locust", "gevent", "geventhttpclient"}) == []


def test_the_entry_layer_imports_every_command_directly() -> None:
    """No module-name strings: every job's command module is an import of the app."""
    app_imports = (ROOT / ENTRY / "app.py").read_text()
    assert "importlib" not in app_imports
    for module in ("simulator.command", "probes.command", "loadtests.command",
                   "reports.command", "dashboards.command"):
        assert f"import {module}" in app_imports


def _string_constants(path: Path) -> set[str]:
    """Every string literal of ``path`` except docstrings (examples may name a path)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings}


def _files_with(match: re.Pattern[str], literal_only: bool) -> list[str]:
    """Shipped modules with a string literal (or, else, any text) matching ``match``."""
    hits = []
    for package in PACKAGES:
        for path in _modules(package):
            texts = (_string_constants(path) if literal_only
                     else {path.read_text(encoding="utf-8")})
            if any(match.search(text) for text in texts):
                hits.append(str(path.relative_to(ROOT)))
    return hits


@pytest.mark.parametrize(("word", "pattern", "literal_only", "home"), [
    ("an endpoint path", r"^/v1/(models|chat/completions)$", True,
     ["secton_harness/endpoints.py"]),
    ("the default max requests", r"=\s*1_?000_?000\b", False, ["loadtests/scenario.py"]),
    ("an atomic replace", r"\bos\.replace\(", False, ["secton_harness/atomicfile.py"]),
])
def test_shared_word_is_defined_once(word: str, pattern: str, literal_only: bool,
                                     home: list[str]) -> None:
    found = _files_with(re.compile(pattern, re.M), literal_only)
    assert found == home, f"{word} defined outside {home}: {found}"
