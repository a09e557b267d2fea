"""Console accounts, session cookies and CSRF tokens, and ``console-hash-password``."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from poststelle.routing.cli.main import main as poststelle
from poststelle.routing.console import ConsoleConfig, hash_password
from poststelle.routing.console._auth import SECRET_FILE, SessionCodec, load_session_secret
from poststelle.routing.console._csrf import CsrfTokens
from poststelle.routing.hub.config import ConfigError, load_config


def test_the_config_takes_argon2_hashes_only(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text(
        '[console.accounts.olga]\npassword_hash = "hunter2"\nrole = "operator"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="not an argon2 hash"):
        load_config(file, environ={})
    digest = hash_password("a long enough password")
    file.write_text(
        f'[console.accounts.olga]\npassword_hash = "{digest}"\nrole = "operator"\n'
        f'[console.accounts.rudi]\npassword_hash = "{digest}"\n',
        encoding="utf-8",
    )
    console = load_config(file, environ={}).console
    assert {name: a.role for name, a in console.accounts.items()} == {
        "olga": "operator",
        "rudi": "read-only",  # the default: least rights
    }
    assert console.authenticate("olga", "a long enough password") is not None
    assert console.authenticate("olga", "a long enough passwort") is None
    assert console.authenticate("nobody", "a long enough password") is None
    file.write_text('[console]\nrole = "operator"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"console\.role"):
        load_config(file, environ={})


def test_a_session_cookie_holds_only_while_signed_and_fresh() -> None:
    codec = SessionCodec(b"k" * 32, lifetime=60)
    session, cookie = codec.issue("olga")
    assert codec.read(cookie) == session
    body, signature = cookie.split(".")
    assert codec.read(f"{body}x.{signature}") is None
    assert codec.read(f"{body}.{signature[:-2]}AA") is None
    assert codec.read(cookie + ".more") is None
    assert codec.read(None) is None
    assert SessionCodec(b"other key" * 4, lifetime=60).read(cookie) is None
    expired = SessionCodec(b"k" * 32, lifetime=-1)
    _, old = expired.issue("olga")
    assert codec.read(old) is None


def test_csrf_tokens_are_bound_to_their_session() -> None:
    tokens = CsrfTokens(b"s" * 32)
    token = tokens.token("session-a")
    assert tokens.matches("session-a", token)
    assert not tokens.matches("session-b", token)
    assert not tokens.matches("session-a", None)
    assert not tokens.matches("", tokens.token(""))
    # The cookie signature key and the CSRF key differ: a signature is never a token.
    codec = SessionCodec(b"s" * 32, lifetime=60)
    session, cookie = codec.issue("olga")
    assert not tokens.matches(session.session_id, cookie.split(".")[1])


def test_the_session_secret_is_made_once_per_data_folder(tmp_path: Path) -> None:
    first = load_session_secret(ConsoleConfig(), tmp_path)
    assert load_session_secret(ConsoleConfig(), tmp_path) == first
    assert len(first) == 64
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    configured = ConsoleConfig.model_validate({"session_secret": "c" * 40})
    assert load_session_secret(configured, tmp_path) == b"c" * 40
    with pytest.raises(ValueError, match="at least 32"):
        ConsoleConfig.model_validate({"session_secret": "short"})


def test_console_hash_password_reads_stdin_and_prints_a_config_section(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    started = time.monotonic()
    assert poststelle(["console-hash-password", "--name", "olga", "--role", "operator"]) == 0
    assert time.monotonic() - started < 10
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[console.accounts.olga]"
    assert out[2] == 'role = "operator"'
    digest = out[1].removeprefix('password_hash = "').removesuffix('"')
    assert digest.startswith("$argon2id$")
    assert PasswordHasher().verify(digest, "correct horse battery")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert poststelle(["console-hash-password"]) == 2


def test_the_documented_accounts_load(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text("utf-8")
    [block] = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    file = tmp_path / "hub.toml"
    file.write_text(block, encoding="utf-8")
    console = load_config(file, environ={}).console
    assert {name: a.role for name, a in console.accounts.items()} == {
        "olga": "operator",
        "rudi": "read-only",
    }
    # The placeholder hash is no hash: nobody logs in with the example as it stands.
    assert console.authenticate("olga", "") is None
