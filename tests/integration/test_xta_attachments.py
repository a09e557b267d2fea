"""The attachments of an XTA ContentContainer (an XBau application's plans) through the hub:
claim-checked before the mailbox message is closed, referenced by the CaseEvent, written by
the file drop and readable by a webhook's back end, once, whatever the mailbox repeats."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poststelle.adapters.xta._model import Attachment
from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator
from poststelle.contracts.events import AttachmentRef, CaseEvent
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined, replay_quarantined
from poststelle.routing.streams.topology import ATTACHMENTS_BUCKET, INBOX
from tests.adapters.receiver import Receiver
from tests.integration.conftest import eventually, xta_simulator
from tests.integration.test_xta_inbound import _mailbox_settings
from tests.messages import xbau_antrag
from tests.xta.conftest import AMT, HUB

MiB = 1024 * 1024


def _pdf(size: int, label: str) -> bytes:
    """PDF-like bytes of ``size``: a PDF header and trailer around incompressible content."""
    head, tail = f"%PDF-1.7\n% {label}\n".encode(), b"\n%%EOF\n"
    return head + os.urandom(size - len(head) - len(tail)) + tail


def _plans() -> tuple[Attachment, ...]:
    return (
        Attachment(_pdf(8 * MiB, "Lageplan"), "application/pdf", "lageplan.pdf", "Lageplan"),
        Attachment(b"\x89PNG\r\n\x1a\n" + os.urandom(200_000), "image/png", "ansicht-nord.png"),
    )


@pytest.fixture(params=[False, True], ids=["inline", "mtom"])
def xta_sim(corpus_dir: Path, request: pytest.FixtureRequest) -> Iterator[XtaSimulator]:
    """Servers send the container's parts as base64 inside the SOAP body or as MTOM parts."""
    with xta_simulator(corpus_dir, mtom=request.param) as simulator:
        yield simulator


@pytest.fixture
def inline_sim(corpus_dir: Path) -> Iterator[XtaSimulator]:
    with xta_simulator(corpus_dir) as simulator:
        yield simulator


def _config(config: HubConfig, sim: XtaSimulator, corpus_dir: Path, **extra: Any) -> HubConfig:
    document = config.model_dump(mode="json")
    inbound = {"name": "xta-hub", "kind": "xta", "settings": _mailbox_settings(sim, corpus_dir)}
    document["inbound"] = [inbound]
    for section, values in extra.items():
        if isinstance(values, dict):
            document[section] = {**document.get(section, {}), **values}
        else:
            document[section] = values
    return HubConfig.model_validate(document)


def _folder(hub: Hub) -> Path:
    folder: Path = hub.workers[0].backend.folder  # type: ignore[attr-defined]
    return folder


def _delivered(hub: Hub) -> list[CaseEvent]:
    return [CaseEvent.model_validate_json(p.read_bytes()) for p in _folder(hub).glob("*.json")]


def _container_refs(event: CaseEvent, plans: tuple[Attachment, ...]) -> list[AttachmentRef]:
    """The claim-checked container files (the XBau body also names them, as references)."""
    names = {plan.filename for plan in plans}
    return [ref for ref in event.data.attachments if ref.name in names and ref.kind == "inline"]


def _assert_refs(event: CaseEvent, plans: tuple[Attachment, ...]) -> None:
    refs = _container_refs(event, plans)
    assert [(r.name, r.media_type, r.kind) for r in refs] == [
        (p.filename, p.content_type, "inline") for p in plans
    ]
    for ref, plan in zip(refs, plans, strict=True):
        digest = hashlib.sha256(plan.content).hexdigest()
        assert (ref.size, ref.sha256) == (len(plan.content), digest)
        assert ref.ref == f"{ATTACHMENTS_BUCKET}/{event.data.case_id}/{digest}"


async def _case_objects(hub: Hub, case_id: str) -> list[str]:
    store = await hub.js.object_store(ATTACHMENTS_BUCKET)
    return sorted(info.name for info in await store.list() if info.name.startswith(case_id))


async def test_container_attachments_reach_the_file_drop_byte_identical(
    hub_config: HubConfig, xta_sim: XtaSimulator, corpus_dir: Path
) -> None:
    body, nachrichten_uuid = xbau_antrag()
    plans = _plans()
    xta_sim.put(HUB.value, body, author=AMT, attachments=plans)
    async with Hub(_config(hub_config, xta_sim, corpus_dir)) as hub:
        [event] = await eventually(lambda: _delivered(hub), within=45)
        await eventually(lambda: xta_sim.mailbox(HUB.value) == [])
        objects = await _case_objects(hub, event.data.case_id)
    assert event.data.nachrichten_uuid == nachrichten_uuid
    _assert_refs(event, plans)
    files = _folder(hub) / f"{event.data.case_id}.files"
    for plan in plans:
        assert plan.filename is not None
        assert (files / plan.filename).read_bytes() == plan.content
    assert len(objects) == len(plans)


