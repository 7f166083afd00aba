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


@pytest.mark.parametrize("text", [
    f'keys = "{SECRET}"\n',                                            # the key at top level
    f'keys = ["{SECRET}"]\n',
    f'[[keys]]\nalias = "a"\norg = "o"\nkey_env = "{SECRET}"\n',        # the key in key_env
    f'[[keys]]\nalias = "a"\norg = "o"\nkey = ["{SECRET}"]\n',
    f'[[keys]]\nalias = "a"\norg = "o"\nkey = 1\n"{SECRET}" = "x"\n',
    f'[[keys]]\nalias = "{SECRET}/"\norg = "o"\nkey = "k1"\n',
    f'[[keys]]\nalias = "a"\norg = "o"\nkey = "k1"\nkey_env = "{SECRET}"\n',
])
def test_a_misplaced_key_is_never_in_the_error_line(tmp_path: Path, text: str) -> None:
    with pytest.raises(BadInput) as info:
        load_keys(write(tmp_path, text), env={})
    assert SECRET not in str(info.value) and SECRET[3:] not in str(info.value)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(tmp_path))


def test_a_lowercase_key_env_is_not_shown(tmp_path: Path) -> None:
    """``key_env = "sk_live_…"`` is a valid variable name, but more likely a key."""
    lookalike = "sk_live_Zq9VbLm2Xy7WtR4"
    with pytest.raises(BadInput, match=r"keys\[0\]\.key_env: .* not set") as info:
        load_keys(write(tmp_path, f'[[keys]]\nalias = "a"\norg = "o"\nkey_env = '
                                  f'"{lookalike}"\n'), env={})
    assert lookalike not in str(info.value)


@pytest.mark.parametrize(("entries", "field"), [
    (f'alias = "{SECRET}"\norg = "o"\nkey = "{SECRET}"\n', r"keys\[0\]\.alias"),
    (f'alias = "x-{SECRET}"\norg = "o"\nkey = "{SECRET}"\n', r"keys\[0\]\.alias"),
    (f'alias = "{SECRET[:-4]}"\norg = "o"\nkey = "{SECRET}"\n', r"keys\[0\]\.alias"),
    (f'alias = "a"\norg = "{SECRET[3:13].upper()}"\nkey = "{SECRET}"\n', r"keys\[0\]\.org"),
    (f'alias = "a"\norg = "org-{SECRET}"\nkey = "{SECRET}"\n', r"keys\[0\]\.org"),
    (f'alias = "a"\norg = "o"\nkey = "{SECRET}"\n[[keys]]\nalias = "{SECRET}"\norg = "o"\n'
     'key = "sk-other-0000000000"\n', r"keys\[1\]\.alias"),
    (f'alias = "{SECRET}"\norg = "o"\nkey = "{SECRET}"\n[[keys]]\nalias = "{SECRET}"\n'
     f'org = "o"\nkey = "{SECRET}"\n', r"keys\[0\]\.alias"),  # not "duplicate alias '…'"
])
def test_an_alias_or_org_holding_a_key_is_refused(tmp_path: Path, entries: str,
                                                  field: str) -> None:
    """Aliases and orgs are written to every record and output: one holding a key would
    leak it everywhere."""
    with pytest.raises(BadInput, match=field + ": contains a key") as info:
        load_keys(write(tmp_path, "[[keys]]\n" + entries), env={})
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_plain_keys_in_a_file_others_can_read_warn(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   mode: int, warned: bool) -> None:
    path = write(tmp_path, f'[[keys]]\nalias = "a1"\nkey = "{SECRET}"\norg = "o"\n')
    path.chmod(mode)
    load_keys(path, env={})
    load_keys(path, env={})  # once per file and process
    err = capsys.readouterr().err
    assert err.count("warning:") == (1 if warned else 0), err
    if warned:
        assert "other users can read it" in err and "chmod 600" in err
    assert SECRET not in err


def test_no_readable_warning_for_key_env_or_the_demo_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[[keys]]\nalias = "a1"\nkey_env = "MY_KEY"\norg = "o"\n')
    path.chmod(0o644)
    load_keys(path, env={"MY_KEY": SECRET})
    demo = (Path(__file__).resolve().parent.parent / "secton_cli" / "demo_inputs"
            / "demo-keys.toml")
    load_keys(demo, env={})
    assert capsys.readouterr().err == ""


#: Keys that cannot go into ``Authorization: Bearer <key>``: every request would fail in
#: the client (h11's LocalProtocolError), so each is refused when loaded.
UNSENDABLE = ["sk-aaaa\nbbbb1234", "sk-aaaa\rbbbb1234", "sk-aaaa\x00bbbb1234",
              "sk-aaaa\tbbbb1234", "sk-aaaa bbbb1234", "sk-aaaa\x7fbbbb1234",
              "sk-ääääbbbb1234", "sk-aaaabbbb1234\n"]


@pytest.mark.parametrize("secret", UNSENDABLE)
def test_a_key_that_cannot_be_sent_is_refused_naming_the_field(tmp_path: Path,
                                                               secret: str) -> None:
    escaped = "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in secret)
    path = write(tmp_path, f'[[keys]]\nalias = "a1"\norg = "o"\nkey = "sk-fine-00000001"\n'
                           f'[[keys]]\nalias = "a2"\norg = "o"\nkey = "{escaped}"\n')
    with pytest.raises(BadInput) as caught:
        load_keys(path)
    shown = str(caught.value)
    assert "keys[1].key:" in shown and "\n" not in shown and "control character" in shown
    assert "aaaa" not in shown and "bbbb" not in shown
    path = write(tmp_path, '[[keys]]\nalias = "a1"\norg = "o"\nkey_env = "MY_KEY"\n')
    with pytest.raises(BadInput, match=r"keys\[0\]\.key_env: the variable's value"):
        load_keys(path, env={"MY_KEY": secret})
    if secret.strip() == secret:  # SECTON_API_KEY is stripped: a trailing newline is fine
        with pytest.raises(BadInput) as caught:
            keys_from_env({"SECTON_API_KEY": secret})
        assert str(caught.value).startswith("SECTON_API_KEY: ") and "aaaa" not in str(
            caught.value)


def test_an_unsendable_env_key_is_one_line_exit_2(tmp_path: Path) -> None:
    """The CLI with ``SECTON_API_KEY`` holding a newline: one line naming the variable,
    exit 2, before any request (it used to fail every check with LocalProtocolError)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTON_")}
    env["SECTON_API_KEY"] = "sk-aaaa\nbbbb1234"
    done = subprocess.run([sys.executable, "-m", "secton_harness", "probe", "--once",
                           "--target", "http://127.0.0.1:9"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stdout[-1000:] + done.stderr[-1000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SECTON_API_KEY" in lines[0], done.stderr
    assert "aaaa" not in done.stdout + done.stderr
