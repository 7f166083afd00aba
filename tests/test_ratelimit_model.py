"""``ratelimit.json``'s vocabulary lives in one module (secton_harness/ratelimit_model.py):
the file name, the figure lists and the algorithm names; the mapper, the probe exporter and
the report use it; and the model rejects a result of the wrong shape."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest
from conftest import ROOT

from secton_harness.ratelimit_model import ALGORITHMS, parse_result

#: the reference server's config has its own algorithm vocabulary ("none"): not the result's
READERS_AND_WRITERS = ("secton_harness", "secton_cli", "loadtests", "probes", "reports",
                       "dashboards")
HOME = "secton_harness/ratelimit_model.py"


def _sources() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
            for package in READERS_AND_WRITERS for path in sorted((ROOT / package).rglob("*.py"))}


@pytest.mark.parametrize(("word", "pattern"), [
    ("the file name", r"""=\s*["']ratelimit\.json["']"""),
    ("the algorithm list", r"""["']fixed_window["'],\s*["']sliding_window["']"""),
    ("the numeric figures",
     r"""["']burst["'](:\s*["'][^"']*["'])?,\s*["']sustained_per_min["']"""),
])
def test_defined_once(word: str, pattern: str) -> None:
    found = [path for path, text in _sources().items() if re.search(pattern, text)]
    assert found == [HOME], f"{word} defined outside {HOME}: {found}"


def test_algorithm_names_every_module_uses_are_the_models() -> None:
    used = set()
    for text in _sources().values():
        used |= set(re.findall(r"""algorithm\s*=\s*["'](\w+)["']""", text))
    assert used and used <= set(ALGORITHMS), used - set(ALGORITHMS)


def test_the_model_rejects_a_wrong_shape(tmp_path: Path) -> None:
    good = {"target": "http://127.0.0.1:1", "requests_sent": 3, "scopes": {"key": {
        "burst": 10, "sustained_per_min": None, "algorithm": "sliding_window_counter",
        "sustained_bound": {"at_most": 540.0, "why": "not verified: budget"},
        "unverified": ["sustained_per_min"], "confidence": "medium"}}}
    assert parse_result(good).scopes["key"].sustained_bound.at_most == 540.0
    for bad in ({**good, "scopes": {"key": {"algorithm": "magic"}}},
                {**good, "scopes": {"key": {"confidence": "sure"}}},
                {**good, "scopes": {"team": {}}}):
        with pytest.raises(pydantic.ValidationError):
            parse_result(bad)


def test_an_unreachable_org_invents_no_figures() -> None:
    """The keys' own limits refused first: no burst, no rate, ``reachable: false``."""
    from loadtests.ratelimit.infer import infer_scope

    obs = {"burst_a": {"sent": 32, "allowed": 30, "refused": True, "key_refused": True},
           "unreachable": "the keys' own limits refused before the org's"}
    scope = infer_scope(obs)  # type: ignore[arg-type]
    assert scope["reachable"] is False and scope["burst"] is None
    assert scope["sustained_per_min"] is None and scope["algorithm"] == "unknown"
    assert scope["confidence"] == "low" and "burst" in scope["unverified"]
    assert "refused before" in scope["evidence"]["why"]
    parse_result({"target": "t", "requests_sent": 32, "scopes": {"org": scope}})
