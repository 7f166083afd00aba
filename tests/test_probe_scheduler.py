"""The continuous scheduler survives what raises inside the harness: the loop goes on and
the failure is reported (a line, the check marked failing), never a silently dead check
whose /metrics keep their last values."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from probes.config import CHECK_NAMES, HarnessConfig
from probes.exporter import ProbeMetrics
from probes.runner import CheckResult
from probes.scheduler import ProbeScheduler
from probes.service import ProbeRun, probe_targets
from secton_harness.contract import default_contract
from secton_harness.records import PARTS_DIR, RecordSink, read_records

DEMO_KEYS = (Path(__file__).resolve().parent.parent / "secton_cli" / "demo_inputs"
             / "demo-keys.toml")
CHECK = "auth_missing"  # cheap: a 401 without a key


def test_a_listener_that_raises_marks_the_check_failing_and_the_loop_goes_on(
        default_server: Any, tmp_path: Path) -> None:
    """The record sink's writes fail (its parts folder is a file) for the first runs, as a
    full disk would; the check is reported failing with ``harness_error``, keeps running,
    recovers when writes work again, and no record is lost."""
    checks = {name: {"enabled": name == CHECK} for name in CHECK_NAMES}
    config = HarnessConfig.model_validate({
        "targets": [{"label": "ref", "url": default_server.url}],
        "probes": {"interval": "0.05s", "jitter": 0.1, "checks": checks}})
    sink = RecordSink(tmp_path, source="probe", batch_size=1)
    parts = tmp_path / PARTS_DIR
    parts.rmdir()
    parts.write_text("not a directory")  # every record write fails
    metrics = ProbeMetrics(CollectorRegistry(), [CHECK], ["ref"])
    seen: list[CheckResult] = []
    errors: list[str] = []
    enough = asyncio.Event()

    def watch(result: CheckResult) -> None:
        seen.append(result)
        if len(seen) == 4:  # the disk is repaired after two failed runs (two results each)
            parts.unlink()
            parts.mkdir()
        if len(seen) >= 8:
            enough.set()

    scheduler = ProbeScheduler(config, probe_targets(config, DEMO_KEYS), default_contract(),
                               [watch, metrics.observe, ProbeRun._recorder(sink)],
                               on_error=errors.append)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop))
        try:
            await asyncio.wait_for(enough.wait(), 30)
        finally:
            stop.set()
            await task

    asyncio.run(run())
    sink.close()
    failing = [r for r in seen if r.reason == "harness_error"]
    assert len(failing) == 2, [(r.result, r.reason) for r in seen]
    assert failing[0].detail.startswith("a listener raised ")  # an OSError naming the folder
    assert "records.parts" in failing[0].detail
    why = failing[0].detail.removeprefix("a listener raised ").split(":")[0]
    # two runs whose result could not be recorded; the first's harness_error result could
    # not be recorded either (the second's could: the disk was repaired by then)
    assert len(errors) == 3, errors
    assert errors[0].startswith(f"ref/{CHECK}: a listener raised {why}: ")
    assert errors[0].endswith("the check is marked failing (harness_error) and runs again "
                              "at its next interval")
    assert errors[1] == (f"ref/{CHECK}: a listener raised again on the harness_error "
                         f"result: {why}")
    assert errors[2].startswith(f"ref/{CHECK}: a listener raised {why}: ")
    text = metrics.exposition().decode()
    assert (f'secton_probe_failures_total{{check="{CHECK}",reason="harness_error",'
            'target="ref"} 2.0') in text
    assert f'secton_probe_success{{check="{CHECK}",target="ref"}} 1.0' in text  # recovered
    real = [r for r in seen if r.reason != "harness_error"]
    assert len(real) >= 6 and all(r.success for r in real)
    # the rows of the failed writes waited in the sink: every result is recorded
    assert read_records(tmp_path).num_rows == len(seen)


def test_a_run_that_raises_is_a_harness_error_result(tmp_path: Path) -> None:
    """A bug inside a check (here: a target built without its probe key, which the
    ``auth_malformed`` check needs) is that check's failure, not an exception that ends
    ``probe --once`` or a loop."""
    import dataclasses

    checks = {name: {"enabled": name == "auth_malformed"} for name in CHECK_NAMES}
    config = HarnessConfig.model_validate({
        "targets": [{"label": "t", "url": "http://127.0.0.1:9"}], "probes": {"checks": checks}})
    target = dataclasses.replace(probe_targets(config, DEMO_KEYS)[0], probe_key=None)
    errors: list[str] = []
    scheduler = ProbeScheduler(config, [target], default_contract(), [], on_error=errors.append)
    [result] = asyncio.run(scheduler.run_once())
    assert (result.success, result.reason) == (False, "harness_error")
    assert result.detail.startswith("the run raised AttributeError")
    assert errors == [f"t/auth_malformed: {result.detail}; the check is marked failing "
                      "(harness_error) and runs again at its next interval"]
