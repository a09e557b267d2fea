"""HTTPS on the intake: ``http.tls_certfile``/``tls_keyfile`` reach uvicorn; a certificate
made in the test (openssl) is served and verified, and plain HTTP gets no answer."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from poststelle.routing.hub.config import ConfigError, HubConfig, load_config
from poststelle.routing.hub.runtime import Hub
from tests.certificates import self_signed
from tests.messages import xbau_antrag


def _trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_the_intake_serves_https_with_the_configured_certificate(
    hub_config: HubConfig, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    config = hub_config.model_copy(
        update={
            "http": hub_config.http.model_copy(update={"tls_certfile": cert, "tls_keyfile": key})
        }
    )
    async with Hub(config) as hub:
        assert hub.http_url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(
            base_url=hub.http_url, verify=_trusting(cert), timeout=10
        ) as https:
            body, _ = xbau_antrag()
            accepted = await https.post(
                "/v1/submissions", content=body, headers={"Content-Type": "application/xml"}
            )
            assert accepted.status_code == 202, accepted.text
        # A client that does not trust the certificate refuses the connection ...
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=10) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get("/healthz")
        # ... and plain HTTP on the same port gets no HTTP answer.
        plain = hub.http_url.replace("https://", "http://")
        async with httpx.AsyncClient(base_url=plain, timeout=10) as http:
            with pytest.raises(httpx.HTTPError):
                response = await http.get("/healthz")
                response.raise_for_status()


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text('[http]\ntls_certfile = "cert.pem"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="tls_certfile and tls_keyfile go together"):
        load_config(file, environ={}, overrides={"data_dir": tmp_path})
