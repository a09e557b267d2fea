"""The reply path of a FIT-Connect case: a back end's answer goes to the sender as a reply
submission in the same FIT-Connect case when the sender offered its destination as reply
channel, sent once however often the answer worker tries; otherwise it is only recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.errors import RetryableDeliveryError
from poststelle.adapters.fitconnect import (
    FitConnectClient,
    decrypt,
    send_submission,
)
from poststelle.adapters.fitconnect.adapter import FitConnectAdapter, FitConnectSettings
from poststelle.adapters.fitconnect.simulator import (
    FaultRule,
    FitConnectSimulator,
    SimulatedDestination,
)
from poststelle.adapters.testing import RecordingPublisher
from poststelle.contracts.events import CaseEvent
from poststelle.contracts.replies import Answer
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from tests.fitconnect.conftest import (
    LEIKA,
    SERVICE,
    XBAU_SCHEMA_URI,
    DestinationKeys,
    adapter_settings,
    connection,
)
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

STATUS = {"kind": "status", "vorgang": "BA-2026-00417", "antrag_vollstaendig": True}


def _config(
    config: HubConfig,
    sim: FitConnectSimulator,
    destination: SimulatedDestination,
    keys: DestinationKeys,
    metadata_schema: Path,
) -> HubConfig:
    settings = adapter_settings(sim, destination, keys, config.data_dir / "keys", metadata_schema)
    client_id, secret = sim.add_client("sender")
    settings["reply_connection"] = {
        **settings["connection"],
        "client_id": client_id,
        "client_secret": secret,
    }
    inbound = {"name": "fitconnect-amt", "kind": "fitconnect", "settings": settings}
    return HubConfig.model_validate({**config.model_dump(), "inbound": [inbound]})


def _delivered(hub: Hub) -> list[CaseEvent]:
    folder = hub.workers[0].backend.folder  # type: ignore[attr-defined]
    return [CaseEvent.model_validate_json(p.read_bytes()) for p in folder.glob("*.json")]


async def _answered(hub: Hub, case_id: str) -> list[Any] | None:
    assert hub.audit is not None
    entries = await hub.audit.read(case_id)
    answered = [e for e in entries if e.hop == "answered"]
    return answered or None


async def _send(
    sender: FitConnectClient, destination: SimulatedDestination, reply_channel: dict[str, Any]
) -> tuple[str, str]:
    body, nachrichten_uuid = xbau_antrag()
    sent = await send_submission(
        sender,
        destination.destination_id,
        service=SERVICE,
        data=body,
        schema_uri=XBAU_SCHEMA_URI,
        mime_type="application/xml",
        reply_channel=reply_channel,
    )
    return sent.case_id, nachrichten_uuid


async def test_answer_goes_back_as_a_reply_submission_in_the_same_case(
    hub_config: HubConfig,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
    metadata_schema: Path,
) -> None:
    # The sending authority's own destination, where it takes answers.
    portal = fc_sim.add_destination(
        destination_keys.encryption.public,
        destination_keys.signature.public,
        services=[{"identifier": LEIKA, "regions": []}],
    )
    fit_case, nachrichten_uuid = await _send(
        sender, destination, {"fitConnect": {"destinationId": portal.destination_id}}
    )
    async with Hub(
        _config(hub_config, fc_sim, destination, destination_keys, metadata_schema)
    ) as hub:
        [event] = await eventually(lambda: _delivered(hub))
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http:
            path = f"/v1/cases/{event.data.case_id}/events"
            response = await http.post(path, json=STATUS)
            assert response.status_code == 202, response.text
        [answered] = await eventually(lambda: _answered(hub, event.data.case_id))
    assert answered.detail["outcome"] == "sent"
    assert answered.detail["fitconnect_case_id"] == fit_case

    credentials = fc_sim.add_client("subscriber", (portal.destination_id,))
    async with FitConnectClient(connection(fc_sim, credentials)) as inbox:
        [reply] = await inbox.list_submissions(portal.destination_id)
        assert reply["caseId"] == fit_case
        assert reply["submissionId"] == answered.detail["fitconnect_submission_id"]
        fetched = await inbox.submission(reply["submissionId"])
    quittung = etree.fromstring(
        decrypt(fetched["encryptedData"], destination_keys.encryption.key, what="data")
    )
    # XBau in, XBau out: the formal check is an XBau 0201 about the message that came.
    assert etree.QName(quittung).localname == "baugenehmigung.formellePruefung.0201"
    reference = quittung.find(".//{*}bezugNachricht/{*}nachrichtenUUID")
    assert reference is not None and reference.text == nachrichten_uuid


async def test_answer_without_a_fitconnect_reply_channel_is_recorded(
    hub_config: HubConfig,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
    metadata_schema: Path,
) -> None:
    await _send(sender, destination, {"eMail": {"address": "antragsteller@example.org"}})
    async with Hub(
        _config(hub_config, fc_sim, destination, destination_keys, metadata_schema)
    ) as hub:
        [event] = await eventually(lambda: _delivered(hub))
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http:
            path = f"/v1/cases/{event.data.case_id}/events"
            response = await http.post(path, json=STATUS)
            assert response.status_code == 202, response.text
        [answered] = await eventually(lambda: _answered(hub, event.data.case_id))
    assert answered.detail["outcome"] == "no-fitconnect-reply-channel"
    assert answered.detail["offered"] == ["eMail"]
    assert fc_sim.calls("announce") == 1  # the sender's submission, no reply


class _Memo:
    def __init__(self) -> None:
        self.value: str | None = None

    async def recall(self) -> str | None:
        return self.value

    async def remember(self, transport_id: str) -> None:
        self.value = transport_id


async def test_a_reply_is_one_submission_however_many_attempts(
    tmp_path: Path,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    metadata_schema: Path,
) -> None:
    portal = fc_sim.add_destination(
        destination_keys.encryption.public, destination_keys.signature.public
    )
    settings = adapter_settings(fc_sim, destination, destination_keys, tmp_path, metadata_schema)
    client_id, secret = fc_sim.add_client("sender")
    settings["reply_connection"] = {
        **settings["connection"],
        "client_id": client_id,
        "client_secret": secret,
    }
    adapter = FitConnectAdapter(
        name="fitconnect-amt",
        settings=FitConnectSettings.model_validate(settings),
        context=AdapterContext(data_dir=tmp_path, publish=RecordingPublisher()),
    )
    fit_case = "7d0f5a2e-4b1c-4e8a-9c3d-2f6b8a1e0c57"
    answer = Answer(
        case_id="hub-case",
        kind="status",
        content=b'{"state": "in-pruefung"}',
        content_type="application/json",
        reply_route={
            "submission_id": "9a4c2e1f-0b3d-4f5a-8e7c-6d1b2a3c4e5f",
            "fitconnect_case_id": fit_case,
            "reply_channel": json.dumps({"fitConnect": {"destinationId": portal.destination_id}}),
        },
    )
    memo = _Memo()
    # The submit fails past the retries: the hub would try the answer again later.
    fc_sim.inject(FaultRule("status", operation="submit", status=503, times=2))
    with pytest.raises(RetryableDeliveryError):
        await adapter.answer_once(answer, memo)
    assert memo.value is not None
    finished = await adapter.answer_once(answer, memo)
    again = await adapter.answer_once(answer, memo)
    await adapter.stop()
    assert finished["outcome"] == "sent"
    assert finished["fitconnect_submission_id"] == memo.value
    assert again["outcome"] == "already-sent"
    assert again["fitconnect_submission_id"] == memo.value
    assert fc_sim.calls("announce") == 1
    [waiting] = [s for s in fc_sim.submissions() if s["destinationId"] == portal.destination_id]
    assert (waiting["caseId"], waiting["state"]) == (fit_case, "submitted")
