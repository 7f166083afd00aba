"""API keys: loaded from a TOML keys file, held only in memory, shown only by alias.

A keys file (as the README's quick start writes one)::

    [[keys]]
    alias = "a1"                 # what every output shows
    key = "sk-..."               # or key_env = "SECTON_KEY_A1"
    org = "org_alpha"

The secret is kept out of ``repr``, ``str`` and every error message; outputs use
:attr:`ApiKey.alias` or, at most, :func:`mask` (``sk-…1234``). For the common CI case,
``SECTON_API_KEY`` (with optional ``SECTON_ORG``) stands in for a keys file.

A keys file is read as if any value in it could be a key put in the wrong place: its
errors name the field, never a value (``keys = "sk-…"`` at top level, ``key_env = "sk-…"``),
an alias or org holding a key is refused (both appear in every output), and a plain
``key =`` in a file other users can read gets a warning.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from secton_harness.config import Model, model_from_dict, read_toml
from secton_harness.errors import BadInput
from secton_harness.redact import WINDOW, Redactor

ENV_KEY = "SECTON_API_KEY"
ENV_ORG = "SECTON_ORG"
_ALIAS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: An environment variable name an error may show: the usual upper-case form, not too long
#: (a lower-case ``key_env = "sk_live_…"`` is more likely a key than a variable's name).
_SHOWN_ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
#: What a key may hold: visible ASCII. A key goes out as ``Authorization: Bearer <key>``; a
#: control character (a newline pasted in), a space or a non-ASCII character cannot go in
#: that header, so every request would fail inside the client (``LocalProtocolError``).
_SENDABLE_KEY_RE = re.compile(r"[\x21-\x7e]+")
UNSENDABLE_KEY = ("holds a control character, space or non-ASCII character, which cannot "
                  "be sent in an Authorization header (the value is not shown)")
#: The reference server's published demo keys: not secrets, so no readable-file warning.
DEMO_KEY_PREFIX = "sk-demo-"
_warned_readable: set[str] = set()


def mask(secret: str) -> str:
    """The most of a key any output may show: ``sk-…1234`` (or ``***`` for short keys)."""
    if len(secret) < 12:
        return "***"
    prefix = "sk-" if secret.startswith("sk-") else ""
    return f"{prefix}…{secret[-4:]}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key: its alias and org are public, the secret never leaves memory."""

    alias: str
    org: str
    secret: str = field(repr=False)

    def __str__(self) -> str:
        return f"{self.alias} ({self.org})"

    @property
    def masked(self) -> str:
        return mask(self.secret)


class _KeyEntry(Model):
    alias: str
    org: str
    key: str | None = Field(default=None, min_length=1)
    key_env: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> _KeyEntry:
        # Values are not echoed: a misplaced key may be any of them.
        if not _ALIAS_RE.match(self.alias):
            raise ValueError("alias must be 1-64 of A-Z a-z 0-9 _ . - (not shown here)")
        if not self.org.strip():
            raise ValueError("org is empty; every key needs the org it belongs to")
        if (self.key is None) == (self.key_env is None):
            raise ValueError("give exactly one of 'key' or 'key_env'")
        return self

    @field_validator("key_env")
    @classmethod
    def _a_variable_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME_RE.match(value):
            raise ValueError("must name an environment variable (A-Z a-z 0-9 _), not hold "
                             "the key; the value is not shown")
        return value


class _KeysFile(Model):
    keys: list[_KeyEntry] = Field(min_length=1)


class NoKeys(BadInput):
    """No ``--keys`` and no ``SECTON_API_KEY``: a caller may add why (a config's keys
    files replaced by ``--target``)."""


@dataclass(frozen=True)
class KeyPool:
    """The keys a run may use, in file order, with lookups by alias and by org."""

    keys: tuple[ApiKey, ...]
    #: Where the keys came from, for messages: ``""`` for a keys file, else ``SECTON_API_KEY``.
    from_env: str = ""

    def described(self) -> str:
        """The pool as a message names it: "the keys file has 2 orgs" would be wrong for
        the one key of ``SECTON_API_KEY``."""
        if self.from_env:
            return f"{len(self)} key (from {self.from_env})"
        return f"the keys file has {len(self.orgs)}"

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def by_alias(self, alias: str) -> ApiKey:
        for key in self.keys:
            if key.alias == alias:
                return key
        raise BadInput(f"no key with alias {alias!r}; known: {', '.join(self.aliases)}")

    @property
    def aliases(self) -> list[str]:
        return [key.alias for key in self.keys]

    @property
    def orgs(self) -> list[str]:
        return list(dict.fromkeys(key.org for key in self.keys))

    def of_org(self, org: str) -> list[ApiKey]:
        return [key for key in self.keys if key.org == org]

    def secrets(self) -> list[str]:
        """Every secret, for leak scanners and redaction; never print the result."""
        return [key.secret for key in self.keys]

    @functools.cached_property
    def redactor(self) -> Redactor:
        """The redactor for text from the network: every secret of the pool shown by alias."""
        return Redactor({key.secret: key.alias for key in self.keys})

    def redact(self, text: str) -> str:
        """``text`` with every secret of the pool (and its visible forms) replaced by its
        alias; see :mod:`secton_harness.redact`."""
        return self.redactor.redact(text)


