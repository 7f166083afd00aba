"""``report`` on run folders whose JSON files hold anything at all: a report or one
``BadInput`` line, never a traceback. (A nested ``started_at``, a list as ``target`` or an
object as a scope's ``elapsed_s`` once ended in a traceback; so can ``config.scenario``,
``checks`` and ``expect``.)"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.build import build_report
from secton_harness.errors import BadInput

_NAMES = ["value", "observed", "passed", "expected", "tolerance", "scope", "name", "org",
          "burst", "cooldown_s", "retry_after", "algorithm", "checks", "requests_sent",
          "elapsed_s", "evidence", "quantity", "ok", "scopes", "key", "expect", "pass",
          "line", "check", "detail", "scenario", "shape", "duration", "endpoints",
          "thresholds", "step", "steps", "rate"]
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_NAMES), inner, max_size=3)),
    max_leaves=12)
_RUN_FIELDS = ["command", "target", "outcome", "started_at", "ended_at", "thresholds",
               "summary", "argv", "config", "stopped_by", "records", "host", "checks",
               "scenario"]
_RATELIMIT_FIELDS = ["scopes", "checks", "requests_sent", "elapsed_s", "target", "key",
                     "org_alpha", "burst", "evidence", "expect", "stopped_by"]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(_RUN_FIELDS), _VALUES, max_size=6),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(_RATELIMIT_FIELDS), _VALUES,
                                            max_size=5)))
def test_any_json_values_give_a_report_or_one_line(run: dict[str, Any],
                                                   ratelimit: dict[str, Any] | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "run.json").write_text(json.dumps(run))
        if ratelimit is not None:
            (folder / "ratelimit.json").write_text(json.dumps(ratelimit))
        try:
            result = build_report([folder], out=folder / "out", slo=0.999, baseline=None,
                                  bounds=None)
        except BadInput as error:
            assert "\n" not in str(error) and str(folder) in str(error)
        else:
            assert result.html.exists()
