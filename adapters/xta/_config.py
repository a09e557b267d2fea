"""Connection settings of the XTA client (validated by pydantic)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from poststelle.adapters.xta._schemas import PROJECT_WSDL

__all__ = ["XtaConnectionSettings"]


class XtaConnectionSettings(BaseModel):
    """Where and how to reach an XTA 2.1.1 server.

    ``service_url`` serves all three ports unless a port has its own URL. ``wsdl`` defaults to the
    project's WSDL; an operator may point it at the official ``XTA.wsdl`` instead. ``xsd_dir`` is
    the folder with the official XTA 2.1.1 schema set.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_url: HttpUrl
    management_url: HttpUrl | None = None
    send_url: HttpUrl | None = None
    msgbox_url: HttpUrl | None = None
    wsdl: Path = PROJECT_WSDL
    xsd_dir: Path

    # Mutual TLS: the client certificate identifies the account to the XTA server.
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_bundle: Path | None = None
    verify_tls: bool = True

    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)

    retry_attempts: int = Field(default=5, ge=1, le=50)
    retry_initial_wait: float = Field(default=0.5, ge=0)
    retry_max_wait: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _check_files(self) -> XtaConnectionSettings:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key given without client_cert")
        for name in ("wsdl", "client_cert", "client_key", "ca_bundle"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: file not found: {path}")
        if not self.xsd_dir.is_dir():
            raise ValueError(f"xsd_dir: folder not found: {self.xsd_dir}")
        return self

    def url_for(self, port: str) -> str:
        specific = {
            "ManagementPort": self.management_url,
            "SendXtaPort": self.send_url,
            "MsgBoxPort": self.msgbox_url,
        }[port]
        return str(specific or self.service_url)
