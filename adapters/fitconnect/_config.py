"""Connection settings of the FIT-Connect client (validated by pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

__all__ = ["FitConnectConnectionSettings"]


class FitConnectConnectionSettings(BaseModel):
    """Where and as whom to reach a Zustelldienst.

    ``submission_api_url`` is the API's base (the paths start with ``/v1``); ``token_url`` the
    OAuth 2 token endpoint (client credentials). The Zustelldienst signs its own events
    (``submit-submission``) with a key from ``service_jwks_url``, by default
    ``<submission_api_url>/.well-known/jwks.json``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    submission_api_url: HttpUrl
    token_url: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scope: str | None = None
    service_jwks_url: HttpUrl | None = None
    verify_tls: bool = True

    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)

    retry_attempts: int = Field(default=5, ge=1, le=50)
    retry_initial_wait: float = Field(default=0.5, ge=0)
    retry_max_wait: float = Field(default=30.0, ge=0)

    @property
    def base_url(self) -> str:
        return str(self.submission_api_url).rstrip("/")

    @property
    def jwks_url(self) -> str:
        return str(self.service_jwks_url or f"{self.base_url}/.well-known/jwks.json")
