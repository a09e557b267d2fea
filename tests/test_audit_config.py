"""``poststelle audit-config``: each insecure setting is named with its remedy, a secure
config passes, and the exit code tells which (0 clean, 3 warnings, 2 unusable config)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from poststelle.adapters._apikey import hash_api_key, new_api_key
from poststelle.routing.cli.security import EXIT_WARNINGS, audit
from poststelle.routing.console import hash_password
from poststelle.routing.hub.config import load_config

SECRET = new_api_key()

INSECURE = f"""
[nats]
url = "nats://hub:s3cret@nats.land.example:4222"
leaf_remotes = ["nats-leaf://peer.by.example:7422"]
leaf_listen_port = 7422

[http]
host = "0.0.0.0"
callback_url = "http://portal.example/status"

[http.api_keys]
portal-kiel = "short-key"

[[backends]]
tenant = "kiel"
name = "bauakte"
kind = "webhook"
settings = {{ url = "http://bauakte.kiel.example/hook", secret = "x" }}

[[backends]]
tenant = "kiel"
name = "dms"
kind = "webhook"
settings = {{ url = "https://dms.kiel.example/hook", secret = "{SECRET}" }}
api_key = "{new_api_key()}"
"""

SECURE = f"""
[nats]
url = "tls://nats.land.example:4222"
nkey_seed = "/etc/poststelle/hub.nk"

[http]
host = "0.0.0.0"
tls_certfile = "/etc/poststelle/cert.pem"
tls_keyfile = "/etc/poststelle/key.pem"
callback_url = "https://portal.example/status"
callback_secret = "{new_api_key()}"

[http.api_keys]
portal-kiel = "{hash_api_key(new_api_key())}"

[[backends]]
tenant = "kiel"
name = "dms"
kind = "webhook"
settings = {{ url = "https://dms.kiel.example/hook", secret = "{SECRET}" }}
api_key = "{hash_api_key(new_api_key())}"
"""


def _file(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "hub.toml"
    file.write_text(text, encoding="utf-8")
    return file


def test_every_insecure_setting_is_named(tmp_path: Path) -> None:
    config = load_config(_file(tmp_path, INSECURE), environ={}, demo=False)
    found = {(f.setting, f.problem.split(":")[0]) for f in audit(config)}
    settings = sorted(setting for setting, _ in found)
    assert settings == sorted(
        [
            "http.api_keys.portal-kiel",  # clear text
            "http.api_keys.portal-kiel",  # short
            "backends[1].api_key",  # clear text
            "http.tls_certfile",
            "http.callback_url",
            "http.callback_secret",
            "backends[0].settings.url",
            "backends[0].settings.secret",
            "nats.url",
            "nats.leaf_listen_port",
            "nats.leaf_remotes",
        ]
    ), found
    assert all(f.remedy for f in audit(config))
    # Keys are named, never printed.
    assert not any("short-key" in f.problem + f.remedy for f in audit(config))


def test_an_open_intake_on_the_network_is_named(tmp_path: Path) -> None:
    config = load_config(_file(tmp_path, '[http]\nhost = "0.0.0.0"\n'), environ={}, demo=False)
    assert {f.setting for f in audit(config)} == {"http.api_keys", "http.tls_certfile"}


def test_console_logins_over_plain_http_on_the_network_are_named(tmp_path: Path) -> None:
    accounts = f'[console.accounts.olga]\npassword_hash = "{hash_password("a password")}"\n'
    exposed = '[http]\nhost = "0.0.0.0"\n[http.api_keys]\n'
    exposed += f'portal-kiel = "{hash_api_key(new_api_key())}"\n'
    plain = load_config(_file(tmp_path, exposed + accounts), environ={}, demo=False)
    assert {f.setting for f in audit(plain)} == {"http.tls_certfile", "console.secure_cookies"}
    proxied = exposed + accounts + "[console]\nsecure_cookies = true\n"
    behind_tls = load_config(_file(tmp_path, proxied), environ={}, demo=False)
    assert {f.setting for f in audit(behind_tls)} == {"http.tls_certfile"}
    local = load_config(_file(tmp_path, accounts), environ={}, demo=False)
    assert audit(local) == []


def test_a_secure_config_and_the_loopback_default_pass(tmp_path: Path) -> None:
    assert audit(load_config(_file(tmp_path, SECURE), environ={}, demo=False)) == []
    assert audit(load_config(environ={}, overrides={"data_dir": tmp_path})) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poststelle.routing.cli", "audit-config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("text", "code"), [(INSECURE, EXIT_WARNINGS), (SECURE, 0), ("[http]\nport = -1\n", 2)]
)
def test_the_exit_code_tells_the_outcome(tmp_path: Path, text: str, code: int) -> None:
    result = _cli("--config", str(_file(tmp_path, text)))
    assert result.returncode == code, result.stdout + result.stderr
    if code == EXIT_WARNINGS:
        assert "warning: nats.url: the NATS URL for nats.land.example holds a password" in (
            result.stdout
        )
        assert "  remedy: use nkeys" in result.stdout
        assert "s3cret" not in result.stdout
    if code == 0:
        assert "no insecure settings found" in result.stdout


def test_json_output(tmp_path: Path) -> None:
    result = _cli("--config", str(_file(tmp_path, INSECURE)), "--json")
    findings = json.loads(result.stdout)
    assert {"setting", "problem", "remedy"} == set(findings[0])
    assert result.returncode == EXIT_WARNINGS


def test_run_logs_the_same_findings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from poststelle.routing.cli.security import log_insecure_settings

    config = load_config(_file(tmp_path, INSECURE), environ={}, demo=False)
    caplog.set_level("WARNING", logger="poststelle.routing.cli.security")
    assert log_insecure_settings(config) == len(audit(config))
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == len(audit(config))
    assert any(m.startswith("insecure setting nats.url:") for m in logged)


def test_authenticated_leaf_links_are_not_reported(tmp_path: Path) -> None:
    text = """
[nats]
leaf_listen_port = 7422
leaf_remotes = ["nats-leaf://peer.by.example:7422"]
auth_file = "/etc/poststelle/nats-auth.conf"
nkey_seed = "/etc/poststelle/hub.nk"
leaf_nkey_seed = "/etc/poststelle/leaf-sh.nk"
"""
    config = load_config(_file(tmp_path, text), environ={}, demo=False)
    assert audit(config) == []


def test_an_auth_file_wants_the_hub_s_seed(tmp_path: Path) -> None:
    from poststelle.routing.hub.config import ConfigError

    text = '[nats]\nauth_file = "/etc/poststelle/nats-auth.conf"\n'
    with pytest.raises(ConfigError, match="set nkey_seed"):
        load_config(_file(tmp_path, text), environ={}, demo=False)
