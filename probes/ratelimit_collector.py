"""The rate-limit mapper's findings (``ratelimit.json``) as Prometheus gauges, read at scrape time.

``secton-harness ratelimit --out DIR`` measures a target's limits once and writes
``DIR/ratelimit.json``; the long-running probe exporter re-exports them so the Grafana
"Rate limits" dashboard can show the observed limits next to the 429s. A custom
collector (client_python's pattern for data that lives elsewhere) reads the file(s) in
``collect()``, so a new mapping run shows up at the next scrape without a restart.

Exported, per file, scope (``key``, ``org``) and figure:

- ``secton_ratelimit_observed{scope,quantity,org,target}`` with ``quantity`` one of
  :data:`QUANTITIES` (numbers only; a figure the mapper could not measure is left out);
- ``secton_ratelimit_verified{scope,figure,org,target}`` 1/0 for each ``--expect`` check.

``org`` is the org id for the org scope; for the key scope the org of the measured key when
the file names it (a key ``org`` field, or the key listed among the org scope's keys), else
``""``. ``target`` is the probe target's label when the file's URL is one of the probed
targets, else the URL without credentials or query. No key material: the file holds key
aliases only, and aliases are not exported either.

A missing, unreadable or malformed file never fails the scrape: it contributes nothing and
one warning is logged (again only after it was readable in between). When two files give the
same series (same target, scope and org), the most recently written file wins.

Example::

    registry.register(RatelimitCollector(["runs/*/ratelimit.json"], {"prod": url}))
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from secton_harness.metrics import HELP, RATELIMIT_OBSERVED, RATELIMIT_VERIFIED
from secton_harness.ratelimit_model import QUANTITIES, RESULT_FILE, SCOPES

log = logging.getLogger(__name__)

_OBSERVED_LABELS = ["scope", "quantity", "org", "target"]
_VERIFIED_LABELS = ["scope", "figure", "org", "target"]


def normalise_url(url: str) -> str:
    """``scheme://host[:port][/path]`` without credentials, query, ``/`` or ``/v1`` at the end."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return urlunsplit((parts.scheme, netloc, path, "", ""))


@dataclass(frozen=True)
class Samples:
    """What one file contributes: ``labels -> value`` for each metric."""

    observed: dict[tuple[str, ...], float] = field(default_factory=dict)
    verified: dict[tuple[str, ...], float] = field(default_factory=dict)


def samples_from_result(result: Any, target_label: str) -> Samples:
    """The gauges of one parsed ``ratelimit.json`` (ValueError if it is not that shape)."""
    if not isinstance(result, dict) or not isinstance(result.get("scopes"), dict):
        raise ValueError("not a ratelimit.json (no 'scopes' object)")
    scopes = result["scopes"]
    samples = Samples()
    for scope_name in SCOPES:
        scope = scopes.get(scope_name)
        if not isinstance(scope, dict):
            continue
        org = _org_of(scope_name, scope, scopes)
        for quantity in QUANTITIES:
            value = scope.get(quantity)
            if isinstance(value, int | float) and not isinstance(value, bool) \
                    and math.isfinite(value):
                samples.observed[(scope_name, quantity, org, target_label)] = float(value)
        checks = scope.get("checks")
        if not isinstance(checks, dict):
            checks = ((result.get("expect") or {}).get("scopes") or {}).get(scope_name)
        for figure, check in (checks or {}).items():
            if isinstance(check, dict) and isinstance(check.get("pass"), bool):
                samples.verified[(scope_name, str(figure), org, target_label)] = \
                    1.0 if check["pass"] else 0.0
        # a figure the mapper could not verify is never shown as passed
        for figure in scope.get("unverified") or []:
            samples.verified[(scope_name, str(figure), org, target_label)] = 0.0
    return samples


def _org_of(scope_name: str, scope: dict[str, Any], scopes: dict[str, Any]) -> str:
    org = scope.get("org")
    if isinstance(org, str):
        return org
    if scope_name == "key":
        org_scope = scopes.get("org")
        if (isinstance(org_scope, dict) and isinstance(org_scope.get("org"), str)
                and scope.get("key_alias") in (org_scope.get("keys") or [])):
            return str(org_scope["org"])
    return ""


class RatelimitCollector(Collector):
    """Re-reads the mapper's result files at every scrape (parsed files cached by mtime)."""

    def __init__(self, patterns: Iterable[str | os.PathLike[str]],
                 target_labels: Mapping[str, str] | None = None) -> None:
        self.patterns = [str(p) for p in patterns]
        #: normalised URL -> probe target label
        self.labels = {normalise_url(url): label
                       for label, url in (target_labels or {}).items()}
        self._cache: dict[str, tuple[tuple[int, int], Samples]] = {}
        self._warned: set[str] = set()

    def describe(self) -> list[GaugeMetricFamily]:
        """The families, without reading any file (registration must not do I/O)."""
        return [GaugeMetricFamily(RATELIMIT_OBSERVED, HELP[RATELIMIT_OBSERVED],
                                  labels=_OBSERVED_LABELS),
                GaugeMetricFamily(RATELIMIT_VERIFIED, HELP[RATELIMIT_VERIFIED],
                                  labels=_VERIFIED_LABELS)]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        observed: dict[tuple[str, ...], float] = {}
        verified: dict[tuple[str, ...], float] = {}
        for _mtime, path in sorted(self._files()):  # oldest first: newer files win
            samples = self._read(path)
            if samples is not None:
                observed.update(samples.observed)
                verified.update(samples.verified)
        for name, labels, values in ((RATELIMIT_OBSERVED, _OBSERVED_LABELS, observed),
                                     (RATELIMIT_VERIFIED, _VERIFIED_LABELS, verified)):
            if values:
                family = GaugeMetricFamily(name, HELP[name], labels=labels)
                for label_values, value in sorted(values.items()):
                    family.add_metric(list(label_values), value)
                yield family

    def _files(self) -> list[tuple[int, str]]:
        """(mtime_ns, path) of every file the patterns name now; warns for empty ones."""
        found: dict[str, int] = {}
        for pattern in self.patterns:
            magic, matched = glob.has_magic(pattern), False
            paths = sorted(glob.glob(pattern)) if magic else [pattern]
            for raw in paths:
                path = Path(raw) / RESULT_FILE if Path(raw).is_dir() else Path(raw)
                try:
                    found[str(path)] = path.stat().st_mtime_ns
                    matched = True
                except OSError as error:
                    self._warn(str(path), f"cannot read: {error.strerror or error}")
            if magic and matched:
                self._warned.discard(pattern)
            elif magic:
                self._warn(pattern, "no file matches")
        return [(mtime, path) for path, mtime in found.items()]

    def _read(self, path: str) -> Samples | None:
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            with open(path, encoding="utf-8") as handle:
                result = json.load(handle)
            target = result.get("target") if isinstance(result, dict) else None
            samples = samples_from_result(result, self._target_label(target))
        except (OSError, ValueError) as error:  # JSONDecodeError is a ValueError
            self._cache.pop(path, None)
            self._warn(path, str(getattr(error, "strerror", None) or error))
            return None
        self._cache[path] = (stamp, samples)
        self._warned.discard(path)
        return samples

    def _target_label(self, url: Any) -> str:
        if not isinstance(url, str) or not url.strip():
            return ""
        shown = normalise_url(url)
        return self.labels.get(shown, shown)

    def _warn(self, what: str, problem: str) -> None:
        """One warning line per file (or pattern) until it is readable again."""
        if what not in self._warned:
            self._warned.add(what)
            log.warning("ratelimit file %s: %s; exporting nothing for it", what, problem)
