"""Connection settings of the FIT-Connect client (validated by pydantic)."""

from __future__ import annotations

from pydantic import Field, HttpUrl, SecretStr

from poststelle.adapters._retry import RemoteCallSettings

__all__ = ["FitConnectConnectionSettings"]


class FitConnectConnectionSettings(RemoteCallSettings):
    """Where and as whom to reach a Zustelldienst.

    ``submission_api_url`` is the API's base (the paths start with ``/v1``); ``token_url`` the
    OAuth 2 token endpoint (client credentials). The Zustelldienst signs its own events
    (``submit-submission``) with a key from ``service_jwks_url``, by default
    ``<submission_api_url>/.well-known/jwks.json``. TLS, timeouts and retries as for every
    remote service (:class:`RemoteCallSettings`).
    """

    submission_api_url: HttpUrl
    token_url: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scope: str | None = None
    service_jwks_url: HttpUrl | None = None

    @property
    def base_url(self) -> str:
        return str(self.submission_api_url).rstrip("/")

    @property
    def jwks_url(self) -> str:
        return str(self.service_jwks_url or f"{self.base_url}/.well-known/jwks.json")
