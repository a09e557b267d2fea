"""Backpressure at the intake: a full stream, a long backlog and too many requests in
flight are each answered with a retry-able refusal (``503``/``429`` + ``Retry-After``),
never with silent loss of what was stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.portal import PortalAdapter, PortalSettings
from poststelle.contracts.intake import Accepted
from poststelle.routing.hub.config import HubConfig, load_config
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.intake import IntakeAdmission
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.topology import INBOX, ROUTER_DURABLE, ensure_topology
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}


def _config(tmp_path: Path, nats: EmbeddedNatsServer, **overrides: Any) -> HubConfig:
    return load_config(
        environ={},
        overrides={
            "data_dir": tmp_path / "data",
            "nats.url": nats.client_url,
            "http.port": 0,
            **overrides,
        },
    )


async def test_a_full_inbox_answers_503_with_retry_after_and_keeps_what_it_stored(
    tmp_path: Path, fresh_nats: EmbeddedNatsServer
) -> None:
    # Room for a few arrivals only; discard "new" makes the stream refuse the next one.
    (first_body, _) = xbau_antrag()
    limit = 3 * len(first_body)
    config = _config(tmp_path, fresh_nats, **{"nats.stream_max_bytes": {INBOX: limit}})
    async with (
        Hub(config) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http,
    ):
        stored: list[int] = []
        refusal: httpx.Response | None = None
        for attempt in range(20):
            body = first_body if attempt == 0 else xbau_antrag()[0]
            answer = await http.post("/v1/submissions", content=body, headers=XML)
            if answer.status_code == 503:
                refusal = answer
                break
            assert answer.status_code == 202, answer.text
            stored.append(attempt)
        assert refusal is not None, "the small INBOX never refused"
        assert refusal.headers["Retry-After"].isdigit()
        assert refusal.headers["content-type"] == "application/problem+json"
        assert "full" in refusal.json()["detail"]
        info = await hub.js.stream_info(INBOX)
        # Nothing stored went to make room: every accepted arrival is still there.
        assert info.state.messages == len(stored) >= 1
        assert info.state.first_seq == 1
        assert hub.counters.snapshot().get("intake.stream_full", 0) >= 1


async def test_the_backlog_limit_refuses_with_503_once_sampled(
    fresh_nats: EmbeddedNatsServer,
) -> None:
    from nats.aio.client import Client
    from nats.js.api import ConsumerConfig

    nc = Client()
    await nc.connect(fresh_nats.client_url)
    try:
        js = nc.jetstream()
        await ensure_topology(js)
        # The routing core's consumer, with nobody pulling: every arrival stays pending.
        await js.add_consumer(INBOX, ConsumerConfig(durable_name=ROUTER_DURABLE))
        for number in range(5):
            await js.publish("inbox.portal.http", f"<m{number}/>".encode())
        counters = Counters()
        admission = IntakeAdmission(
            counters, js=js, max_backlog=2, retry_after=7, sample_interval=0.05
        )

        def refused() -> int:
            try:
                admission.check_backlog()
            except Exception as exc:  # IntakeBusy
                return getattr(exc, "status", 0)
            return 0

        assert await eventually(refused, within=10.0) == 503
        assert admission.backlog == 5
        admission.max_backlog = 10
        admission.check_backlog()  # under the limit again: admitted
        admission.stop()
    finally:
        await nc.close()


class _HeldPublish:
    """A publish that waits until released: keeps requests in flight."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, raw: bytes, **_: Any) -> Accepted:
        self.calls += 1
        await self.release.wait()
        return Accepted(case_id="c", message_id="m", duplicate=False, stream_sequence=1)


@pytest.fixture
async def gated_portal(tmp_path: Path) -> AsyncIterator[tuple[PortalAdapter, _HeldPublish]]:
    publish = _HeldPublish()
    admission = IntakeAdmission(Counters(), max_in_flight=2, retry_after=3)
    context = AdapterContext(data_dir=tmp_path, publish=publish, extras={"admission": admission})
    portal = PortalAdapter(name="http", settings=PortalSettings(port=0), context=context)
    await portal.start()
    try:
        yield portal, publish
    finally:
        publish.release.set()
        await portal.stop()


async def test_requests_over_the_in_flight_limit_get_429_before_their_body_is_read(
    gated_portal: tuple[PortalAdapter, _HeldPublish],
) -> None:
    portal, publish = gated_portal
    body, _ = xbau_antrag()
    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0) as http:
        held = [
            asyncio.create_task(http.post("/v1/submissions", content=body, headers=XML))
            for _ in range(2)
        ]
        await eventually(lambda: publish.calls == 2, within=10.0)
        refused = await http.post("/v1/submissions", content=body, headers=XML)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "3"
        assert refused.json()["retry_after"] == 3
        assert publish.calls == 2  # the refused one never reached the intake
        antrag = await http.post(
            "/antrag",
            content=b"--x--\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert antrag.status_code == 429, antrag.text
        # Other routes are not gated.
        assert (await http.get("/healthz")).status_code == 200
        publish.release.set()
        assert [answer.status_code for answer in await asyncio.gather(*held)] == [202, 202]
        # Slots are given back: the next request is taken.
        assert (await http.post("/v1/submissions", content=body, headers=XML)).status_code == 202


def test_a_stream_limit_must_name_a_stream_of_the_hub(tmp_path: Path) -> None:
    from poststelle.routing.hub.config import ConfigError

    with pytest.raises(ConfigError, match="no stream 'INBOXX'"):
        load_config(
            environ={},
            overrides={"data_dir": tmp_path, "nats.stream_max_bytes": {"INBOXX": 1024}},
        )
    with pytest.raises(ConfigError, match="positive size"):
        load_config(
            environ={},
            overrides={"data_dir": tmp_path, "nats.stream_max_bytes": {INBOX: 0}},
        )
