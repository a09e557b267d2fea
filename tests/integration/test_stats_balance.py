"""``poststelle stats`` stays exact through replays, duplicates and interrupted replays."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from poststelle.contracts.envelope import H_MSG_ID, H_ORIGINAL_SUBJECT, dlq_subject, inbox_subject
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.dlq import list_dead_letters, replay_dead_letters
from poststelle.routing.ops.parked import replay_id
from poststelle.routing.ops.quarantine import list_quarantined, replay_quarantined
from poststelle.routing.ops.stats import collect_stats
from poststelle.routing.streams.topology import QUARANTINE
from tests.integration.conftest import eventually, run_cli
from tests.integration.test_table_routing import (
    KIEL_ONLY,
    WITH_LUEBECK,
    _config,
    _import,
    _in_luebeck,
)
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}


async def _settled(hub: Hub, routed: int, quarantined: int) -> dict[str, Any] | None:
    balance: dict[str, Any] = (await collect_stats(hub.js))["conservation"]
    done = (balance["routed"], balance["quarantined"], balance["in_flight"]) == (
        routed,
        quarantined,
        0,
    )
    return balance if done else None


async def _all_delivered(hub: Hub, delivered: int) -> dict[str, Any] | None:
    report = await collect_stats(hub.js)
    balance = report["conservation"]
    return report if (balance["delivered"], balance["delivering"]) == (delivered, 0) else None


async def test_balance_is_exact_after_replays_duplicates_and_an_interrupted_replay(
    hub_config: HubConfig, tmp_path: Path
) -> None:
    config = _config(hub_config)
    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        assert await asyncio.to_thread(_import, config, tmp_path, KIEL_ONLY) == 0
        await eventually(lambda: hub.route_watcher and hub.route_watcher.resolver)
        kiel = [xbau_antrag()[0] for _ in range(2)]
        luebeck = [_in_luebeck(xbau_antrag()[0]) for _ in range(3)]
        broken = [b"<broken %d" % i for i in range(2)]
        for body in [*kiel, *luebeck, *broken, kiel[0], luebeck[0]]:  # two duplicates
            response = await http.post("/v1/submissions", content=body, headers=XML)
            assert response.status_code == 202
        balance = await eventually(lambda: _settled(hub, routed=2, quarantined=5))
        assert (balance["received"], balance["unaccounted"]) == (7, 0)

        # Replays that are parked again: not XML after a replay either.
        assert len((await replay_quarantined(hub.js, reason="not-well-formed")).replayed) == 2
        balance = await eventually(lambda: _settled(hub, routed=2, quarantined=5))
        assert (balance["received"], balance["replayed"]) == (7, {"INBOX": 2})

        # Replays that are routed after the fix, through the operator's command.
        before = hub.route_watcher.pointer  # type: ignore[union-attr]
        assert await asyncio.to_thread(_import, config, tmp_path, WITH_LUEBECK) == 0
        await eventually(lambda: hub.route_watcher.pointer != before)  # type: ignore[union-attr]
        code, out, _ = await asyncio.to_thread(
            run_cli, config, "quarantine", "replay", "--reason", "unroutable"
        )
        assert (code, out.strip()) == (0, "replayed 3 message(s) into INBOX")
        balance = await eventually(lambda: _settled(hub, routed=5, quarantined=2))
        assert (balance["received"], balance["unaccounted"]) == (7, 0)
        duplicate = await http.post("/v1/submissions", content=luebeck[1], headers=XML)
        assert duplicate.json()["duplicate"] is True

        # A replay that died after its publish: the record is still parked, the copy ran.
        [first, _] = await list_quarantined(hub.js)
        record = await hub.js.get_msg(QUARANTINE, first.sequence)
        await hub.js.publish(
            inbox_subject("http", "replay-crash"),
            record.data or b"",
            headers={H_MSG_ID: replay_id(QUARANTINE, first.sequence)},
        )
        balance = await eventually(lambda: _settled(hub, routed=5, quarantined=3))
        assert (balance["received"], balance["unaccounted"]) == (8, 0)  # one arrival too many
        again = await replay_quarantined(hub.js, sequences=[first.sequence])
        assert again.replayed == [first.sequence]  # a duplicate in INBOX, completed
        balance = await eventually(lambda: _settled(hub, routed=5, quarantined=2))
        assert balance["received"] == 7

        # A dead letter replayed into CASES is no new routing.
        await hub.js.publish(
            dlq_subject("case_nobody_here"),
            b'{"event": 1}',
            headers={H_ORIGINAL_SUBJECT: "case.nobody.here.antrag", H_MSG_ID: "dlq:test:1"},
        )
        [letter] = await list_dead_letters(hub.js)
        assert (await replay_dead_letters(hub.js, sequences=[letter.sequence])).replayed

        report = await eventually(lambda: _all_delivered(hub, 5))
        assert report["conservation"] == {
            "received": 7,
            "routed": 5,
            "quarantined": 2,
            "router_dead_lettered": 0,
            "in_flight": 0,
            "unaccounted": 0,
            "dead_lettered": 0,
            "replayed": {"CASES": 1, "INBOX": 6},
            "forwarded": 0,
            "forwarded_to": {},
            "arrived_from_peers": 0,
            "arrived_from": {},
            # The replayed dead letter went to a subject no back end consumes: no delivery.
            "delivered": 5,
            "delivering": 0,
            "delivery_dead_lettered": 0,
            "native_backlog": 0,
            "delivered_by_backend": {"case_kiel_bauakte": 2, "case_luebeck_bauakte": 3},
        }
        streams = report["streams"]
        assert streams["INBOX"] == 7 + 6
        assert streams["CASES"] == 5 + 1
        assert streams["REPLAYS"] == 7

        code, out, _ = await asyncio.to_thread(run_cli, config, "stats")
        assert code == 0, out
        assert "received 7 = routed 5 + quarantined 2" in out
        assert "+ in flight 0 + forwarded to peer states 0   (unaccounted 0;" in out
        assert "routed 5: delivered 5 + being delivered 0 + dead-lettered by back ends 0" in out
        assert "federation: arrived from peers 0 (none, part of received); forwarded none" in out
        assert "replays (not arrivals): 1 into CASES, 6 into INBOX" in out
        code, out, _ = await asyncio.to_thread(run_cli, config, "stats", "--json")
        assert json.loads(out)["conservation"] == report["conservation"]


async def test_a_dead_letter_replayed_to_its_back_end_is_no_second_delivery(hub: Hub) -> None:
    """A back end's dead letter stays in CASES (terminated) and its replay is a second copy
    there: the balance subtracts both from that back end's deliveries."""
    async with httpx.AsyncClient(base_url=hub.http_url) as http:
        for _ in range(2):
            body = xbau_antrag()[0]
            assert (await http.post("/v1/submissions", content=body, headers=XML)).is_success
    [worker] = hub.workers
    # An event the worker cannot read: dead-lettered at once, replayed, dead-lettered again.
    subject = worker._subject.replace(">", "antrag")
    await hub.js.publish(subject, b'{"not": "an event"}', headers={H_MSG_ID: "broken:1"})
    [letter] = await eventually(lambda: list_dead_letters(hub.js, consumer=worker.durable))
    balance = await eventually(lambda: _deliveries(hub, delivered=2, delivery_dead_lettered=1))
    assert balance["routed"] == 3  # the bad event came in through CASES, not the router
    assert (await replay_dead_letters(hub.js, sequences=[letter.sequence])).replayed
    await eventually(lambda: _letter_again(hub, worker.durable, letter.sequence))
    balance = await eventually(lambda: _deliveries(hub, delivered=2, delivery_dead_lettered=1))
    assert balance["delivered_by_backend"] == {worker.durable: 2}
    assert (balance["replayed"], balance["delivering"]) == ({"CASES": 1}, 0)


async def _letter_again(hub: Hub, consumer: str, first: int) -> bool:
    letters = await list_dead_letters(hub.js, consumer=consumer)
    return [letter.sequence != first for letter in letters] == [True]


async def _deliveries(hub: Hub, **expected: int) -> dict[str, Any] | None:
    balance: dict[str, Any] = (await collect_stats(hub.js))["conservation"]
    return balance if all(balance[key] == n for key, n in expected.items()) else None
