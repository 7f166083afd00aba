"""Dashboards: committed JSON is the generator's output; every panel is well formed; every
metric a query names is one the code defines *and* exports; provisioning and compose parse.

The proof that every query returns data is in test_dashboards_prometheus.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dashboards import panels
from dashboards.export import BOARDS, GENERATED, build_all, export, render
from secton_harness import metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
EXPECTED_UIDS = {"secton-probes", "secton-load", "secton-ratelimits"}
METRIC_RE = re.compile(r"\bsecton_[a-z0-9_]+\b")
#: Folders whose code exports metrics (where a name constant must be used to count).
EXPORTERS = ("probes", "loadtests", "secton_harness")


def query_panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions(board: dict) -> list[str]:
    exprs = [t["expr"] for p in query_panels(board) for t in p["targets"]]
    exprs += [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def exposed_names() -> set[str]:
    """Every series name the metric constants stand for, as Prometheus sees them.

    A name counts only if its constant is used by exporting code outside metrics.py's own
    definitions (``RequestMetrics.create`` inside metrics.py counts for the request metrics).
    """
    constants = {name: value for name, value in vars(metrics).items()
                 if name.isupper() and isinstance(value, str) and value.startswith("secton_")}
    sources = [p.read_text(encoding="utf-8") for folder in EXPORTERS
               for p in (ROOT / folder).rglob("*.py") if p.name != "metrics.py"]
    metrics_src = (ROOT / "secton_harness" / "metrics.py").read_text(encoding="utf-8")
    create = metrics_src[metrics_src.index("def create"):metrics_src.index("def build_info")]
    names: set[str] = set()
    for constant, value in constants.items():
        if not (any(re.search(rf"\b{constant}\b", s) for s in sources)
                or re.search(rf"\b{constant}\b", create)):
            continue
        names.add(value)
        if value.endswith(("_seconds", "_bytes")) and "DURATION" in constant:
            names |= {f"{value}_bucket", f"{value}_sum", f"{value}_count"}
    return names


def test_committed_json_equals_generator_output() -> None:
    for uid, board in build_all().items():
        path = GENERATED / f"{uid}.json"
        assert path.exists(), f"{path} missing: run `secton-harness dashboards export`"
        assert path.read_text(encoding="utf-8") == render(board), (
            f"{path} is stale: run `secton-harness dashboards export`")
    committed = {p.stem for p in GENERATED.glob("*.json")}
    assert committed == set(BOARDS), f"unexpected files in {GENERATED}: {committed}"


def test_export_command_writes_same_files_atomically(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "secton_harness", "dashboards", "export",
                             "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for path in out.iterdir():
        assert path.read_text(encoding="utf-8") == (GENERATED / path.name).read_text(
            encoding="utf-8")
        assert path.read_text(encoding="utf-8").endswith("}\n")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{u}.json" for u in BOARDS)
    assert export(out) and not list(out.glob(".*.tmp"))


def test_export_without_out_writes_to_the_current_folder(tmp_path: Path) -> None:
    """Not into the installed package (dashboards/generated) as it once did."""
    before = {p: p.stat().st_mtime_ns for p in GENERATED.glob("*.json")}
    result = subprocess.run([sys.executable, "-m", "secton_harness", "dashboards", "export"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(f"{u}.json" for u in BOARDS)
    assert {p: p.stat().st_mtime_ns for p in GENERATED.glob("*.json")} == before


def test_every_board_marks_load_runs() -> None:
    exported = exposed_names()
    for uid, board in build_all().items():
        marks = [a for a in board["annotations"]["list"] if a.get("name") == "Load runs"]
        assert len(marks) == 1, uid
        assert marks[0]["enable"] and marks[0]["datasource"]["uid"] == "${datasource}"
        assert all(name in exported for name in METRIC_RE.findall(marks[0]["expr"]))


def test_uids_titles_and_schema() -> None:
    boards = build_all()
    assert set(boards) == EXPECTED_UIDS
    assert {b["uid"] for b in boards.values()} == EXPECTED_UIDS
    assert len({b["title"] for b in boards.values()}) == len(boards)
    for board in boards.values():
        assert board["schemaVersion"] >= 39
        assert "id" not in board  # a fixed uid, never a numeric id, identifies it
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))


@pytest.mark.parametrize("uid", sorted(EXPECTED_UIDS))
def test_every_panel_has_unit_description_and_query(uid: str) -> None:
    board = build_all()[uid]
    for panel in query_panels(board):
        title = panel["title"]
        assert panel["description"].strip(), title
        assert panel["fieldConfig"]["defaults"]["unit"], title
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), title
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), title
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= panels.GRID_WIDTH, title


@pytest.mark.parametrize("uid", sorted(EXPECTED_UIDS))
def test_variables_present(uid: str) -> None:
    variables = {v["name"]: v for v in build_all()[uid]["templating"]["list"]}
    filters = {"target", "check"} if uid == "secton-probes" else {"org", "endpoint"}
    assert {"datasource", *filters} <= set(variables)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in filters:
        assert variables[name]["type"] == "query"
        assert variables[name]["query"]["query"].startswith("label_values(")
    used = " ".join(expressions(build_all()[uid]))
    for name in variables:  # a filter no panel uses would silently change nothing
        assert name == "datasource" or f"${name}" in used, f"{uid}: ${name} unused"


def test_target_variable_never_filters_request_metrics() -> None:
    """Load metrics carry no target label: `$target` must only touch probe metrics."""
    for board in build_all().values():
        for expr in expressions(board):
            if "$target" in expr:
                named = set(METRIC_RE.findall(expr))
                assert all(n.startswith("secton_probe_") for n in named), expr
            if "$org" in expr or "$endpoint" in expr:
                assert not any(n.startswith("secton_probe_") for n in METRIC_RE.findall(expr))


def test_every_metric_named_is_exported_by_the_code() -> None:
    exported = exposed_names()
    assert "secton_probe_success" in exported and "secton_requests_total" in exported
    for uid, board in build_all().items():
        for expr in expressions(board):
            for name in METRIC_RE.findall(expr):
                assert name in exported, f"{uid}: {name!r} is not exported by the code: {expr}"


def test_metric_check_catches_an_unknown_name() -> None:
    assert "secton_probe_succes" not in exposed_names()
    assert "secton_request_duration_seconds_bucket" in exposed_names()


def test_provisioning_points_at_generated_json() -> None:
    datasource = yaml.safe_load((DASHBOARDS / "provisioning/datasources/prometheus.yaml")
                                .read_text(encoding="utf-8"))
    assert datasource["apiVersion"] == 1
    assert datasource["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load((DASHBOARDS / "provisioning/dashboards/secton.yaml")
                              .read_text(encoding="utf-8"))["providers"][0]
    assert provider["type"] == "file"
    compose = yaml.safe_load((DASHBOARDS / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"prometheus", "grafana", "probe"} <= set(services)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./generated"
    assert (DASHBOARDS / "generated").is_dir()
    assert mounts["/etc/grafana/provisioning/dashboards"] == "./provisioning/dashboards"
    assert "secton-harness probe" in services["probe"]["command"]
    prom = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text(encoding="utf-8"))
    targets = [t for job in prom["scrape_configs"] for s in job["static_configs"]
               for t in s["targets"]]
    assert "probe:9464" in targets
    assert "--port 9464" in services["probe"]["command"]


def test_committed_json_is_valid_grafana_shape() -> None:
    for path in GENERATED.glob("*.json"):
        board = json.loads(path.read_text(encoding="utf-8"))
        assert board["uid"] == path.stem
        assert isinstance(board["templating"]["list"], list)
