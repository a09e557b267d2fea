"""Faults at hub level, each against real servers: a flaky or refusing back end, an XTA
mailbox that delivers twice or loses a close, and a nats-server killed under load."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.delivery import consumer_name
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.streams.topology import CASES, INBOX, QUARANTINE
from tests.adapters.receiver import Receiver
from tests.integration.conftest import eventually
from tests.integration.test_reply_path import _webhook_config
from tests.integration.test_xta_inbound import _mailbox_settings
from tests.messages import xbau_antrag
from tests.xta.conftest import AMT, HUB

XML = {"Content-Type": "application/xml"}
WEBHOOK_CONSUMER = consumer_name("stadt-kiel", "fachverfahren")


def _delivered_cases(receiver: Receiver) -> Counter[str]:
    """Case ids of the events the back end accepted, counted per acceptance."""
    with receiver.lock:
        bodies = [body for _, body in receiver.received]
    return Counter(json.loads(body)["data"]["case_id"] for body in bodies)


async def _hops(hub: Hub, case_id: str) -> list[str]:
    assert hub.audit is not None
    return [entry.hop for entry in await hub.audit.read(case_id)]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poststelle.routing.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


# -- webhook back end ------------------------------------------------------------------


async def test_flaky_back_end_gets_the_event_once_after_growing_pauses(
    hub_config: HubConfig, receiver: Receiver
) -> None:
    receiver.statuses = [503, 503]
    async with Hub(_webhook_config(hub_config, receiver)) as hub:
        async with httpx.AsyncClient(base_url=hub.http_url) as http:
            body, _ = xbau_antrag()
            case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()[
                "case_id"
            ]
        await eventually(lambda: _delivered_cases(receiver)[case_id] == 1, within=30)
        await asyncio.sleep(0.5)  # a stray redelivery would arrive now
        assert _delivered_cases(receiver) == Counter({case_id: 1})
        assert receiver.calls == 3
        first_gap = receiver.call_times[1] - receiver.call_times[0]
        second_gap = receiver.call_times[2] - receiver.call_times[1]
        assert first_gap >= 0.9, f"first retry after {first_gap:.3f}s: a hot loop"
        assert second_gap > first_gap + 0.5, (first_gap, second_gap)
        assert (await _hops(hub, case_id)).count("delivered") == 1
        assert hub.counters.get("delivery.retried") == 2


async def test_refusing_back_end_dead_letters_and_replay_delivers_after_the_fix(
    hub_config: HubConfig, receiver: Receiver
) -> None:
    receiver.statuses = [400]  # refuses once; answers 200 from then on ("fixed")
    async with Hub(_webhook_config(hub_config, receiver)) as hub:
        async with httpx.AsyncClient(base_url=hub.http_url) as http:
            body, _ = xbau_antrag()
            case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()[
                "case_id"
            ]
        await eventually(lambda: hub.counters.get("delivery.dead_lettered") == 1)
        assert receiver.calls == 1 and receiver.received == []
        common = ["--nats-url", hub.nats_url, "--data-dir", str(hub.config.data_dir)]

        listed = await asyncio.to_thread(cli, "dlq", "list", "--json", *common)
        assert listed.returncode == 0, listed.stderr
        [letter] = json.loads(listed.stdout)
        assert letter["consumer"] == WEBHOOK_CONSUMER
        assert letter["case_id"] == case_id
        assert letter["reason"] == 'HTTP 400: {"error": "scripted failure"}'
        assert letter["size"] > 0 and letter["time"]
        assert letter["subject"].startswith("case.stadt-kiel.fachverfahren.")

        replayed = await asyncio.to_thread(
            cli, "dlq", "replay", "--consumer", WEBHOOK_CONSUMER, *common
        )
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1 message" in replayed.stdout
        await eventually(lambda: _delivered_cases(receiver)[case_id] == 1, within=30)
        emptied = await asyncio.to_thread(cli, "dlq", "list", "--json", *common)
        assert json.loads(emptied.stdout) == []
        assert await _hops(hub, case_id) == [
            "received",
            "routed",
            "dead-lettered",
            "replayed",
            "delivered",
        ]
        [replay_hop] = [entry for entry in await hub.audit.read(case_id) if entry.hop == "replayed"]
        assert replay_hop.detail["by"].startswith("cli:")
        # The replayed event is the original CaseEvent: its id is the idempotency key.
        [(key, body)] = receiver.received
        assert key and json.loads(body)["id"] == key


# -- XTA mailbox -----------------------------------------------------------------------


def _xta_webhook_config(
    hub_config: HubConfig, receiver: Receiver, sim: XtaSimulator, corpus_dir: Path
) -> HubConfig:
    inbound = [{"name": "xta-hub", "kind": "xta", "settings": _mailbox_settings(sim, corpus_dir)}]
    return _webhook_config(hub_config, receiver, inbound=inbound)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(FaultRule("duplicate", operation="close"), id="close-keeps-message"),
        pytest.param(FaultRule("drop", operation="close", times=3), id="close-connection-drop"),
        pytest.param(
            FaultRule("drop", operation="close", times=3, after_processing=True),
            id="close-answer-lost",
        ),
        pytest.param(FaultRule("fault", operation="close", times=3), id="close-soap-fault"),
    ],
)
async def test_mailbox_fault_on_close_gives_one_case_one_delivery(
    hub_config: HubConfig,
    receiver: Receiver,
    xta_sim: XtaSimulator,
    corpus_dir: Path,
    fault: FaultRule,
) -> None:
    xta_sim.inject(fault)
    body, _ = xbau_antrag()
    xta_sim.put(HUB.value, body, author=AMT)
    async with Hub(_xta_webhook_config(hub_config, receiver, xta_sim, corpus_dir)) as hub:
        await eventually(lambda: xta_sim.mailbox(HUB.value) == [], within=30)
        [case_id] = await eventually(lambda: list(_delivered_cases(receiver)), within=30)
        await asyncio.sleep(0.5)  # time for a second case or delivery to show up
        assert _delivered_cases(receiver) == Counter({case_id: 1})
        assert (await hub.js.stream_info(INBOX)).state.messages == 1
        assert (await hub.js.stream_info(CASES)).state.messages == 1
        assert (await _hops(hub, case_id)).count("delivered") == 1
    if fault.kind == "duplicate" or not fault.after_processing:
        # The mailbox really handed the message out again: the hub saw it twice.
        assert xta_sim.calls("getMessage") >= 2
        assert hub.counters.get("intake.duplicate") >= 1


# -- nats-server killed under load -----------------------------------------------------


async def _submit_until_accepted(
    http: httpx.AsyncClient, body: bytes, outcomes: Counter[str], *, deadline: float
) -> str:
    """A well-behaved client: 503 or a broken connection means try again shortly."""
    while time.monotonic() < deadline:
        try:
            response = await http.post("/v1/submissions", content=body, headers=XML)
        except httpx.TransportError:
            outcomes["transport-error"] += 1
        else:
            outcomes[str(response.status_code)] += 1
            if response.status_code == 202:
                case_id: str = response.json()["case_id"]
                return case_id
            assert response.status_code == 503, response.text
        await asyncio.sleep(0.2)
    raise AssertionError("submission never accepted")


async def test_killed_nats_server_loses_and_duplicates_nothing(
    hub_config: HubConfig, receiver: Receiver, fresh_nats: EmbeddedNatsServer
) -> None:
    total, senders = 60, 4
    outcomes: Counter[str] = Counter()
    accepted: list[str] = []
    async with Hub(_webhook_config(hub_config, receiver)) as hub:
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=30.0) as http:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            for _ in range(total):
                queue.put_nowait(xbau_antrag()[0])
            deadline = time.monotonic() + 90

            async def sender() -> None:
                while not queue.empty():
                    body = queue.get_nowait()
                    accepted.append(
                        await _submit_until_accepted(http, body, outcomes, deadline=deadline)
                    )
                    await asyncio.sleep(0.05)

            senders_done = asyncio.gather(*(sender() for _ in range(senders)))
            await eventually(lambda: len(accepted) >= total // 4, within=30)
            fresh_nats.stop(graceful=False)
            # Down until some submissions were refused: the test is about what happens to them.
            await eventually(lambda: outcomes["503"] + outcomes["transport-error"] > 0, within=60)
            await asyncio.to_thread(fresh_nats.start)
            await asyncio.wait_for(senders_done, timeout=90)

        assert len(accepted) == len(set(accepted)) == total
        assert outcomes["503"] + outcomes["transport-error"] > 0, outcomes
        await eventually(lambda: set(_delivered_cases(receiver)) == set(accepted), within=60)
        await asyncio.sleep(1.0)  # a late redelivery would show up now
        # One CaseEvent per case, so one idempotency key per case: a back end that honours
        # Idempotency-Key processes each case once. A SIGKILL loses the consumers' last
        # acks (JetStream writes consumer state asynchronously, sync_interval or not), so a
        # few events already accepted are POSTed again; they carry the same key.
        with receiver.lock:
            keys_per_case: dict[str, set[str]] = {}
            for key, body in receiver.received:
                keys_per_case.setdefault(json.loads(body)["data"]["case_id"], set()).add(key)
        assert set(keys_per_case) == set(accepted)
        assert all(len(keys) == 1 for keys in keys_per_case.values()), keys_per_case
        assert (await hub.js.stream_info(CASES)).state.messages == total
        delivered = {case for case, keys in keys_per_case.items() if keys}
        inbox = (await hub.js.stream_info(INBOX)).state.messages
        quarantined = (await hub.js.stream_info(QUARANTINE)).state.messages
        # Conservation: every stored arrival is delivered or quarantined, nothing else.
        assert inbox == len(delivered) + quarantined == total
        print(
            f"\nkill test: client outcomes={dict(outcomes)} inbox={inbox} "
            f"cases delivered={len(delivered)} POSTs={receiver.calls} "
            f"re-POSTed with the same key={receiver.calls - total}"
        )
