"""Real sizes end to end: bodies up to the 40 MB limit pass a nats-server with NATS' default
``max_payload`` (1 MiB) by claim check, are delivered to the file drop with their attachments
byte for byte, and anything over the limit is refused (HTTP) or kept in quarantine (XTA)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.contracts.envelope import (
    H_BODY_REF,
    H_BODY_SHA256,
    H_BODY_SIZE,
    H_CASE_ID,
    H_CHANNEL,
    H_MSG_ID,
    inbox_subject,
)
from poststelle.contracts.events import CaseEvent
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined, replay_quarantined
from poststelle.routing.streams.topology import ATTACHMENTS_BUCKET, AUDIT, CASES, INBOX, QUARANTINE
from tests.integration.conftest import eventually, xta_simulator
from tests.messages import xbau_antrag, xbau_antrag_with_files
from tests.xta.conftest import AMT, HUB

XML = {"Content-Type": "application/xml"}
DEFAULT_MAX_PAYLOAD = 1024 * 1024
# Six plans of 4.9 MB: 39.2 MB of XML once base64-encoded, under the 40 MB default limit.
PLAN_SIZES = (4_900_000,) * 6
# One site plan of 14.5 MB beside four of 3.7 MB: the large one's base64 (19.3 MB) is far
# over libxml2's 10 MB text-node ceiling, as a scanned plan in a real application is.
LARGE_PLAN_SIZES = (14_500_000,) + (3_700_000,) * 4


def _plans(sizes: tuple[int, ...] = PLAN_SIZES) -> list[tuple[str, bytes]]:
    return [(f"bauvorlage-{index}.pdf", os.urandom(size)) for index, size in enumerate(sizes, 1)]


def _with(config: HubConfig, **sections: dict[str, Any]) -> HubConfig:
    data = config.model_dump()
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return HubConfig.model_validate(data)


def _validating(config: HubConfig, corpus_dir: Path) -> HubConfig:
    ContractRegistry.for_data_dir(config.data_dir).add_schema_set(corpus_dir / "xbau-2.6" / "xsd")
    return config


def _folder(hub: Hub) -> Path:
    folder: Path = hub.workers[0].backend.folder  # type: ignore[attr-defined]
    return folder


def _delivered(hub: Hub, case_id: str) -> CaseEvent | None:
    path = _folder(hub) / f"{case_id}.json"
    return CaseEvent.model_validate_json(path.read_bytes()) if path.exists() else None


async def _messages(hub: Hub, stream: str) -> int:
    return (await hub.js.stream_info(stream)).state.messages


async def _largest_message(hub: Hub, stream: str) -> int:
    """The largest stored message (data plus headers, roughly) of ``stream``."""
    info = await hub.js.stream_info(stream)
    largest = 0
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await hub.js.get_msg(stream, sequence)
        headers = sum(len(k) + len(v) for k, v in (raw.headers or {}).items())
        largest = max(largest, len(raw.data or b"") + headers)
    return largest


def _assert_files_identical(hub: Hub, event: CaseEvent, plans: list[tuple[str, bytes]]) -> None:
    files = _folder(hub) / f"{event.data.case_id}.files"
    for name, content in plans:
        written = (files / name).read_bytes()
        assert written == content, name
    inline = {a.name: a for a in event.data.attachments if a.kind == "inline"}
    assert set(inline) == {name for name, _ in plans}
    for name, content in plans:
        assert inline[name].sha256 == hashlib.sha256(content).hexdigest()
        assert inline[name].size == len(content)


async def _assert_every_publish_fits(hub: Hub) -> None:
    assert hub.nc is not None and hub.nc.max_payload == DEFAULT_MAX_PAYLOAD
    for stream in (INBOX, CASES, AUDIT, "KV_cases"):
        assert await _largest_message(hub, stream) < DEFAULT_MAX_PAYLOAD, stream


@pytest.mark.slow
@pytest.mark.parametrize("sizes", [PLAN_SIZES, LARGE_PLAN_SIZES], ids=["six-plans", "one-large"])
async def test_39_mb_application_over_http_is_delivered_byte_identical(
    hub_config: HubConfig, corpus_dir: Path, sizes: tuple[int, ...]
) -> None:
    plans = _plans(sizes)
    body, nachrichten_uuid = xbau_antrag_with_files(plans)
    assert 39_000_000 < len(body) < 41_943_040
    async with (
        Hub(_validating(hub_config, corpus_dir)) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=60.0) as http,
    ):
        started = time.monotonic()
        response = await http.post("/v1/submissions", content=body, headers=XML)
        accepted = time.monotonic() - started
        assert response.status_code == 202, response.text
        case_id = response.json()["case_id"]
        event = await eventually(lambda: _delivered(hub, case_id), within=45)
        total = time.monotonic() - started
        again = await http.post("/v1/submissions", content=body, headers=XML)
        [inbox] = [await hub.js.get_msg(INBOX, 1)]
        await _assert_every_publish_fits(hub)
    print(f"39 MB over HTTP: accepted in {accepted:.1f} s, delivered in {total:.1f} s")
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert event.data.nachrichten_uuid == nachrichten_uuid
    # INBOX holds the reference, the object store the bytes; the event points at them.
    assert inbox.data in (None, b"")
    assert inbox.headers is not None and int(inbox.headers[H_BODY_SIZE]) == len(body)
    assert event.data.original is not None
    assert event.data.original.ref == inbox.headers[H_BODY_REF]
    assert event.data.original.ref.startswith(f"{ATTACHMENTS_BUCKET}/messages/")
    assert event.data.original.sha256 == hashlib.sha256(body).hexdigest()
    _assert_files_identical(hub, event, plans)


@pytest.fixture(params=[False, True], ids=["inline", "mtom"])
def xta_sim(corpus_dir: Path, request: pytest.FixtureRequest) -> Iterator[XtaSimulator]:
    """Servers send the container as base64 inside the SOAP body or as an MTOM part."""
    with xta_simulator(corpus_dir, mtom=request.param) as simulator:
        yield simulator


def _with_mailbox(config: HubConfig, sim: XtaSimulator, corpus_dir: Path) -> HubConfig:
    settings = {
        "connection": {
            "service_url": sim.url,
            "xsd_dir": str(corpus_dir / "xta-2.1.1"),
            "retry_attempts": 2,
            "retry_initial_wait": 0.01,
            "retry_max_wait": 0.05,
        },
        "readers": [{"identifier": HUB.value}],
        "poll_interval": 0.1,
    }
    inbound = {"name": "xta-hub", "kind": "xta", "settings": settings}
    return HubConfig.model_validate({**config.model_dump(), "inbound": [inbound]})


@pytest.mark.slow
async def test_39_mb_application_through_xta_is_delivered_byte_identical(
    hub_config: HubConfig, xta_sim: XtaSimulator, corpus_dir: Path
) -> None:
    plans = _plans()
    body, nachrichten_uuid = xbau_antrag_with_files(plans)
    config = _with_mailbox(_validating(hub_config, corpus_dir), xta_sim, corpus_dir)
    started = time.monotonic()
    xta_sim.put(HUB.value, body, author=AMT)
    async with Hub(config) as hub:
        await eventually(lambda: xta_sim.mailbox(HUB.value) == [], within=45)
        closed = time.monotonic() - started
        [event] = await eventually(
            lambda: [e for p in _folder(hub).glob("*.json") if (e := _delivered(hub, p.stem))],
            within=45,
        )
        total = time.monotonic() - started
        await _assert_every_publish_fits(hub)
    mode = "mtom" if xta_sim.mtom else "inline"
    print(f"39 MB through XTA ({mode}): closed in {closed:.1f} s, delivered in {total:.1f} s")
    assert event.data.origin.channel == "xta"
    assert event.data.nachrichten_uuid == nachrichten_uuid
    assert event.data.original is not None and event.data.original.size == len(body)
    _assert_files_identical(hub, event, plans)


async def test_body_over_the_limit_is_refused_with_413_and_nothing_stored(
    hub_config: HubConfig,
) -> None:
    """The HTTP intake's own limit and the intake's message limit both answer 413 before
    a byte reaches INBOX or the object store."""
    config = _with(hub_config, intake={"max_message_bytes": 1024 * 1024})
    body, _ = xbau_antrag_with_files([("gross.pdf", os.urandom(900_000))])
    assert len(body) > 1024 * 1024
    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        refused = await http.post("/v1/submissions", content=body, headers=XML)
        oversized = b" " * (hub_config.http.max_body_bytes + 1)
        too_long = await http.post("/v1/submissions", content=oversized, headers=XML)
        inbox = await _messages(hub, INBOX)
        objects = await _messages(hub, f"OBJ_{ATTACHMENTS_BUCKET}")
    for response in (refused, too_long):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert refused.json()["limit"] == 1024 * 1024
    assert inbox == 0
    assert objects == 0


async def test_xta_message_over_the_limit_is_quarantined_closed_and_replayable(
    hub_config: HubConfig, xta_sim: XtaSimulator, corpus_dir: Path
) -> None:
    """A mailbox message cannot get a 413: it is kept by its claim check, parked as
    ``too-large`` with the reference (not the bytes), and closed; after the operator raises
    the limit, ``quarantine replay`` delivers it."""
    plans = [("lageplan.pdf", os.urandom(900_000))]
    body, _ = xbau_antrag_with_files(plans)
    xta_sim.put(HUB.value, body, author=AMT)
    limited = _with(hub_config, intake={"max_message_bytes": 1024 * 1024})
    async with Hub(_with_mailbox(limited, xta_sim, corpus_dir)) as hub:
        [parked] = await eventually(lambda: list_quarantined(hub.js))
        await eventually(lambda: xta_sim.mailbox(HUB.value) == [])
        record = await hub.js.get_msg(QUARANTINE, parked.sequence)
    assert (parked.step, parked.reason) == ("parse", "too-large")
    assert parked.size == len(body)
    assert parked.body_ref is not None
    assert record.data in (None, b"")
    assert record.headers is not None and record.headers[H_BODY_REF] == parked.body_ref

    async with Hub(hub_config) as hub:  # the limit raised back to 40 MB
        assert (await replay_quarantined(hub.js, reason="too-large")).replayed == [parked.sequence]
        event = await eventually(lambda: _delivered(hub, parked.case_id))
        assert await list_quarantined(hub.js) == []
    _assert_files_identical(hub, event, plans)


async def test_missing_claim_checked_body_is_quarantined_with_a_reason(hub: Hub) -> None:
    case_id = str(uuid.uuid4())
    await hub.js.publish(
        inbox_subject("portal", "http"),
        b"",
        headers={
            H_MSG_ID: f"portal:{case_id}",
            H_CHANNEL: "portal",
            H_CASE_ID: case_id,
            H_BODY_REF: f"{ATTACHMENTS_BUCKET}/messages/{'0' * 64}",
            H_BODY_SIZE: "700000",
            H_BODY_SHA256: "0" * 64,
        },
    )
    [parked] = await eventually(lambda: list_quarantined(hub.js))
    assert (parked.case_id, parked.step, parked.reason) == (case_id, "intake", "body-missing")
    assert "not found" in parked.detail
    assert parked.body_ref == f"{ATTACHMENTS_BUCKET}/messages/{'0' * 64}"


@pytest.mark.slow
async def test_many_attachments_keep_every_publish_under_the_default_max_payload(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    """A thousand attachments: the body is claim-checked, and the CaseEvent (one reference
    per attachment), its audit hops and the case registry entry still fit 1 MiB."""
    plans = [(f"nachweis-{index}.pdf", os.urandom(200)) for index in range(1000)]
    body, _ = xbau_antrag_with_files(plans)
    response = await http.post("/v1/submissions", content=body, headers=XML)
    assert response.status_code == 202, response.text
    event = await eventually(lambda: _delivered(hub, response.json()["case_id"]), within=30)
    await _assert_every_publish_fits(hub)
    _assert_files_identical(hub, event, plans)


async def test_small_body_travels_inline(hub: Hub, http: httpx.AsyncClient) -> None:
    body, _ = xbau_antrag()
    response = await http.post("/v1/submissions", content=body, headers=XML)
    event = await eventually(lambda: _delivered(hub, response.json()["case_id"]))
    inbox = await hub.js.get_msg(INBOX, 1)
    assert inbox.data == body
    assert H_BODY_REF not in (inbox.headers or {})
    assert event.data.original is not None and event.data.original.ref == f"stream:{INBOX}/1"
