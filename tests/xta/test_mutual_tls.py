"""XTA over HTTPS with client certificates: the account is the certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from poststelle.adapters.xta._errors import XtaError
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator

from .conftest import AMT, HUB, make_settings


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(folder: Path, name: str, subject: str, ca: str, extensions: str = "") -> None:
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
        cwd=folder,
    )
    extra = ["-extfile", "ext.cnf"] if extensions else []
    if extensions:
        (folder / "ext.cnf").write_text(extensions)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        f"{name}.crt",
        *extra,
        cwd=folder,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make test certificates")
    folder = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
            "-days",
            "2",
            "-subj",
            f"/CN=Test {ca}",
            cwd=folder,
        )
    _issue(folder, "server", "/CN=xta.test", "ca", "subjectAltName=IP:127.0.0.1\n")
    _issue(folder, "client", "/CN=poststelle-hub", "ca")
    _issue(folder, "stranger", "/CN=someone-else", "other-ca")
    return Pki(
        *(
            folder / n
            for n in (
                "ca.crt",
                "server.crt",
                "server.key",
                "client.crt",
                "client.key",
                "stranger.crt",
                "stranger.key",
            )
        )
    )


@pytest.fixture
def tls_simulator(pki: Pki, xta_dir: Path) -> Iterator[XtaSimulator]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    with XtaSimulator(xsd_dir=xta_dir, tls=context) as simulator:
        simulator.create_mailbox(HUB.value)
        yield simulator


def test_client_certificate_opens_the_mailbox(
    tls_simulator: XtaSimulator, pki: Pki, xta_dir: Path
) -> None:
    assert tls_simulator.url.startswith("https://")
    put = tls_simulator.put(HUB.value, b"<nachricht/>", author=AMT)
    client = XtaClient(
        make_settings(
            tls_simulator,
            xta_dir,
            client_cert=pki.client_cert,
            client_key=pki.client_key,
            ca_bundle=pki.ca,
        )
    )
    try:
        assert client.check_account_active(HUB)
        assert [entry.message_id for entry in client.get_status_list(HUB).entries] == [put]
    finally:
        client.close_session()


@pytest.mark.parametrize("who", ["no certificate", "certificate of another CA"])
def test_server_refuses_clients_without_a_trusted_certificate(
    tls_simulator: XtaSimulator, pki: Pki, xta_dir: Path, who: str
) -> None:
    identity = (
        {}
        if who == "no certificate"
        else {"client_cert": pki.stranger_cert, "client_key": pki.stranger_key}
    )
    client = XtaClient(
        make_settings(tls_simulator, xta_dir, ca_bundle=pki.ca, retry_attempts=1, **identity)
    )
    try:
        with pytest.raises(XtaError):
            client.check_account_active(HUB)
    finally:
        client.close_session()


def test_client_refuses_a_server_it_does_not_trust(
    tls_simulator: XtaSimulator, pki: Pki, xta_dir: Path, tmp_path: Path
) -> None:
    client = XtaClient(
        make_settings(
            tls_simulator,
            xta_dir,
            client_cert=pki.client_cert,
            client_key=pki.client_key,
            ca_bundle=pki.stranger_cert,
            retry_attempts=1,
        )
    )
    try:
        with pytest.raises(XtaError):
            client.check_account_active(HUB)
    finally:
        client.close_session()
