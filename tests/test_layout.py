"""The import rules of the layout, read from the code's own imports (every ``import`` and
``from`` statement, module level or inside a function), and the shared words defined once.

- the core (``secton_harness``) imports no job, no simulator, no entry layer;
- no job imports another job (``loadtests``, ``probes``, ``reports``, ``dashboards``);
- only ``loadtests`` imports locust or gevent;
- nothing imports the entry layer (``secton_cli``) but itself and the ``python -m`` shim.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
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
    ("the run file's name", r"^run\.json$", True, ["secton_harness/runfolder.py"]),
    ("the records file's name", r"^records\.parquet$", True, ["secton_harness/records.py"]),
    ("the mapper's result file name", r"^ratelimit\.json$", True,
     ["secton_harness/ratelimit_model.py"]),
    # one request-to-record function: only it reads an answer's failure and rate-limit
    # headers, and only it says what a success is (docs/architecture.md)
    ("the reading of an answer", r"(?<!def )\b(parse_ratelimit|failure)\((?!s\))", False,
     ["secton_harness/answers.py", "secton_harness/ratelimit_headers.py"]),
    ("the definition of success", r"200\s*<=\s*[\w.]+\s*<\s*300\s+and\s+not\b", False,
     ["secton_harness/answers.py"]),
    ("a load run file's name",
     r"^(progress\.json|locust-summary\.json|workers\.json|pushgateway\.json|stop-requested"
     r"|schedule-.*)$", True, ["loadtests/run_files.py"]),
])
def test_shared_word_is_defined_once(word: str, pattern: str, literal_only: bool,
                                     home: list[str]) -> None:
    found = _files_with(re.compile(pattern, re.M), literal_only)
    assert found == home, f"{word} defined outside {home}: {found}"



def _listed_strings(source: str, dict_keys: bool = True) -> list[set[str]]:
    """The string elements of every tuple, list and set literal and (``dict_keys``) the
    string keys of every dict literal in ``source`` (``Literal["a", "b"]`` holds a tuple
    too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items: list[ast.expr | None] = list(node.elts)
        elif isinstance(node, ast.Dict) and dict_keys:
            items = list(node.keys)
        else:
            continue
        found.append({item.value for item in items
                      if isinstance(item, ast.Constant) and isinstance(item.value, str)})
    return found


def _lists(source: str, names: set[str], dict_keys: bool = True) -> bool:
    """Whether ``source`` writes two or more of ``names`` in one literal collection."""
    return any(len(listed & names) >= 2 for listed in _listed_strings(source, dict_keys))


def test_the_list_checker_sees_tuples_literals_and_dict_keys() -> None:
    names = {"models", "chat", "token_bucket", "fixed_window"}
    for source in ('X = ("models", "chat")', 'A = Literal["fixed_window", "token_bucket"]',
                   'H = {"models": 1, "chat": 2}', 'f(["chat", "models"])'):
        assert _lists(source, names), source
    for source in ('X = ("models", "other")', 'H = {"chat": 1}', 'Y = ["models"]'):
        assert not _lists(source, names), source
    assert not _lists('H = {"models": 1, "chat": 2}', names, dict_keys=False)


def _vocabularies() -> list[tuple[str, set[str], str, bool]]:
    from secton_harness.endpoints import ENDPOINTS
    from secton_harness.error_classes import ERROR_CLASSES
    from secton_harness.ratelimit_model import CARD_FIELDS, CONFIDENCE, LIMITER_ALGORITHMS

    return [
        ("the endpoint list", {e.name for e in ENDPOINTS} | {e.path for e in ENDPOINTS},
         "secton_harness/endpoints.py", True),
        ("the limiter algorithm names", set(LIMITER_ALGORITHMS),
         "secton_harness/ratelimit_model.py", True),
        ("the error classes", set(ERROR_CLASSES), "secton_harness/error_classes.py", True),
        # a dict with figure keys is a scope being built (the mapper's infer), not a list
        ("the ratelimit.json figures", set(CARD_FIELDS) | set(CONFIDENCE),
         "secton_harness/ratelimit_model.py", False),
    ]


@pytest.mark.parametrize(("word", "names", "home", "dict_keys"), _vocabularies(),
                         ids=lambda value: value.replace(" ", "_") if isinstance(
                             value, str) and " " in value else "")
def test_vocabulary_is_listed_in_one_module(word: str, names: set[str], home: str,
                                            dict_keys: bool) -> None:
    """A list of endpoints, algorithms, error classes or ratelimit.json figures is written
    in its home only; everything else iterates over it (or names one member)."""
    found = [str(path.relative_to(ROOT)) for path in IMPORTS
             if _lists(path.read_text(encoding="utf-8"), names, dict_keys)]
    assert [path for path in found if path != home] == [], f"{word} copied outside {home}"


def test_every_endpoint_has_a_user_handler_route_and_schema() -> None:
    """An endpoint row is all the load job, the reference server and the contract need to
    pick a new endpoint up (docs/architecture.md, "How to add an endpoint"). In a child
    process: importing the load users monkey-patches with gevent."""
    code = """
import json
from loadtests.users import USER_CLASSES
from secton_harness.contract import SCHEMA_FILES
from secton_harness.endpoints import BY_NAME
from simulator.app import ROUTES
from simulator.handlers import API_HANDLERS
print(json.dumps({
    "endpoints": sorted(BY_NAME), "users": sorted(USER_CLASSES),
    "handlers": sorted(API_HANDLERS),
    "user_names": [USER_CLASSES[n].endpoint_name == n for n in USER_CLASSES],
    "routed": [ROUTES[e.path].handler is API_HANDLERS[n] for n, e in BY_NAME.items()],
    "schemas": [SCHEMA_FILES[n] for n in BY_NAME]}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["endpoints"] == found["users"] == found["handlers"]
    assert all(found["user_names"]) and all(found["routed"])
    for schema in found["schemas"]:
        assert (ROOT / CORE / "schemas" / schema).is_file()
