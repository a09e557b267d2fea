"""Fixtures for the contracts tests: the committed XBau messages, the corpus schema sets, and
a guard that fails any network access."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGES = Path(__file__).resolve().parent / "messages"
EXAMPLE_0200 = REPO_ROOT / "examples" / "xbau-antrag-0200.xml"


@pytest.fixture(scope="session")
def xbau_xsd_dir(corpus_dir: Path) -> Path:
    return corpus_dir / "xbau-2.6" / "xsd"


@pytest.fixture(scope="session")
def messages_dir() -> Path:
    return MESSAGES


@pytest.fixture(scope="session")
def example_0200() -> bytes:
    return EXAMPLE_0200.read_bytes()


@pytest.fixture(scope="session")
def registered_data_dir(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Path:
    """A data folder with the corpus' XBau and xdomea schema sets registered, once per session."""
    from poststelle.contracts.registry import ContractRegistry

    data_dir = tmp_path_factory.mktemp("data")
    registry = ContractRegistry.for_data_dir(data_dir)
    registry.add_schema_set(corpus_dir / "xbau-2.6" / "xsd")
    registry.add_schema_set(corpus_dir / "xdomea" / "schemes")
    return data_dir


@pytest.fixture(scope="session")
def inspector(registered_data_dir: Path) -> object:
    from poststelle.contracts.inspection import MessageInspector

    return MessageInspector(registered_data_dir)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every attempt to resolve a host name or open a connection fails, and is recorded."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
