"""End-to-end hub throughput: arrivals in INBOX → routing core → CASES → file drop.

Run: ``python bench/bench_hub.py [--messages 5000] [--batch 256]``.

Preloads ``INBOX`` with distinct XBau applications (published with nats-py's
``publish_async``, the fast way in), then starts a hub on that server and measures how fast
the routing core turns them into CaseEvents (``CASES``) and how fast the file-drop back end
writes them. Beside it, in the same run, a raw nats-py loop does the least a router must do —
fetch a batch, publish each message to ``CASES`` asynchronously, ack — so the ratio shows what
parsing, identification, validation, mapping, routing, registry and audit cost on top.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from poststelle.routing.hub.config import load_config
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.intake import source_message_id_of
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.streams.topology import CASES, INBOX, ensure_topology

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (ROOT / "examples" / "xbau-antrag-0200.xml").read_bytes()
UUID_IN_EXAMPLE = b"3f6c2a9e-8d41-4b7a-9c15-2e7f0b4d9a61"


async def _preload(js: JetStreamContext, count: int) -> float:
    started = time.perf_counter()
    pending = []
    for _ in range(count):
        body = EXAMPLE.replace(UUID_IN_EXAMPLE, str(uuid.uuid4()).encode())
        source = source_message_id_of(body)
        pending.append(
            await js.publish_async(
                "inbox.portal.bench",
                body,
                headers={
                    "Nats-Msg-Id": f"portal:{source}",
                    "Poststelle-Channel": "portal",
                    "Poststelle-Adapter": "bench",
                    "Poststelle-Source-Id": source,
                    "Poststelle-Case-Id": str(uuid.uuid5(uuid.NAMESPACE_URL, source)),
                    "Content-Type": "application/xml",
                },
            )
        )
    await asyncio.gather(*pending)
    return count / (time.perf_counter() - started)


async def _wait_for(js: JetStreamContext, stream: str, count: int) -> float:
    started = time.perf_counter()
    while (await js.stream_info(stream)).state.messages < count:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def _raw_router(js: JetStreamContext, count: int, batch: int) -> float:
    """Fetch, republish to CASES, ack: the floor any router pays for the same messages."""
    subscription = await js.pull_subscribe(
        "inbox.>",
        durable="raw",
        stream=INBOX,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=batch * 4),
    )
    started = time.perf_counter()
    done = 0
    while done < count:
        messages = await subscription.fetch(batch, timeout=5)
        acks = [
            await js.publish_async(
                "case.raw.bench.x",
                msg.data,
                headers={"Nats-Msg-Id": f"raw:{msg.metadata.sequence.stream}"},
            )
            for msg in messages
        ]
        await asyncio.gather(*acks)
        for msg in messages:
            await msg.ack()
        done += len(messages)
    return count / (time.perf_counter() - started)


async def main(count: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with EmbeddedNatsServer(store_dir=root / "nats") as server:
            nc = await nats.connect(server.client_url)
            js = nc.jetstream()
            await ensure_topology(js)
            rate_in = await _preload(js, count)
            print(
                f"preload INBOX with {count:,} XBau 0200 ({len(EXAMPLE):,} bytes each): "
                f"{rate_in:,.0f} msg/s (publish_async)"
            )
            raw_rate = await _raw_router(js, count, batch)
            print(f"raw nats-py fetch → publish_async → ack loop:      {raw_rate:,.0f} msg/s")
            await js.purge_stream(CASES)

            config = load_config(
                environ={},
                overrides={
                    "data_dir": root / "data",
                    "nats.url": server.client_url,
                    "http.port": 0,
                    "router_batch_size": batch,
                },
            )
            started = time.perf_counter()
            async with Hub(config) as hub:
                routed = await _wait_for(js, CASES, count)
                folder_of = hub.workers[0].backend.folder  # type: ignore[attr-defined]
                while len(list(folder_of.glob("*.json"))) < count:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                delivered = time.perf_counter() - started
                counters = hub.counters.snapshot()
            await nc.close()
    core_rate = count / routed
    print(
        f"hub routing core (INBOX → CASES, batch {batch}):       {core_rate:,.0f} msg/s"
        f"   ratio to raw loop {core_rate / raw_rate:.2f}"
    )
    print(f"hub end to end incl. file drop (fsync per file):   {count / delivered:,.0f} msg/s")
    print(f"counters: {counters}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=256)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.messages, arguments.batch))
