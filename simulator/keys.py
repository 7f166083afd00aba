"""Bearer-token authentication without timing leaks.

Presented keys are hashed with SHA-256 and the *digest* is looked up in a dict. A dict
lookup on the raw key would compare strings with an early exit and leak, through timing,
how much of a guess matches a real key; the digest of a guess says nothing about any
real key's prefix, and ``hmac.compare_digest`` confirms the match in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from simulator.config import KeyConfig, SimulatorConfig

OPEN_KEY = KeyConfig.model_validate({"alias": "open", "key": "(any)", "org": "org_open"})


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a request was not authenticated: an error ``code`` and a one-line message."""

    code: str
    message: str


class KeyStore:
    """The accepted keys, by SHA-256 digest."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.open = config.faults.auth_open
        self.by_digest = {_digest(k.key): (_digest(k.key), k) for k in config.keys}

    def authenticate(self, header: str | None) -> KeyConfig | AuthFailure:
        """The key for an ``Authorization`` header value, or why it was refused."""
        if header is None:
            return AuthFailure("missing_authorization",
                               "Missing Authorization header; send 'Authorization: Bearer sk-...'")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return AuthFailure("invalid_authorization_scheme",
                               "Authorization scheme must be Bearer")
        token = token.strip()
        if not token:
            return AuthFailure("missing_api_key", "Bearer token is empty")
        if self.open:
            return OPEN_KEY
        digest = _digest(token)
        found = self.by_digest.get(digest)
        if found is None or not hmac.compare_digest(digest, found[0]):
            return AuthFailure("invalid_api_key", "Invalid API key")
        return found[1]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
