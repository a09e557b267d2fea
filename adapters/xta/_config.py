"""Connection settings of the XTA client (validated by pydantic)."""

from __future__ import annotations

from pathlib import Path

from pydantic import HttpUrl, model_validator

from poststelle.adapters._retry import RemoteCallSettings
from poststelle.adapters.xta._schemas import PROJECT_WSDL

__all__ = ["XtaConnectionSettings"]


class XtaConnectionSettings(RemoteCallSettings):
    """Where and how to reach an XTA 2.1.1 server.

    ``service_url`` serves all three ports unless a port has its own URL. ``wsdl`` defaults to the
    project's WSDL; an operator may point it at the official ``XTA.wsdl`` instead. ``xsd_dir`` is
    the folder with the official XTA 2.1.1 schema set. TLS, timeouts and retries as for every
    remote service (:class:`RemoteCallSettings`).
    """

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
