"""The routes bucket against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient

from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.table import store as table_store
from poststelle.routing.table.resolver import RouteQuery
from poststelle.routing.table.rules import RouteTableError
from poststelle.routing.table.store import (
    POINTER_KEY,
    ConcurrentImportError,
    RouteTableStore,
    RouteTableWatcher,
    decode_snapshot,
    decode_snapshot_reusing,
    encode_snapshot,
)

from .helpers import BAUGENEHMIGUNG, KIEL, table

KIEL_BAU = {"tenant": "kiel", "backend": "bauamt", "ars": KIEL, "leistung": BAUGENEHMIGUNG}


def many_rules(count: int, backend: str = "bauamt") -> Any:
    rules = [
        {"tenant": "kiel", "backend": backend, "ars": f"01{n:010d}", "leistung": BAUGENEHMIGUNG}
        for n in range(count)
    ]
    return table(*rules)


async def new_store(nc: NatsClient) -> RouteTableStore:
    return await RouteTableStore.open(nc.jetstream(), f"routes-test-{uuid.uuid4().hex[:8]}")


async def snapshot_keys(store: RouteTableStore) -> set[str]:
    return {key.split(".")[1] for key in await store.snapshot_keys()}


async def test_publish_and_load_round_trip_in_parts(
    nc: NatsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_store, "PART_BYTES", 2048)
    store = await new_store(nc)
    assert await store.load() is None
    original = many_rules(2000)
    published = await store.publish(original, expected_revision=0)
    assert published.pointer.parts > 1
    loaded = await store.load()
    assert loaded is not None
    assert loaded.table == original
    assert loaded.revision == published.revision


async def test_stale_expected_revision_is_refused_and_leaves_nothing(nc: NatsClient) -> None:
    store = await new_store(nc)
    first = await store.publish(table(KIEL_BAU), expected_revision=0)
    await store.publish(table({**KIEL_BAU, "backend": "dms"}), expected_revision=first.revision)
    before = await snapshot_keys(store)
    with pytest.raises(ConcurrentImportError, match="changed since it was read"):
        await store.publish(table(KIEL_BAU), expected_revision=first.revision)
    assert await snapshot_keys(store) == before


async def test_losing_a_race_on_the_pointer_is_refused(
    nc: NatsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await new_store(nc)
    await store.publish(table(KIEL_BAU))
    stale = await store.read_pointer()
    await store.publish(table({**KIEL_BAU, "backend": "dms"}))
    before = await snapshot_keys(store)

    async def stale_pointer() -> Any:
        return stale

    # The second importer read the pointer before the first swapped it.
    monkeypatch.setattr(store, "read_pointer", stale_pointer)
    with pytest.raises(ConcurrentImportError, match="another import"):
        await store.publish(table({**KIEL_BAU, "priority": 3}))
    monkeypatch.undo()
    assert await snapshot_keys(store) == before
    loaded = await store.load()
    assert loaded is not None and loaded.table.rules[0].backend == "dms"


async def test_a_table_with_ties_is_never_written(nc: NatsClient) -> None:
    store = await new_store(nc)
    with pytest.raises(RouteTableError, match="tie"):
        await store.publish(table(KIEL_BAU, {**KIEL_BAU, "backend": "dms"}))
    assert await store.read_pointer() is None


async def test_readers_see_the_old_table_while_parts_are_written(
    nc: NatsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_store, "PART_BYTES", 1024)
    store = await new_store(nc)
    old = many_rules(300, backend="dms")
    await store.publish(old)
    seen: list[Any] = []
    real_put = store.kv.put

    async def put_and_read(key: str, value: bytes) -> int:
        revision = await real_put(key, value)
        loaded = await store.load()
        seen.append(loaded.table if loaded else None)
        return revision

    monkeypatch.setattr(store.kv, "put", put_and_read)
    new = many_rules(300, backend="bauamt")
    await store.publish(new)
    assert len(seen) > 1
    assert all(snapshot == old for snapshot in seen)
    monkeypatch.undo()
    loaded = await store.load()
    assert loaded is not None and loaded.table == new


async def test_old_snapshots_are_purged(nc: NatsClient) -> None:
    store = await new_store(nc)
    for priority in range(5):
        await store.publish(table({**KIEL_BAU, "priority": priority}))
    kept = await snapshot_keys(store)
    assert sorted(int(s.split("-")[0]) for s in kept) == [3, 4, 5]


def test_corrupt_or_oversized_snapshots_are_refused() -> None:
    with pytest.raises(RouteTableError, match="corrupt"):
        decode_snapshot(b"not zlib")
    blob = encode_snapshot(table(KIEL_BAU))
    with pytest.raises(RouteTableError, match="expands beyond"):
        decode_snapshot(blob, max_size=50)
    forged = json.loads(zlib.decompress(blob))
    first_cell, rest = forged["rows"][0].split("\x1f", 1)
    assert first_cell == KIEL
    forged["rows"][0] = "0100\x1f" + rest
    with pytest.raises(RouteTableError, match="rule 1: ars: ARS prefix '0100'"):
        decode_snapshot(zlib.compress(json.dumps(forged).encode()))
    forged["rows"] = [["not", "a", "string"]]
    with pytest.raises(RouteTableError, match="corrupt"):
        decode_snapshot(zlib.compress(json.dumps(forged).encode()))


def test_reload_reuses_unchanged_rules_and_validates_changed_ones() -> None:
    land = {"tenant": "land-sh", "backend": "fallback", "ars": "01", "note": "Land"}
    first, index = decode_snapshot_reusing(encode_snapshot(table(KIEL_BAU, land)), None)
    moved = {**KIEL_BAU, "backend": "dms", "valid_from": "2027-01-01"}
    second, _ = decode_snapshot_reusing(encode_snapshot(table(moved, land)), index)
    assert second == table(moved, land)
    assert second.rules[1] is first.rules[1]
    assert second.rules[0] is not first.rules[0]
    # A forged row is validated even when the index knows its neighbours.
    forged = json.loads(zlib.decompress(encode_snapshot(table(KIEL_BAU, land))))
    forged["rows"][0] = forged["rows"][0].replace("bauamt", "Bau Amt")
    with pytest.raises(RouteTableError, match="backend: 'Bau Amt' is not a valid id"):
        decode_snapshot_reusing(zlib.compress(json.dumps(forged).encode()), index)


async def test_watcher_hot_swaps_and_keeps_old_table_on_bad_input(nc: NatsClient) -> None:
    store = await new_store(nc)
    await store.publish(table(KIEL_BAU))
    watcher = RouteTableWatcher(store, poll_interval=30)
    await watcher.start()
    try:
        query = RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL)
        assert watcher.resolver is not None
        assert watcher.resolver.resolve(query).backend == "bauamt"

        started = time.monotonic()
        await store.publish(table({**KIEL_BAU, "backend": "dms"}))

        def swapped() -> bool:
            resolver = watcher.resolver
            return resolver is not None and resolver.resolve(query).backend == "dms"

        async with asyncio.timeout(2):
            await watcher.wait_until(swapped)
        assert time.monotonic() - started < 2

        good = watcher.pointer
        assert good is not None
        # A pointer whose snapshot fails its checksum, written past the importer.
        broken = json.loads(good.to_bytes())
        broken.update(snapshot="99999999-deadbeef", sha256="0" * 64)
        await store.kv.put(POINTER_KEY, json.dumps(broken).encode())
        async with asyncio.timeout(2):
            await watcher.wait_until(lambda: watcher.last_error is not None)
        assert "missing" in (watcher.last_error or "")
        assert watcher.pointer == good
        assert swapped()

        await store.publish(table({**KIEL_BAU, "backend": "dms", "priority": 1}))
        async with asyncio.timeout(2):
            await watcher.wait_until(lambda: watcher.last_error is None)
        assert watcher.pointer is not None and watcher.pointer.sequence == good.sequence + 1
    finally:
        await watcher.stop()


async def test_lookups_during_a_hot_reload_see_one_table_or_the_other(nc: NatsClient) -> None:
    store = await new_store(nc)
    await store.publish(many_rules(3000, backend="dms"))
    watcher = RouteTableWatcher(store, poll_interval=30)
    await watcher.start()
    seen: set[str | None] = set()
    stop = asyncio.Event()
    switched = asyncio.Event()

    async def submissions() -> None:
        # Messages keep arriving while the table changes underneath.
        while not stop.is_set():
            resolver = watcher.resolver
            assert resolver is not None
            for n in range(0, 3000, 97):
                seen.add(
                    resolver.resolve(RouteQuery(leistung=BAUGENEHMIGUNG, ars=f"01{n:010d}")).backend
                )
            if "bauamt" in seen:
                switched.set()
            await asyncio.sleep(0.001)

    flowing = asyncio.create_task(submissions())
    try:
        await store.publish(many_rules(3000, backend="bauamt"))
        # Timing is the benchmark's business; a loaded CI machine only has to get there.
        async with asyncio.timeout(15):
            await watcher.wait_until(
                lambda: watcher.pointer is not None and watcher.pointer.sequence == 2
            )
            await switched.wait()
    finally:
        stop.set()
        await flowing
        await watcher.stop()
    assert seen == {"dms", "bauamt"}


async def _until_jetstream_answers(client: NatsClient, *, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if client.is_connected:
            try:
                await client.jetstream().account_info()
                return
            except (nats.errors.Error, TimeoutError):
                pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"JetStream did not answer within {within} s of the restart")
        await asyncio.sleep(0.05)


async def test_watcher_follows_the_table_across_a_server_restart(tmp_path: Path) -> None:
    server = EmbeddedNatsServer(store_dir=tmp_path).start()
    client = await nats.connect(
        server.client_url, reconnect_time_wait=0.2, max_reconnect_attempts=-1
    )
    try:
        store = await RouteTableStore.open(client.jetstream())
        await store.publish(table(KIEL_BAU))
        watcher = RouteTableWatcher(store, poll_interval=1)
        await watcher.start()
        try:
            server.stop()
            server.start()
            # The client reconnects on its own schedule: publishing before it is back (and
            # before JetStream has recovered its streams) is the test's fault, not the watcher's.
            await _until_jetstream_answers(client)
            await store.publish(table({**KIEL_BAU, "backend": "dms"}))
            async with asyncio.timeout(10):
                await watcher.wait_until(
                    lambda: watcher.pointer is not None and watcher.pointer.sequence == 2
                )
        finally:
            await watcher.stop()
    finally:
        await client.close()
        server.stop()