def load_keys(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> KeyPool:
    """Load and validate a keys file; ``key_env`` entries are read from ``env``."""
    env = os.environ if env is None else env
    source = str(path)
    entries = model_from_dict(_KeysFile, read_toml(Path(path), "keys file"), source,
                              secret_safe=True).keys
    keys: list[ApiKey] = []
    for index, entry in enumerate(entries):
        secret = entry.key or ""
        if entry.key_env is not None:
            secret = env.get(entry.key_env, "")
            if not secret:
                name = (entry.key_env if _SHOWN_ENV_NAME_RE.match(entry.key_env)
                        else "it names (not shown: is it a key?)")
                raise BadInput(f"{source}: keys[{index}].key_env: environment variable "
                               f"{name} is not set or empty")
        if not _SENDABLE_KEY_RE.fullmatch(secret):
            field = "key" if entry.key is not None else "key_env"
            what = "" if entry.key is not None else "the variable's value "
            raise BadInput(f"{source}: keys[{index}].{field}: {what}{UNSENDABLE_KEY}")
        keys.append(ApiKey(alias=entry.alias, org=entry.org.strip(), secret=secret))
    # before any message that quotes an alias: an alias may be a misplaced key
    _refuse_public_names_holding_keys(keys, source)
    seen: set[str] = set()
    seen_secrets: dict[str, str] = {}
    for index, key in enumerate(keys):
        where = f"{source}: keys[{index}]"
        if key.alias in seen:
            raise BadInput(f"{where}.alias: duplicate alias {key.alias!r}; aliases are unique")
        seen.add(key.alias)
        if key.secret in seen_secrets:
            raise BadInput(
                f"{where}.key: same key as alias {seen_secrets[key.secret]!r}; each key once"
            )
        seen_secrets[key.secret] = key.alias
    if any(entry.key is not None for entry in entries):
        _warn_if_readable(Path(path), [e.key for e in entries if e.key is not None])
    return KeyPool(tuple(keys))


def _shares_a_run(value: str, secret: str) -> bool:
    """``value`` holds :data:`~secton_harness.redact.WINDOW` consecutive characters of
    ``secret`` in any case (a shorter secret: all of it): what the redactor takes for the
    key in network text, and what the canary scan calls a leak (the key without its last
    four characters, an alias that held it, was accepted)."""
    value, secret = value.lower(), secret.lower()
    size = min(WINDOW, len(secret))
    return any(secret[i:i + size] in value for i in range(len(secret) - size + 1))


def _refuse_public_names_holding_keys(keys: list[ApiKey], source: str) -> None:
    """An alias or org that contains a key or a piece of one (its own or another's) would
    print it in every output, record and metric label: refused, without showing either."""
    for index, key in enumerate(keys):
        for name, value in (("alias", key.alias), ("org", key.org)):
            if any(_shares_a_run(value, other.secret) for other in keys):
                raise BadInput(f"{source}: keys[{index}].{name}: contains a key; an {name} "
                               "appears in every output, use a name like 'a1' or 'org_a'")


def _warn_if_readable(path: Path, plain: list[str]) -> None:
    """One stderr line (per file and process) when other users can read plain keys."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return
    if all(secret.startswith(DEMO_KEY_PREFIX) for secret in plain):
        return
    shown = str(path.resolve())
    if shown in _warned_readable:
        return
    _warned_readable.add(shown)
    print(f"warning: {path}: holds plain 'key =' values and other users can read it "
          f"(mode {stat.S_IMODE(mode):o}); chmod 600 it, or use key_env", file=sys.stderr,
          flush=True)


def keys_from_env(env: Mapping[str, str] | None = None) -> KeyPool | None:
    """A one-key pool from ``SECTON_API_KEY`` (org from ``SECTON_ORG``), or None if unset."""
    env = os.environ if env is None else env
    secret = env.get(ENV_KEY, "").strip()
    if not secret:
        return None
    if not _SENDABLE_KEY_RE.fullmatch(secret):
        raise BadInput(f"{ENV_KEY}: {UNSENDABLE_KEY}")
    return KeyPool((ApiKey(alias="env", org=env.get(ENV_ORG, "").strip() or "unknown",
                           secret=secret),), from_env=ENV_KEY)


def resolve_keys(path: str | os.PathLike[str] | None,
                 env: Mapping[str, str] | None = None) -> KeyPool:
    """The keys for a command: ``--keys FILE`` if given, else ``SECTON_API_KEY``, else an error."""
    if path is not None:
        return load_keys(path, env)
    pool = keys_from_env(env)
    if pool is None:
        raise NoKeys(f"no keys: pass --keys FILE or set {ENV_KEY}")
    return pool
