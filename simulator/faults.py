"""Seeded fault injection for probe and alert tests.

Faults only replace responses that would otherwise be a 200 (a 400 stays a 400, a 429
stays a 429), so ``error_500 = 1.0`` means every valid request fails. One
``random.Random(seed)`` decides, one draw per configured fault per request, in the fixed
order below; the first exclusive fault drawn wins, ``slow`` combines with any of them.

- ``drop_connection``: the TCP connection is reset without any response (see app.py).
- ``error_500`` / ``error_503``: JSON error body, status 500 / 503.
- ``malformed_json``: the body is cut in half but still labelled ``application/json``.
- ``wrong_content_type``: the normal body labelled ``text/html``.
- ``schema_break``: a required field is missing (chat: ``usage``; models: ``data``).
- ``slow``: ``slow_s`` added to the injected latency.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator.config import FaultsConfig

EXCLUSIVE = ("drop_connection", "error_500", "error_503", "malformed_json",
             "wrong_content_type", "schema_break")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to do to one response: ``kind`` is one of EXCLUSIVE or None; ``slow_s`` extra."""

    kind: str | None
    slow_s: float


NO_FAULT = FaultPlan(None, 0.0)


class FaultInjector:
    """Draws the fault plan for each successful response."""

    def __init__(self, config: FaultsConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.rng = random.Random(seed ^ 0x5EC7)
        self.active = [(name, getattr(config, name)) for name in EXCLUSIVE
                       if getattr(config, name) > 0]

    def reset(self) -> None:
        """Restart the random sequence from the seed."""
        self.rng = random.Random(self.seed ^ 0x5EC7)

    def plan(self) -> FaultPlan:
        """The fault (if any) for the next successful response."""
        if not self.active and self.config.slow <= 0:
            return NO_FAULT
        kind = None
        for name, fraction in self.active:
            if self.rng.random() < fraction and kind is None:
                kind = name
        slow = 0.0
        if self.config.slow > 0 and self.rng.random() < self.config.slow:
            slow = self.config.slow_s
        return FaultPlan(kind, slow)
