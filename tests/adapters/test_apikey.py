"""API keys configured as digests (``sha256:<hex>``) or, warned about, in clear text; the
``hash-key`` command that makes a key and its digest."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from poststelle.adapters._apikey import hash_api_key, is_key_digest, key_digest, new_api_key
from poststelle.adapters.portal import create_portal_app
from poststelle.contracts.intake import Accepted
from poststelle.routing.hub.config import ConfigError, load_config
from tests import cli_runner

KIEL_KEY = new_api_key()
BAUAKTE_KEY = new_api_key()
XML = {"Content-Type": "application/xml"}


async def _publish(raw: bytes, **kwargs: Any) -> Accepted:
    return Accepted(case_id="case-1", message_id="m-1", duplicate=False, stream_sequence=1)


def _client(portals: dict[str, str], backends: dict[str, str]) -> httpx.AsyncClient:
    app = create_portal_app(
        _publish,
        max_body_bytes=1024,
        api_keys={name: SecretStr(key) for name, key in portals.items()},
        backend_keys={name: SecretStr(key) for name, key in backends.items()},
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal")


def test_digest_form() -> None:
    digest = hash_api_key("abc")
    assert digest == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert is_key_digest(digest)
    assert not is_key_digest("abc") and not is_key_digest("sha256:abc")
    assert key_digest(digest) == key_digest("abc") == hashlib.sha256(b"abc").digest()
    assert len(new_api_key()) == 43 and new_api_key() != new_api_key()


async def test_a_key_configured_as_its_digest_opens_the_intake(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="poststelle.adapters._apikey")
    async with _client(
        {"portal-kiel": hash_api_key(KIEL_KEY)}, {"kiel/bauakte": hash_api_key(BAUAKTE_KEY)}
    ) as client:
        accepted = await client.post(
            "/v1/submissions", content=b"<a/>", headers={**XML, "X-API-Key": KIEL_KEY}
        )
        assert accepted.status_code == 202, accepted.text
        # The digest itself is not a key: whoever reads the config cannot submit with it.
        for presented in (hash_api_key(KIEL_KEY), "guess", KIEL_KEY[:-1]):
            refused = await client.post(
                "/v1/submissions", content=b"<a/>", headers={**XML, "X-API-Key": presented}
            )
            assert refused.status_code == 401, presented
        # A back end's key names the back end, which may not submit.
        forbidden = await client.post(
            "/v1/submissions", content=b"<a/>", headers={**XML, "X-API-Key": BAUAKTE_KEY}
        )
        assert forbidden.status_code == 403
    assert "clear text" not in caplog.text


async def test_a_clear_text_key_still_works_but_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="poststelle.adapters._apikey")
    async with _client({"portal-kiel": KIEL_KEY, "portal-sh": hash_api_key("sh-key")}, {}) as c:
        accepted = await c.post(
            "/v1/submissions", content=b"<a/>", headers={**XML, "X-API-Key": KIEL_KEY}
        )
        assert accepted.status_code == 202
        assert (
            await c.post("/v1/submissions", content=b"<a/>", headers={**XML, "X-API-Key": "sh-key"})
        ).status_code == 202
    warned = [r.getMessage() for r in caplog.records if "clear text" in r.getMessage()]
    assert warned == [
        "api key in clear text holder=portal:portal-kiel remedy='put its digest in the config:"
        " poststelle hash-key --stdin'"
    ]
    assert KIEL_KEY not in caplog.text


def _config_file(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "hub.toml"
    file.write_text(text, encoding="utf-8")
    return file


def test_a_key_and_its_digest_for_two_holders_are_one_key(tmp_path: Path) -> None:
    file = _config_file(
        tmp_path,
        f'[http.api_keys]\nportal-kiel = "{KIEL_KEY}"\n\n'
        f'[[backends]]\ntenant = "kiel"\nname = "bauakte"\napi_key = "{hash_api_key(KIEL_KEY)}"\n',
    )
    with pytest.raises(ConfigError, match=r"backends\[0\]\.api_key is the same key as"):
        load_config(file, environ={}, overrides={"data_dir": tmp_path})


def test_a_malformed_digest_is_refused(tmp_path: Path) -> None:
    file = _config_file(tmp_path, '[http.api_keys]\nportal-kiel = "sha256:0123"\n')
    with pytest.raises(ConfigError, match="64 lower-case hex"):
        load_config(file, environ={}, overrides={"data_dir": tmp_path})


def _hash_key(argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from poststelle.routing.cli.security import register

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    output = io.StringIO()
    monkeypatch.setattr("sys.stdout", output)
    assert cli_runner.run(register, ["hash-key", *argv]) == 0
    return output.getvalue()


def test_hash_key_makes_a_key_whose_digest_loads_and_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = json.loads(_hash_key(["--json"], "", monkeypatch))
    assert made["digest"] == hash_api_key(made["key"])
    printed = _hash_key(["--name", "portal-kiel"], "", monkeypatch)
    line = next(row for row in printed.splitlines() if row.startswith("config:"))
    toml_line = line.split("]", 1)[1].strip()
    file = _config_file(tmp_path, f"[http.api_keys]\n{toml_line}\n")
    config = load_config(file, environ={}, overrides={"data_dir": tmp_path})
    digest = config.http.api_keys["portal-kiel"].get_secret_value()
    key = printed.split()[1]
    assert digest == hash_api_key(key)


def test_hash_key_from_stdin_prints_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    printed = _hash_key(["--stdin"], "an-existing-key-of-the-portal-0123456789\n", monkeypatch)
    assert "an-existing-key" not in printed
    assert hash_api_key("an-existing-key-of-the-portal-0123456789") in printed
