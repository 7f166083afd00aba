"""Machine-readable verdicts for CI: ``--json FILE|-`` and ``--junit FILE``.

Every command that ends with a verdict (``load``; later ``probe --once`` and ``ratelimit
--expect``) reduces it to a list of :class:`Case` (one per check or threshold: a name, a
group, passed or not, one line why) plus a JSON-ready summary. :func:`write_json` writes
that summary with the verdict; :func:`write_junit` writes one JUnit ``testcase`` per case,
which every CI system (GitLab, Jenkins, GitHub test reporters) renders as a test report.

Example::

    cases = [Case("rate:chat", "checks", False, "chat: 4.2 of 10 req/s ...")]
    write_junit("load.xml", "secton-harness load", cases, elapsed_s=21.5)
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secton_harness.atomicfile import write_text_atomic
from secton_harness.errors import BadInput


@dataclass(frozen=True)
class Case:
    """One verdict line: ``group`` becomes the JUnit classname (e.g. ``thresholds``)."""

    name: str
    group: str
    passed: bool
    message: str


def _atomic_write(path: str | os.PathLike[str], text: str, flag: str) -> None:
    try:
        write_text_atomic(Path(path), text)
    except OSError as error:
        raise BadInput(f"{flag} {path}: cannot write: {error.strerror or error}") from None


def check_writable(path: str | None, flag: str) -> None:
    """Refuse an output file whose folder does not exist, before the run starts."""
    if path is None or path == "-":
        return
    parent = Path(path).parent
    if not parent.is_dir():
        raise BadInput(f"{flag} {path}: folder {parent} does not exist")
    if Path(path).is_dir():
        raise BadInput(f"{flag} {path}: is a directory; name a file")


def write_json(path: str, data: dict[str, Any]) -> None:
    """The summary with its verdict; ``-`` writes to stdout."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    _atomic_write(path, text, "--json")


def write_junit(path: str, suite: str, cases: list[Case], elapsed_s: float = 0.0) -> None:
    """One ``testsuite`` named ``suite``, one ``testcase`` per case, failures with the line."""
    failures = sum(not case.passed for case in cases)
    root = ET.Element("testsuites", name=suite, tests=str(len(cases)),
                      failures=str(failures), time=f"{elapsed_s:.3f}")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                         failures=str(failures), errors="0", time=f"{elapsed_s:.3f}")
    for case in cases:
        item = ET.SubElement(node, "testcase", classname=f"{suite}.{case.group}",
                             name=case.name, time="0")
        if case.passed:
            ET.SubElement(item, "system-out").text = case.message
        else:
            ET.SubElement(item, "failure", message=case.message, type="failed").text = \
                case.message
    ET.indent(root)
    _atomic_write(path, ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n",
                  "--junit")
