"""Render every dashboard to JSON files: stable key order, trailing newline, atomic.

The committed files in ``dashboards/generated/`` are exactly what :func:`render` returns
(a test compares them), so a review diff of the JSON shows what a generator change does.
Regenerate with ``make dashboards`` (``secton-harness dashboards export --out
dashboards/generated``); without ``--out`` the command writes to the current folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from secton_harness.atomicfile import write_text_atomic

from . import load_board, probes_board, ratelimits_board
from .panels import Json

#: Where the committed JSON lives (and where provisioning points).
GENERATED = Path(__file__).resolve().parent / "generated"

#: File stem → builder. The stem is the dashboard uid, so files and uids never drift.
BOARDS: dict[str, Callable[[], Json]] = {
    probes_board.UID: probes_board.build,
    load_board.UID: load_board.build,
    ratelimits_board.UID: ratelimits_board.build,
}


def build_all() -> dict[str, Json]:
    """Every dashboard by uid."""
    return {uid: builder() for uid, builder in BOARDS.items()}


def render(board: Json) -> str:
    """The file text of one dashboard."""
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(out: Path = GENERATED) -> list[Path]:
    """Write ``<uid>.json`` for every dashboard into ``out``; the paths written."""
    written = []
    for uid, board in build_all().items():
        path = out / f"{uid}.json"
        write_text_atomic(path, render(board))
        written.append(path)
    return written
