"""The Locust child's own bounds, without the CLI's help (issue 16, defect 7).

``load`` runs Locust in a child process that must never outlive the CLI nor run past its
deadline, whatever happened to the CLI. ``test_load_latency.py`` SIGKILLs the CLI, which
the parent-death signal alone already answers; here the child is started by the test
itself (no parent-death signal reaches it) with the very command the CLI builds, so each
of the child's own safeguards is tested alone:

* ``--secton-parent-pid``: the process named there dies, the run stops (the watch that
  also covers ``--processes`` workers, whose parent is the Locust master);
* ``--secton-deadline``: the CLI stays alive but does nothing (as a stopped or wedged
  CLI), the child stops itself at its deadline.

Either way the run stops in order: the target gets no more requests, the records are on
disk.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_toml
from hostile_target import HostileTarget

from loadtests.locust_process import LoadOptions, locust_command, validate
from secton_harness.records import read_records

pytestmark = pytest.mark.slow


@pytest.fixture
def target() -> Iterator[HostileTarget]:
    with HostileTarget("ok") as server:
        yield server


def _child(tmp_path: Path, target: HostileTarget, parent_pid: int,
           deadline_s: float | None) -> tuple[subprocess.Popen[bytes], Path]:
    """The Locust child of a 120 s load run, as the CLI would start it."""
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "120s", "endpoints": {"models": {"rate": "5/s"}}})
    keys = write_toml(tmp_path / "keys.toml", {"keys": [
        {"alias": "a1", "key": "sk-demo-alpha-1", "org": "org_alpha"}]})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    options = LoadOptions(scenario=scenario, target=target.url, keys=keys, out=run_dir)
    checked, url = validate(options)
    cmd = locust_command(options, checked, url, run_dir)
    cmd[cmd.index("--secton-parent-pid") + 1] = str(parent_pid)
    if deadline_s is not None:
        cmd[cmd.index("--secton-deadline") + 1] = str(deadline_s)
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    return child, run_dir


def _wait_for_requests(child: subprocess.Popen[bytes], target: HostileTarget) -> None:
    deadline = time.monotonic() + 60
    while not target.requests and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    assert target.requests, "the Locust child sent nothing"


def _stopped_within(child: subprocess.Popen[bytes], seconds: float) -> float:
    """Seconds until ``child`` exited; kills it and fails the test past ``seconds``."""
    start = time.monotonic()
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        pytest.fail(f"the Locust child still ran {seconds:.0f}s later")
    return time.monotonic() - start


def _assert_stopped_in_order(target: HostileTarget, run_dir: Path) -> None:
    sent = target.requests
    time.sleep(1.0)
    assert target.requests == sent, "requests still arrive after the child stopped"
    assert read_records(run_dir).num_rows >= 1  # its records were flushed on the way out


def test_the_child_stops_when_the_process_it_watches_is_gone(tmp_path: Path,
                                                            target: HostileTarget) -> None:
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        child, run_dir = _child(tmp_path, target, stand_in.pid, deadline_s=None)
        _wait_for_requests(child, target)
    finally:
        stand_in.kill()
        stand_in.wait()
    # the watch looks twice a second; the rest is a loaded machine's stop and flush
    _stopped_within(child, 45)
    _assert_stopped_in_order(target, run_dir)


def test_the_child_keeps_its_own_deadline(tmp_path: Path, target: HostileTarget) -> None:
    import os

    started = time.monotonic()
    child, run_dir = _child(tmp_path, target, os.getpid(), deadline_s=6)
    _wait_for_requests(child, target)
    # 6 s of deadline from its start, then a stop in order (at most 15 s before it exits
    # outright): far below the 120 s scenario it was given
    _stopped_within(child, 60 - (time.monotonic() - started))
    assert time.monotonic() - started < 60
    _assert_stopped_in_order(target, run_dir)
