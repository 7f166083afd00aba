"""Keys file: validation, env keys, and the secret never showing in any output."""

from __future__ import annotations

from pathlib import Path

import pytest

from secton_harness.errors import BadInput
from secton_harness.keys import ApiKey, keys_from_env, load_keys, mask, resolve_keys

SECRET = "sk-test-Zq9VbLm2Xy7WtR4"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return path


def test_loads_keys_and_env_keys(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[keys]]\nalias = "a1"\nkey = "{SECRET}"\norg = "org_a"\n'
                           '[[keys]]\nalias = "b1"\nkey_env = "MY_KEY"\norg = "org_b"\n')
    pool = load_keys(path, env={"MY_KEY": "sk-from-env-000000"})
    assert pool.aliases == ["a1", "b1"]
    assert pool.orgs == ["org_a", "org_b"]
    assert pool.by_alias("b1").secret == "sk-from-env-000000"
    assert [k.alias for k in pool.of_org("org_a")] == ["a1"]


def test_secret_never_in_repr_or_str() -> None:
    key = ApiKey(alias="a1", org="org_a", secret=SECRET)
    assert SECRET not in repr(key)
    assert SECRET not in str(key)
    assert key.masked == "sk-…tR4"[:3] + "…" + SECRET[-4:]


def test_mask_short_key() -> None:
    assert mask("sk-1") == "***"


@pytest.mark.parametrize(("text", "expected"), [
    ('[[keys]]\nalias = "a"\nkey = "sk-1"\n', r"keys\[0\]\.org: missing"),
    ('[[keys]]\nalias = "a"\norg = "o"\n', r"give exactly one of 'key' or 'key_env'"),
    ('[[keys]]\nalias = "a"\norg = "o"\nkey = "k"\nkey_env = "E"\n', "exactly one"),
    ('[[keys]]\nalias = "a"\nkey = "k1"\norg = "o"\n[[keys]]\nalias = "a"\nkey = "k2"\n'
     'org = "o"\n', r"keys\[1\]\.alias: duplicate alias 'a'"),
    ('[[keys]]\nalias = "a"\nkey = "k1"\norg = " "\n', "org is empty"),
    ('[[keys]]\nalias = "a"\nkey = "k1"\norg = "o"\ncolour = 1\n', r"keys\[0\]\.colour: unknown"),
    ("keys = []\n", "keys: .*at least 1"),
    ('[[keys]]\nalias = "a"\nkey_env = "UNSET_VAR_X"\norg = "o"\n', "UNSET_VAR_X is not set"),
    ('[[keys]]\nalias = "a"\nkey = "same"\norg = "o"\n[[keys]]\nalias = "b"\nkey = "same"\n'
     'org = "o"\n', "same key as alias 'a'"),
])
def test_bad_keys_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(BadInput, match=expected) as info:
        load_keys(write(tmp_path, text), env={})
    assert "\n" not in str(info.value)


def test_bad_input_never_echoes_a_secret(tmp_path: Path) -> None:
    text = f'[[keys]]\nalias = "a"\nkey = "{SECRET}"\norg = "o"\n[[keys]]\nalias = "b"\n' \
           f'key = "{SECRET}"\norg = "o"\n'
    with pytest.raises(BadInput) as info:
        load_keys(write(tmp_path, text), env={})
    assert SECRET not in str(info.value)


def test_env_key_for_ci() -> None:
    pool = keys_from_env({"SECTON_API_KEY": SECRET, "SECTON_ORG": "org_ci"})
    assert pool is not None
    assert pool.by_alias("env").org == "org_ci"
    assert keys_from_env({}) is None


def test_resolve_keys_needs_a_source() -> None:
    with pytest.raises(BadInput, match="pass --keys FILE or set SECTON_API_KEY"):
        resolve_keys(None, env={})


def test_redact() -> None:
    pool = keys_from_env({"SECTON_API_KEY": SECRET})
    assert pool is not None
    assert pool.redact(f"oops {SECRET} leaked") == "oops <key env> leaked"
