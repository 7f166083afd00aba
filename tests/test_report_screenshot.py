"""The report as a release manager sees it: headless Chromium renders a report over three
runs of different kinds, and the first screen must show the verdict.

The screenshot is decoded here (PNG: zlib and the five row filters, no imaging library)
and searched for the banner's border (a row mostly of its colour): a failed report's red
banner must sit in the top 300 pixels of a 1000 x 700 window, where the eye lands before
any scrolling. The PNG stays in the test's temporary folder and its path is printed (``-s``
shows it). Chromium is required like Prometheus and nginx: ``.ci/install-deps`` (run by
``make test``) installs it, and a missing one fails the test, never skips it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from report_data import load_rows, make_run, probe_rows

from reports.build import build_report

pytestmark = pytest.mark.slow
BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser",
                                                 "google-chrome") if shutil.which(name)), None)
FAILED_BORDER = (0xC6, 0x28, 0x28)   # .banner.failed, reports/templates/report.html.j2
PASSED_BORDER = (0x1A, 0x7F, 0x37)   # .banner.passed


def _rows(png: bytes, limit: int) -> np.ndarray:
    """The first ``limit`` rows of an 8-bit RGB/RGBA, non-interlaced PNG as an array."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks, header = 8, [], b""
    while at < len(png):
        size, kind = struct.unpack(">I4s", png[at:at + 8])
        data = png[at + 8:at + 8 + size]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            chunks.append(data)
        at += 12 + size
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(b"".join(chunks))
    out = np.zeros((min(limit, height), stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.int32)
    for y in range(out.shape[0]):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if kind == 2:      # up
            line = (line + previous) & 0xFF
        elif kind in (1, 3, 4):   # sub, average, paeth: each byte depends on its left one
            row = line.tolist()
            up = previous.tolist()
            for x in range(stride):
                left = row[x - channels] if x >= channels else 0
                if kind == 1:
                    guess = left
                elif kind == 3:
                    guess = (left + up[x]) // 2
                else:
                    corner = up[x - channels] if x >= channels else 0
                    p = left + up[x] - corner
                    guess = min((abs(p - left), 0, left), (abs(p - up[x]), 1, up[x]),
                                (abs(p - corner), 2, corner))[2]
                row[x] = (row[x] + guess) & 0xFF
            line = np.array(row, dtype=np.int32)
        out[y] = line
        previous = line
    return out.reshape(out.shape[0], width, channels)[:, :, :3]


def _first_border(pixels: np.ndarray, colour: tuple[int, int, int]) -> int | None:
    """The first row that is mostly ``colour``: a banner's top border spans the page's
    width, where text of that colour (a run's PASSED) never does."""
    same = np.all(np.abs(pixels.astype(int) - colour) <= 6, axis=2)
    hits = np.nonzero(same.mean(axis=1) > 0.5)[0]
    return int(hits[0]) if hits.size else None


def _screenshot(html: Path, png: Path) -> bytes:
    done = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--window-size=1000,700",
                           f"--screenshot={png}", html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert png.exists(), done.stderr[-2000:]
    print(f"screenshot: {png}")
    return png.read_bytes()


def test_first_screen_shows_the_verdict(tmp_path: Path) -> None:
    assert BROWSER is not None, (
        "Chromium is not installed (Debian package chromium; .ci/install-deps installs it)")
    ramp = make_run(tmp_path / "ramp", load=load_rows())
    steady = make_run(tmp_path / "steady", load=load_rows(seed=2, stage_rates=(20,)))
    probe = make_run(tmp_path / "probe", probe=probe_rows())  # failing checks: FAILED
    report = build_report([ramp, steady, probe], out=tmp_path / "report")
    assert report.summary["verdict"]["status"] == "failed"
    pixels = _rows(_screenshot(report.html, tmp_path / "report.png"), 700)
    top = _first_border(pixels, FAILED_BORDER)
    assert top is not None and top < 300, top
    assert _first_border(pixels, PASSED_BORDER) is None  # the failed report has no passed banner
    passing = build_report([steady], out=tmp_path / "passing")
    assert passing.summary["verdict"]["status"] == "passed"
    pixels = _rows(_screenshot(passing.html, tmp_path / "passing.png"), 700)
    top = _first_border(pixels, PASSED_BORDER)
    assert top is not None and top < 300, top