async def test_a_webhook_back_end_reads_the_attachments_by_their_refs(
    hub_config: HubConfig, inline_sim: XtaSimulator, corpus_dir: Path, receiver: Receiver
) -> None:
    body, _ = xbau_antrag()
    plans = _plans()
    inline_sim.put(HUB.value, body, author=AMT, attachments=plans)
    config = _config(
        hub_config,
        inline_sim,
        corpus_dir,
        backends=[receiver.backend("stadt-kiel", "fachverfahren")],
        routes=[{"standard": "xbau", "tenant": "stadt-kiel", "backend": "fachverfahren"}],
    )
    async with Hub(config) as hub:
        [(_, delivered)] = await eventually(lambda: list(receiver.received), within=45)
        event = CaseEvent.model_validate_json(delivered)
        _assert_refs(event, plans)
        # As with /antrag: the back end reads each ref from the hub's object store.
        store = await hub.js.object_store(ATTACHMENTS_BUCKET)
        for ref, plan in zip(_container_refs(event, plans), plans, strict=True):
            fetched = await store.get(ref.ref.removeprefix(f"{ATTACHMENTS_BUCKET}/"))
            assert fetched.data == plan.content


async def test_a_crash_while_storing_attachments_leaves_the_message_in_the_mailbox(
    hub_config: HubConfig,
    inline_sim: XtaSimulator,
    corpus_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first plan stored, the second not (the hub died in between): nothing was
    published, so nothing was closed; the next round fetches the message again and it
    becomes one case with each plan once."""
    stored = Hub.store_attachment
    calls: list[str] = []

    async def dies_on_the_second(self: Hub, name: str, content: bytes) -> None:
        calls.append(name)
        if len(calls) == 2:
            raise ConnectionError("hub died while storing an attachment")
        await stored(self, name, content)

    monkeypatch.setattr(Hub, "store_attachment", dies_on_the_second)
    body, _ = xbau_antrag()
    plans = _plans()
    inline_sim.put(HUB.value, body, author=AMT, attachments=plans)
    async with Hub(_config(hub_config, inline_sim, corpus_dir)) as hub:
        [event] = await eventually(lambda: _delivered(hub), within=45)
        await eventually(lambda: inline_sim.mailbox(HUB.value) == [])
        objects = await _case_objects(hub, event.data.case_id)
        inbox = (await hub.js.stream_info(INBOX)).state.messages
    # Fetched twice, closed once, stored once: the first plan was found stored already.
    assert inline_sim.calls("getMessage") >= 2
    assert inline_sim.calls("close") == 1
    assert len(calls) >= 3 and calls[0] == calls[2]
    assert inbox == 1
    assert len(objects) == len(plans)
    _assert_refs(event, plans)
    files = _folder(hub) / f"{event.data.case_id}.files"
    assert sorted(p.name for p in files.iterdir()) == sorted(str(p.filename) for p in plans)


async def test_a_message_the_mailbox_delivers_again_stays_one_case(
    hub_config: HubConfig, inline_sim: XtaSimulator, corpus_dir: Path
) -> None:
    """Stored, then closed, but the server kept the message (at-least-once): the refetch is
    a duplicate with the same references, and the case keeps its two plans once."""
    inline_sim.inject(FaultRule("duplicate", operation="close"))
    body, _ = xbau_antrag()
    plans = _plans()
    inline_sim.put(HUB.value, body, author=AMT, attachments=plans)
    async with Hub(_config(hub_config, inline_sim, corpus_dir)) as hub:
        await eventually(lambda: inline_sim.mailbox(HUB.value) == [], within=45)
        await eventually(lambda: hub.counters.get("intake.duplicate") == 1)
        [event] = await eventually(lambda: _delivered(hub), within=45)
        objects = await _case_objects(hub, event.data.case_id)
        inbox = (await hub.js.stream_info(INBOX)).state.messages
    assert inline_sim.calls("close") == 2
    assert inbox == 1
    assert len(objects) == len(plans)
    _assert_refs(event, plans)


async def test_attachments_over_the_limit_are_kept_and_quarantined_too_large(
    hub_config: HubConfig, inline_sim: XtaSimulator, corpus_dir: Path
) -> None:
    """A small message whose plans take it over ``intake.max_message_bytes``: kept whole
    (the plans in the store), parked as ``too-large`` naming the largest plan, closed at the
    mailbox; replayed once the limit is raised, it is delivered with both plans."""
    body, _ = xbau_antrag()
    plans = (
        Attachment(_pdf(700_000, "Lageplan"), "application/pdf", "lageplan.pdf"),
        Attachment(_pdf(600_000, "Ansicht"), "application/pdf", "ansicht.pdf"),
    )
    inline_sim.put(HUB.value, body, author=AMT, attachments=plans)
    limited = _config(hub_config, inline_sim, corpus_dir, intake={"max_message_bytes": MiB})
    async with Hub(limited) as hub:
        [parked] = await eventually(lambda: list_quarantined(hub.js), within=45)
        await eventually(lambda: inline_sim.mailbox(HUB.value) == [])
        objects = await _case_objects(hub, parked.case_id)
        assert _delivered(hub) == []
    assert (parked.step, parked.reason) == ("parse", "too-large")
    assert "2 attachments" in parked.detail and "'lageplan.pdf', 700000 bytes" in parked.detail
    assert f"the limit is {MiB} bytes" in parked.detail
    assert len(objects) == len(plans)

    async with Hub(_config(hub_config, inline_sim, corpus_dir)) as hub:
        assert (await replay_quarantined(hub.js, reason="too-large")).replayed == [parked.sequence]
        [event] = await eventually(lambda: _delivered(hub), within=45)
    assert event.data.case_id == parked.case_id
    _assert_refs(event, plans)
    files = _folder(hub) / f"{event.data.case_id}.files"
    for plan in plans:
        assert (files / str(plan.filename)).read_bytes() == plan.content
