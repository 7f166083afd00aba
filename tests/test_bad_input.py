"""Every row of docs/bad-input.md: the real CLI in a subprocess gets exit 2, exactly one
line on stderr naming what is wrong, and no traceback. Plus property tests: the config
loader turns any TOML document or any bytes into a model or a BadInput, nothing else.

Bad *server replies* are not bad input: they are classified failures (tests/test_faults.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.config import HarnessConfig
from secton_harness.config import load_toml_model
from secton_harness.errors import BadInput
from secton_harness.keys import load_keys
from simulator.config import SimulatorConfig

ROOT = Path(__file__).resolve().parent.parent
KEYS = str(ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml")
LOOP = "http://127.0.0.1:9"
#: Secrets that bad-input rows put where they do not belong: never in any output.
MISPLACED_KEY = "sk-misplaced-Zq9VbLm2Xy7WtR4"
PASSWORD = "hunter2pw"



def _parquet(**columns: list[Any]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


#: id -> (files to write {name: text or bytes}, argv after `secton-harness`, text the line
#: must hold)
ROWS: dict[str, tuple[dict[str, str | bytes], list[str], str]] = {
    "config not TOML": ({"h.toml": "[probes\n"}, ["probe", "--once", "--config", "h.toml",
                                                 "--target", LOOP, "--keys", KEYS], "h.toml"),
    "config missing": ({}, ["probe", "--once", "--config", "nope.toml", "--target", LOOP,
                            "--keys", KEYS], "nope.toml"),
    "config unknown field": ({"h.toml": "[probes]\nintervall = '5s'\n"},
                             ["probe", "--once", "--config", "h.toml", "--target", LOOP,
                              "--keys", KEYS], "intervall"),
    "config bad duration": ({"h.toml": "[probes]\ninterval = '5x'\n"},
                            ["probe", "--once", "--config", "h.toml", "--target", LOOP,
                             "--keys", KEYS], "interval"),
    "config bad type": ({"h.toml": "[probes]\njitter = 'lots'\n"},
                        ["probe", "--once", "--config", "h.toml", "--target", LOOP,
                         "--keys", KEYS], "jitter"),
    "keys missing": ({}, ["probe", "--once", "--target", LOOP, "--keys", "k.toml"], "k.toml"),
    "keys not TOML": ({"k.toml": "[[keys]\n"}, ["probe", "--once", "--target", LOOP,
                                                "--keys", "k.toml"], "k.toml"),
    "keys entry without key": ({"k.toml": "[[keys]]\nalias = 'a'\norg = 'o'\n"},
                               ["probe", "--once", "--target", LOOP, "--keys", "k.toml"],
                               "k.toml"),
    "keys key_env unset": ({"k.toml": "[[keys]]\nalias = 'a'\norg = 'o'\n"
                                      "key_env = 'SECTON_UNSET_FOR_TEST'\n"},
                           ["probe", "--once", "--target", LOOP, "--keys", "k.toml"],
                           "SECTON_UNSET_FOR_TEST"),
    "keys duplicate alias": ({"k.toml": "[[keys]]\nalias = 'a'\norg = 'o'\nkey = 'sk-1'\n"
                                        "[[keys]]\nalias = 'a'\norg = 'o'\nkey = 'sk-2'\n"},
                             ["probe", "--once", "--target", LOOP, "--keys", "k.toml"], "a"),
    "keys none": ({"k.toml": "\n"}, ["probe", "--once", "--target", LOOP, "--keys", "k.toml"],
                  "k.toml"),
    "keys key at top level": ({"k.toml": f"keys = '{MISPLACED_KEY}'\n"},
                              ["probe", "--once", "--target", LOOP, "--keys", "k.toml"],
                              "keys"),
    "keys key in key_env": ({"k.toml": f"[[keys]]\nalias = 'a'\norg = 'o'\n"
                                       f"key_env = '{MISPLACED_KEY}'\n"},
                            ["probe", "--once", "--target", LOOP, "--keys", "k.toml"],
                            "key_env"),
    "probe --target drops the config's keys": (
        {"h.toml": "[[targets]]\nlabel = 'x'\nurl = 'http://127.0.0.1:9'\nkeys = 'k.toml'\n"},
        ["probe", "--once", "--config", "h.toml", "--target", LOOP],
        "--target replaced the [[targets]] of h.toml"),
    "keys key with a control character": ({"k.toml": "[[keys]]\nalias = 'a'\norg = 'o'\n"
                                                     'key = "sk-aaaa\\nbbbb1234"\n'},
                                          ["probe", "--once", "--target", LOOP, "--keys",
                                           "k.toml"], "keys[0].key: holds a control"),
    "keys alias holds the key": ({"k.toml": f"[[keys]]\nalias = '{MISPLACED_KEY}'\n"
                                            f"org = 'o'\nkey = '{MISPLACED_KEY}'\n"},
                                 ["probe", "--once", "--target", LOOP, "--keys", "k.toml"],
                                 "alias"),
    "keys alias holds part of a key": ({"k.toml": f"[[keys]]\nalias = '{MISPLACED_KEY[:-4]}'"
                                                  f"\norg = 'o'\nkey = '{MISPLACED_KEY}'\n"},
                                       ["probe", "--once", "--target", LOOP, "--keys",
                                        "k.toml"], "alias"),
    "target with user:password": ({}, ["probe", "--once", "--target",
                                       f"http://user:{PASSWORD}@127.0.0.1:9", "--keys", KEYS],
                                  "user:password"),
    "target with a query string": ({}, ["probe", "--once", "--target",
                                        f"http://127.0.0.1:9/?token={PASSWORD}", "--keys",
                                        KEYS], "query string"),
    "load target with user:password": (
        {"s.toml": "duration = '2s'\n[endpoints.models]\nrate = '1/s'\n"},
        ["load", "--scenario", "s.toml", "--target", f"http://u:{PASSWORD}@127.0.0.1:9",
         "--keys", KEYS], "user:password"),
    "ratelimit target with user:password": ({}, ["ratelimit", "--target",
                                                 f"http://u:{PASSWORD}@127.0.0.1:9",
                                                 "--keys", KEYS], "user:password"),
    "target not a URL": ({}, ["probe", "--once", "--target", "notaurl", "--keys", KEYS],
                         "--target"),
    "target not http": ({}, ["probe", "--once", "--target", "ftp://x", "--keys", KEYS],
                        "--target"),
    "flag not a number": ({}, ["probe", "--once", "--port", "abc"], "--port"),
    "flag out of range": ({}, ["probe", "--port", "70000", "--target", LOOP, "--keys", KEYS],
                          "--port"),
    "duration zero": ({}, ["probe", "--duration", "0s", "--target", LOOP, "--keys", KEYS],
                      "--duration"),
    "unknown option": ({}, ["probe", "--bogus"], "--bogus"),
    "unknown command": ({}, ["bogus"], "bogus"),
    "load remote target": ({"s.toml": "duration = '2s'\n[endpoints.models]\nrate = '1/s'\n"},
                           ["load", "--scenario", "s.toml", "--target", "http://example.com",
                            "--keys", KEYS], "--allow-remote"),
    "load scenario over max-requests": (
        {"s.toml": "duration = '10s'\n[endpoints.models]\nrate = '5/s'\n"},
        ["load", "--scenario", "s.toml", "--target", LOOP, "--keys", KEYS,
         "--max-requests", "20"], "--max-requests"),
    "load bad scenario": ({"s.toml": "duration = '5x'\n[endpoints.models]\nrate = '1/s'\n"},
                          ["load", "--scenario", "s.toml", "--target", LOOP, "--keys", KEYS],
                          "duration"),
    "load duration nan": ({"s.toml": "duration = nan\n[endpoints.models]\nrate = '1/s'\n"},
                          ["load", "--scenario", "s.toml", "--target", LOOP, "--keys", KEYS],
                          "duration"),
    "load rate inf": ({"s.toml": "duration = '2s'\n[endpoints.models]\nrate = inf\n"},
                      ["load", "--scenario", "s.toml", "--target", LOOP, "--keys", KEYS],
                      "rate"),
    "load no target": ({"s.toml": "duration = '2s'\n[endpoints.models]\nrate = '1/s'\n"},
                       ["load", "--scenario", "s.toml", "--keys", KEYS], "SECTON_BASE_URL"),
    "load existing run folder": ({"s.toml": "duration = '2s'\n[endpoints.models]\n"
                                            "rate = '1/s'\n", "r/run.json": "{}"},
                                 ["load", "--scenario", "s.toml", "--target", LOOP, "--keys",
                                  KEYS, "--out", "r"], "--overwrite"),
    "load out not a folder": ({"s.toml": "duration = '2s'\n[endpoints.models]\n"
                                         "rate = '1/s'\n", "f": "x"},
                              ["load", "--scenario", "s.toml", "--target", LOOP, "--keys",
                               KEYS, "--out", "f"], "--out"),
    "load scenario org without keys": ({"s.toml": "duration = '2s'\n[keys]\norgs = "
                                                  "['org_zeta']\n[endpoints.models]\n"
                                                  "rate = '1/s'\n"},
                                       ["load", "--scenario", "s.toml", "--target", LOOP,
                                        "--keys", KEYS], "org_zeta"),
    "load threshold on an unsent endpoint": ({"s.toml": "duration = '2s'\n[endpoints.models]"
                                                        "\nrate = '1/s'\n[thresholds]\n"
                                                        "chat = ['rps > 1']\n"},
                                             ["load", "--scenario", "s.toml", "--target",
                                              LOOP, "--keys", KEYS], "thresholds.chat"),
    "load port out of range": ({"s.toml": "duration = '2s'\n[endpoints.models]\n"
                                          "rate = '1/s'\n"},
                               ["load", "--scenario", "s.toml", "--target", LOOP, "--keys",
                                KEYS, "--metrics-port", "70000"], "--metrics-port"),
    "load negative processes": ({"s.toml": "duration = '2s'\n[endpoints.models]\n"
                                           "rate = '1/s'\n"},
                                ["load", "--scenario", "s.toml", "--target", LOOP, "--keys",
                                 KEYS, "--processes", "-1"], "--processes"),
    "ratelimit no target": ({}, ["ratelimit", "--keys", KEYS], "SECTON_BASE_URL"),
    "ratelimit remote target": ({}, ["ratelimit", "--target", "http://example.com", "--keys",
                                     KEYS], "--allow-remote"),
    "ratelimit bad duration": ({}, ["ratelimit", "--target", LOOP, "--keys", KEYS,
                                    "--max-duration", "5x"], "error: --max-duration:"),
    "ratelimit bad rps": ({}, ["ratelimit", "--target", LOOP, "--max-rps", "0"], "--max-rps"),
    "ratelimit rps not finite": ({}, ["ratelimit", "--target", LOOP, "--keys", KEYS,
                                      "--max-rps", "inf"], "--max-rps"),
    "out holds a directory for run.json": ({"r/run.json/x": ""},
                                           ["probe", "--once", "--target", LOOP, "--keys",
                                            KEYS, "--out", "r"], "run.json is a directory"),
    "ratelimit out holds a directory for ratelimit.json": (
        {"r/ratelimit.json/x": ""}, ["ratelimit", "--target", LOOP, "--keys", KEYS, "--out",
                                     "r"], "ratelimit.json is a directory"),
    "ratelimit policy unknown field": ({"p.toml": "[key]\nbrust = 3\n"},
                                       ["ratelimit", "--target", LOOP, "--keys", KEYS,
                                        "--expect", "p.toml"], "brust"),
    "report no folder": ({}, ["report", "nope"], "nope"),
    "report run.json not JSON": ({"r/run.json": "{"}, ["report", "r"], "run.json"),
    "report corrupt records": ({"r/run.json": "{}", "r/records.parquet": "PAR1garbage"},
                               ["report", "r"], "records.parquet"),
    "report bad ratelimit.json": ({"r/run.json": "{}", "r/ratelimit.json": "{"},
                                  ["report", "r"], "ratelimit.json"),
    "report run.json wrong type": ({"r/run.json": '{"started_at": {"t": 1}}'},
                                   ["report", "r"], "run.json: started_at: expected"),
    "report ratelimit.json wrong type": ({"r/run.json": "{}", "r/ratelimit.json":
                                          '{"scopes": {"key": {"burst": 3, '
                                          '"elapsed_s": [1]}}}'},
                                         ["report", "r"], "scopes.key.elapsed_s: expected"),
    "report records of the wrong type": (
        {"r/run.json": "{}", "r/records.parquet": _parquet(
            ts=[1.0, 2.0], source=["load", "load"], status=["200", "oops"],
            latency_s=[0.1, 0.2])}, ["report", "r"], "records column 'status'"),
    "report bad --slo": ({"r/run.json": "{}"}, ["report", "r", "--slo", "2"], "--slo"),
    "report bad --bounds": ({"r/run.json": "{}"}, ["report", "r", "--bounds", "p95"],
                            "--bounds"),
    "report bad --knee-latency": ({"r/run.json": "{}"}, ["report", "r", "--knee-latency",
                                                         "-1"], "--knee-latency: -1"),
    "report bad --knee-errors": ({"r/run.json": "{}"}, ["report", "r", "--knee-errors", "-5"],
                                 "--knee-errors: -5"),
    "serve bad config": ({"sim.toml": "[limits]\nalgorithm = 'magic'\n"},
                         ["serve", "--config", "sim.toml", "--port", "0"], "algorithm"),
    "serve port out of range": ({}, ["serve", "--port", "70000"], "--port"),
    "dashboards push without URL": ({}, ["dashboards", "push"], "url"),
    "dashboards export out not writable": ({"f": "x"}, ["dashboards", "export", "--out",
                                                        "f/boards"], "--out f/boards"),
}


@pytest.mark.parametrize("row", list(ROWS))
def test_bad_input_row(row: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, argv, named = ROWS[row]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            (tmp_path / name).write_bytes(text)
        else:
            (tmp_path / name).write_text(text)
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith(("SECTON_", "GRAFANA_"))}
    done = subprocess.run([sys.executable, "-m", "secton_harness", *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-1500:])
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert named.lower() in lines[0].lower(), lines[0]
    for secret in (MISPLACED_KEY, PASSWORD):
        assert secret not in done.stdout + done.stderr


def test_doc_table_has_a_row_per_test() -> None:
    text = (ROOT / "docs" / "bad-input.md").read_text()
    missing = [row for row in ROWS if f"| {row} |" not in text]
    assert not missing, f"docs/bad-input.md lacks rows: {missing}"


TOML_SCALARS = st.one_of(st.text(max_size=12), st.integers(-(2**63), 2**63 - 1),
                         st.floats(allow_nan=False), st.booleans())
TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)
FIELD_NAMES = st.sampled_from(["targets", "probes", "keys", "limits", "faults", "latency",
                               "seed", "interval", "timeout", "url", "label", "alias", "key",
                               "org", "key_env", "checks", "jitter", "limit", "window_s"])
DOCS = st.dictionaries(st.one_of(FIELD_NAMES, st.text(max_size=8)), TOML_VALUES, max_size=5)


def _load(path: Path) -> None:
    for loader in (lambda: load_toml_model(path, HarnessConfig),
                   lambda: load_toml_model(path, SimulatorConfig),
                   lambda: load_keys(path)):
        try:
            loader()
        except BadInput as error:
            assert "\n" not in str(error).strip()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=DOCS)
def test_config_loader_never_raises_anything_but_bad_input(doc: dict, tmp_path_factory:
                                                           pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("prop") / "c.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    _load(path)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_config_give_bad_input_or_a_model(raw: bytes, tmp_path_factory:
                                                       pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("bytes") / "c.toml"
    path.write_bytes(raw)
    _load(path)
