"""Parked records stay visible after replays: quarantine and DLQ, listing, paging, replay."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import httpx
from nats.js import JetStreamContext

from poststelle.contracts.envelope import (
    H_CASE_ID,
    H_MSG_ID,
    H_ORIGINAL_SUBJECT,
    H_REASON,
    H_STEP,
    dlq_subject,
    quarantine_subject,
)
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub, connect
from poststelle.routing.ops.dlq import list_dead_letters, replay_dead_letters
from poststelle.routing.ops.quarantine import list_quarantined, replay_quarantined
from poststelle.routing.streams.topology import CASES, DLQ, INBOX, QUARANTINE, ensure_topology
from tests.integration.conftest import eventually, run_cli

XML = {"Content-Type": "application/xml"}
T = TypeVar("T")


async def _count(js: JetStreamContext, stream: str) -> int:
    info = await js.stream_info(stream)
    return int(info.state.messages)


async def test_quarantine_replay_some_then_list_and_replay_the_rest(
    hub: Hub, http: httpx.AsyncClient, hub_config: HubConfig
) -> None:
    for i in range(5):
        response = await http.post("/v1/submissions", content=b"<not-xml %d" % i, headers=XML)
        assert response.status_code == 202
    parked = await eventually(lambda: _at_least(list_quarantined(hub.js), 5))
    first = [item.sequence for item in parked]

    # The oldest record goes first: the walk must not end at the gap it leaves.
    assert (await replay_quarantined(hub.js, sequences=[first[0]])).replayed == [first[0]]
    again = await eventually(lambda: _at_least(list_quarantined(hub.js), 5))
    assert [item.sequence for item in again][:4] == first[1:]
    assert again[4].sequence > first[-1]  # not XML after a replay either: parked again

    code, out, _ = await asyncio.to_thread(run_cli, hub_config, "quarantine", "list")
    assert code == 0
    assert "quarantine is empty" not in out
    assert out.count("parse/not-well-formed") == 5

    code, out, _ = await asyncio.to_thread(
        run_cli, hub_config, "quarantine", "replay", "--reason", "not-well-formed"
    )
    assert (code, out.strip()) == (0, "replayed 5 message(s) into INBOX")
    final = await eventually(
        lambda: _at_least(list_quarantined(hub.js, reason="not-well-formed"), 5)
    )
    assert min(item.sequence for item in final) > again[-1].sequence
    assert await list_quarantined(hub.js, reason="unroutable") == []


async def _at_least(listing: Awaitable[list[T]], n: int) -> list[T] | None:
    items = await listing
    return items if len(items) >= n else None


async def _dead_letters(js: JetStreamContext, n: int, *, consumer: str = "case_x_y") -> None:
    for i in range(n):
        await js.publish(
            dlq_subject(consumer),
            b'{"event": %d}' % i,
            headers={
                H_ORIGINAL_SUBJECT: "case.parked.test.antrag",
                H_MSG_ID: f"dlq:{consumer}:{i}",
                H_CASE_ID: f"case-{i}",
                H_REASON: "refused",
            },
        )


async def test_dlq_replay_some_then_list_and_replay_the_rest(
    hub: Hub, hub_config: HubConfig
) -> None:
    await _dead_letters(hub.js, 4)
    await _dead_letters(hub.js, 2, consumer="case_other_one")
    letters = await list_dead_letters(hub.js)
    assert len(letters) == 6

    first = letters[0].sequence
    assert (await replay_dead_letters(hub.js, sequences=[first])).replayed == [first]
    rest = await list_dead_letters(hub.js, consumer="case_x_y")
    assert [letter.sequence for letter in rest] == [letter.sequence for letter in letters[1:4]]
    code, out, _ = await asyncio.to_thread(run_cli, hub_config, "dlq", "list")
    assert code == 0
    assert out.count("case_x_y") == 3
    assert out.count("case_other_one") == 2

    code, out, _ = await asyncio.to_thread(
        run_cli, hub_config, "dlq", "replay", "--consumer", "case_x_y"
    )
    assert (code, out.strip()) == (0, "replayed 3 message(s) to their original subjects")
    assert [letter.consumer for letter in await list_dead_letters(hub.js)] == ["case_other_one"] * 2
    cases = await hub.js.stream_info(CASES, subjects_filter="case.parked.test.antrag")
    assert cases.state.subjects == {"case.parked.test.antrag": 4}


async def test_paging_lists_each_record_once(hub: Hub, hub_config: HubConfig) -> None:
    await _dead_letters(hub.js, 7)
    await replay_dead_letters(hub.js, sequences=[(await list_dead_letters(hub.js))[2].sequence])
    pages: list[list[int]] = []
    after = 0
    while True:
        page = await list_dead_letters(hub.js, after=after, limit=2)
        if not page:
            break
        pages.append([letter.sequence for letter in page])
        after = page[-1].sequence
    assert [len(page) for page in pages] == [2, 2, 2]
    seen = [seq for page in pages for seq in page]
    assert seen == sorted(set(seen))
    code, out, _ = await asyncio.to_thread(
        run_cli, hub_config, "dlq", "list", "--limit", "2", "--after", str(pages[0][-1])
    )
    assert code == 0
    assert f"more may follow: --after {pages[1][-1]}" in out
    assert await hub.js.consumers_info(DLQ) == []  # each walk removed its consumer


async def test_quarantined_replies_are_listed_but_not_replayed_into_inbox(
    hub: Hub, hub_config: HubConfig
) -> None:
    await _park(hub.js, 1, "reply", "unknown-case", "r")
    await _park(hub.js, 1, "route", "unroutable", "u")
    reply, arrival = await list_quarantined(hub.js)
    result = await replay_quarantined(hub.js, sequences=[reply.sequence, arrival.sequence])
    assert (result.replayed, result.skipped) == ([arrival.sequence], [reply.sequence])
    assert await list_quarantined(hub.js, reason="unknown-case") == [reply]
    code, _, err = await asyncio.to_thread(
        run_cli, hub_config, "quarantine", "replay", "--seq", str(reply.sequence)
    )
    assert code == 1
    assert f"not replayable (a quarantined reply, not an arrival): #{reply.sequence}" in err


async def _park(js: JetStreamContext, count: int, step: str, reason: str, tag: str) -> None:
    pending = []
    for i in range(count):
        pending.append(
            await js.publish_async(
                quarantine_subject(step, reason),
                b"<x/>",
                headers={
                    H_MSG_ID: f"quarantine:{tag}:{i}",
                    H_STEP: step,
                    H_REASON: reason,
                    H_CASE_ID: f"{tag}-{i}",
                    "Poststelle-Channel": "http",
                    "Poststelle-Adapter": "test",
                    "Poststelle-Received-At": "2026-12-02T12:00:00+00:00",
                },
            )
        )
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def test_ten_thousand_parked_records_list_in_pages_and_replay_with_progress(
    hub_config: HubConfig, fresh_nats: EmbeddedNatsServer, tmp_path: Path
) -> None:
    # No hub runs: what is replayed into INBOX stays there to be counted.
    nc = await connect(hub_config, fresh_nats.client_url)
    try:
        js = nc.jetstream()
        await ensure_topology(js)
        await _park(js, 10_200, "route", "unroutable", "u")
        await _park(js, 500, "parse", "not-xml", "n")
        gaps = list(range(1, 10_201, 51))  # holes all over the stream
        assert len((await replay_quarantined(js, sequences=gaps)).replayed) == 200

        started = time.monotonic()
        everything = await list_quarantined(js)
        elapsed = time.monotonic() - started
        print(f"listed {len(everything)} quarantine records in {elapsed:.2f} s")
        assert len(everything) == 10_500
        assert elapsed < 10.0

        code, out, _ = await asyncio.to_thread(
            run_cli, hub_config, "quarantine", "list", "--json", "--limit", "6000"
        )
        assert code == 0
        first_page = [item["sequence"] for item in json.loads(out)]
        code, out, _ = await asyncio.to_thread(
            run_cli, hub_config, "quarantine", "list", "--json", "--after", str(first_page[-1])
        )
        second_page = [item["sequence"] for item in json.loads(out)]
        assert len(first_page) == 6000
        assert first_page + second_page == [item.sequence for item in everything]

        inbox_before = await _count(js, INBOX)
        started = time.monotonic()
        code, out, err = await asyncio.to_thread(
            run_cli, hub_config, "quarantine", "replay", "--reason", "unroutable"
        )
        elapsed = time.monotonic() - started
        print(f"replayed 10000 unroutable records in {elapsed:.2f} s")
        assert code == 0, err
        assert out.strip() == "replayed 10000 message(s) into INBOX"
        assert "replaying 10000/10000" in err
        assert await _count(js, INBOX) == inbox_before + 10_000
        assert await _count(js, QUARANTINE) == 500
        assert {item.reason for item in await list_quarantined(js)} == {"not-xml"}
    finally:
        await nc.close()
