"""One module per limiter family's fingerprint: how the family shows itself in the
responses alone (rate-limit headers are a cross-check, never required) and which figures
follow. ``infer`` asks the recovery shape first — budget back at once (``window``,
``penalty``) or one request at a time (``bucket``, ``counter``) — then the family's
module reads the rest. docs/ratelimit.md, "Fingerprints", is the table of them.
"""
