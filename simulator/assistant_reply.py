"""The assistant's reply: a joke picked deterministically from the seed and the request
(SHA-256 of seed, model and messages), so the same request always gets the same reply
regardless of what other requests came before; ``max_tokens`` truncates it."""

from __future__ import annotations

import hashlib
import json

from simulator.tokens import truncate_tokens

JOKES = (
    "Why don't skeletons fight each other? They don't have the guts.",
    "I told my computer I needed a break, and it said: no problem, I'll go to sleep.",
    "Why do programmers prefer dark mode? Because light attracts bugs.",
    "There are 10 kinds of people: those who understand binary and those who don't.",
    "A SQL query walks into a bar, walks up to two tables and asks: can I join you?",
    "Why was the rate limiter so calm? It knew everything resets after a short cooldown.",
    "I would tell you a UDP joke, but you might not get it.",
    "Why did the load test break up with the server? It needed more space to scale.",
)


def reply_for(seed: int, model: str, messages: list[dict[str, str]],
              max_tokens: int | None) -> str:
    """The assistant's content for one chat request."""
    material = json.dumps([seed, model, messages], sort_keys=True, ensure_ascii=False)
    index = int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big") % len(JOKES)
    text = JOKES[index]
    return text if max_tokens is None else truncate_tokens(text, max_tokens)
