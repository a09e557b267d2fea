"""Poll rounds survive what real XTA servers do: repeated status-list entries, messages gone
between list and fetch, a fault on one message; failures are logged with their text."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.adapters.xta.adapter import XtaAdapterConfig, XtaInboundAdapter, XtaParty
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator
from tests.integration.conftest import eventually

from .conftest import AMT, HUB, make_settings


class _Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(
        self, body: bytes, source_id: str, facts: dict[str, Any], attachments: Any
    ) -> None:
        self.ids.append(source_id)


def _poller(
    sim: XtaSimulator, xta_dir: Path, publish: _Recorder, *readers: str, interval: float = 30.0
) -> XtaInboundAdapter:
    config = XtaAdapterConfig(
        connection=make_settings(sim, xta_dir),
        readers=[XtaParty(identifier=r) for r in readers or (HUB.value,)],
        poll_interval=interval,
    )
    return XtaInboundAdapter(config, publish)


def _admin_fault(sim: XtaSimulator, **rule: object) -> None:
    # Over the simulator's admin API, as `poststelle xta-sim fault` does it.
    response = httpx.post(sim.url.removesuffix("/xta") + "/admin/faults", json=rule)
    assert response.status_code == 201, response.text


def _waiting(sim: XtaSimulator) -> list[str]:
    return [m.metadata.message_id for m in sim.mailbox(HUB.value)]


def test_duplicate_fault_repeats_status_list_entries(
    simulator: XtaSimulator, client: XtaClient
) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode()) for i in range(2)]
    _admin_fault(simulator, kind="duplicate", operation="getStatusList")
    listed = [e.message_id for e in client.get_status_list(HUB).entries]
    assert sorted(listed) == sorted(ids * 2)
    # The fault hit one call only.
    assert [e.message_id for e in client.get_status_list(HUB).entries] == ids


async def test_repeated_status_list_entries_are_taken_once(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode(), author=AMT) for i in range(2)]
    _admin_fault(simulator, kind="duplicate", operation="getStatusList")
    publish = _Recorder()
    result = await _poller(simulator, xta_dir, publish).poll_once()
    assert (result.received, result.skipped, result.failures) == (2, 2, [])
    assert publish.ids == ids
    assert simulator.calls("getMessage") == 2
    assert _waiting(simulator) == []


async def test_message_gone_before_fetch_is_skipped(
    simulator: XtaSimulator, xta_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode(), author=AMT) for i in range(2)]
    _admin_fault(simulator, kind="vanish", operation="getMessage")
    publish = _Recorder()
    with caplog.at_level(logging.INFO, logger="poststelle.adapters.xta.adapter"):
        result = await _poller(simulator, xta_dir, publish).poll_once()
    assert (result.received, result.skipped, result.failures) == (1, 1, [])
    assert publish.ids == [ids[1]]
    assert _waiting(simulator) == []
    [gone] = [r for r in caplog.records if "gone before it was fetched" in r.getMessage()]
    assert gone.xta_message_id == ids[0]  # type: ignore[attr-defined]
    assert gone.exc_info is None


async def test_fault_on_one_message_does_not_stop_the_others(
    simulator: XtaSimulator, xta_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode(), author=AMT) for i in range(3)]
    simulator.inject(
        FaultRule(
            "fault",
            operation="getMessage",
            exception="ParameterIsNotValidException",
            code="9020",
            reason="Nachricht beschädigt",
        )
    )
    publish = _Recorder()
    poller = _poller(simulator, xta_dir, publish)
    with caplog.at_level(logging.INFO, logger="poststelle.adapters.xta.adapter"):
        result = await poller.poll_once()
    assert result.received == 2
    [failure] = result.failures
    assert (failure.operation, failure.xta_message_id, failure.code) == (
        "getMessage",
        ids[0],
        "9020",
    )
    assert "Nachricht beschädigt" in failure.error
    assert publish.ids == ids[1:]
    assert _waiting(simulator) == [ids[0]]
    [line] = [r for r in caplog.records if "xta poll step failed" in r.getMessage()]
    assert line.levelno == logging.ERROR
    assert "Nachricht beschädigt" in line.getMessage() and ids[0] in line.getMessage()
    assert (line.reader, line.xta_message_id, line.code) == (HUB.value, ids[0], "9020")  # type: ignore[attr-defined]
    assert line.exc_info is None, "an XTA fault is explained by its text, not a traceback"

    # The next round retries what is still there.
    again = await poller.poll_once()
    assert (again.received, again.failures) == (1, [])
    assert publish.ids == [*ids[1:], ids[0]]
    assert _waiting(simulator) == []


async def test_failed_close_leaves_the_message_for_the_next_round(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode(), author=AMT) for i in range(2)]
    simulator.inject(
        FaultRule(
            "fault",
            operation="close",
            exception="ParameterIsNotValidException",
            code="9020",
            reason="close abgelehnt",
        )
    )
    publish = _Recorder()
    poller = _poller(simulator, xta_dir, publish)
    result = await poller.poll_once()
    assert result.received == 1
    assert [(f.operation, f.xta_message_id) for f in result.failures] == [("close", ids[0])]
    # Stored (the hub has it) but still in the mailbox; the other message went through.
    assert publish.ids == ids
    assert _waiting(simulator) == [ids[0]]

    again = await poller.poll_once()
    assert (again.received, again.failures) == (1, [])
    # Published a second time: the hub's dedupe recognises it.
    assert publish.ids == [*ids, ids[0]]
    assert _waiting(simulator) == []


async def test_unreadable_mailbox_does_not_stop_the_others(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    message_id = simulator.put(HUB.value, b"<m/>", author=AMT)
    publish = _Recorder()
    result = await _poller(simulator, xta_dir, publish, "dvdv:kein-konto", HUB.value).poll_once()
    assert result.received == 1
    [failure] = result.failures
    assert (failure.reader, failure.operation, failure.code) == (
        "dvdv:kein-konto",
        "getStatusList",
        "9012",
    )
    assert publish.ids == [message_id]


async def test_run_logs_failed_rounds_with_the_error_text(
    simulator: XtaSimulator, xta_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.inject(
        FaultRule(
            "fault",
            operation="getStatusList",
            exception="PermissionDeniedException",
            code="9011",
            reason="Account ist gesperrt.",
        )
    )
    publish = _Recorder()
    poller = _poller(simulator, xta_dir, publish, interval=0.05)
    with caplog.at_level(logging.INFO, logger="poststelle.adapters.xta.adapter"):
        task = asyncio.create_task(poller.run())
        try:
            await eventually(lambda: poller.health.last_error is not None)
            simulator.put(HUB.value, b"<m/>", author=AMT)
            await eventually(lambda: poller.health.received == 1 and poller.healthy)
        finally:
            poller.stop()
            await asyncio.wait_for(task, timeout=10)
    report = poller.health.report()
    assert "Account ist gesperrt." in str(report["last_error"])
    assert "code=9011" in str(report["last_error"])
    assert report["last_error_at"] is not None
    assert str(report["last_success"]) > str(report["last_error_at"])
    failed = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert failed, "the failed round is logged"
    assert all("Account ist gesperrt." in r.getMessage() for r in failed)


def test_retry_lines_carry_the_error_text(
    simulator: XtaSimulator, client: XtaClient, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.inject(FaultRule("fault", operation="getStatusList", reason="Server überlastet"))
    with caplog.at_level(logging.WARNING, logger="poststelle.adapters.xta.client"):
        client.get_status_list(HUB)
    [line] = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert "getStatusList" in line.getMessage() and "Server überlastet" in line.getMessage()


def test_vanish_applies_to_get_message_only() -> None:
    with pytest.raises(ValueError, match="getMessage"):
        FaultRule("vanish")
    assert FaultRule("vanish", operation="getMessage").times == 1
