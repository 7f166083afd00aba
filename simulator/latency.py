"""Seeded latency model: ``base + per_token * completion_tokens + jitter``.

Jitter is exponential with mean ``jitter_ms`` (a long right tail like real services) or
uniform on ``0..jitter_ms``. One ``random.Random(seed)`` drives it, so a run with the
same requests in the same order injects the same latencies. All zero: no RNG draw and
the server does not sleep at all.
"""

from __future__ import annotations

import random

from simulator.config import LatencyConfig


class LatencyModel:
    """Draws the injected delay (seconds) for one response."""

    def __init__(self, config: LatencyConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.rng = random.Random(seed)
        self.zero = config.base_ms == config.per_token_ms == config.jitter_ms == 0

    def reset(self) -> None:
        """Restart the random sequence from the seed."""
        self.rng = random.Random(self.seed)

    def delay_s(self, completion_tokens: int = 0) -> float:
        """The delay for a response with ``completion_tokens`` (0 for /v1/models)."""
        if self.zero:
            return 0.0
        config = self.config
        ms = config.base_ms + config.per_token_ms * completion_tokens
        if config.jitter_ms > 0:
            if config.jitter == "exponential":
                ms += self.rng.expovariate(1.0 / config.jitter_ms)
            else:
                ms += self.rng.uniform(0.0, config.jitter_ms)
        return ms / 1000.0
