"""Routing at national scale: import + compile time, RSS, resolutions per second, latency.

Run: ``python bench/bench_routing.py [--rules 200000] [--queries 200000]``.
Prints figures and their ratio to the targets (import+compile < 10 s, RSS < 300 MB,
>= 100,000 resolutions/s on one core, p99 < 50 µs). Not a test: numbers depend on the machine.

The table is generated to files first (``poststelle routes generate``), then read back the way
``routes import`` reads an operator's file, in this same process: the RSS is that of a hub
holding the compiled table. The snapshot codec (what a hub's watcher decodes from KV) is timed
too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nats

from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.table.files import load_table
from poststelle.routing.table.generator import LEISTUNGEN, generate_municipalities
from poststelle.routing.table.resolver import RouteQuery, compile_table
from poststelle.routing.table.rules import RouteTable
from poststelle.routing.table.store import (
    RouteTableStore,
    RouteTableWatcher,
    SnapshotPointer,
    decode_snapshot,
    encode_snapshot,
)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _queries(count: int, seed: int) -> list[RouteQuery]:
    """A traffic mix: mostly known Leistungen for real municipalities, some odd messages."""
    rng = random.Random(seed)
    municipalities = [m.ars for m in generate_municipalities()]
    keys = [leistung.key for leistung in LEISTUNGEN]
    queries = []
    for _ in range(count):
        roll = rng.random()
        ars = rng.choice(municipalities)
        if roll < 0.85:
            query = RouteQuery(leistung=rng.choice(keys), ars=ars)
        elif roll < 0.95:
            # Unknown Leistung: falls back to the Gemeinde's catch-all.
            query = RouteQuery(leistung="99999999999000", ars=ars, standard="xbau")
        elif roll < 0.99:
            # A Kreis-level ARS only.
            query = RouteQuery(leistung=rng.choice(keys), ars=ars[:5])
        else:
            query = RouteQuery(leistung=rng.choice(keys), ars=None)
        queries.append(query)
    return queries


async def _hub(url: str) -> None:
    """Child process: a hub that only watches the table; one JSON line per loaded snapshot."""
    client = await nats.connect(url)
    store = await RouteTableStore.open(client.jetstream())

    def loaded(resolver: object, pointer: SnapshotPointer) -> None:
        line = {"snapshot": pointer.snapshot, "at": time.time(), "peak_rss_mb": _peak_rss_mb()}
        print(json.dumps(line), flush=True)

    watcher = RouteTableWatcher(store, on_swap=loaded)
    await watcher.start()
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await watcher.stop()
    await client.drain()


async def _through_nats(table: RouteTable, store_dir: Path) -> dict[str, float]:
    """Publish the table, then an edited one (the 400 Kreis catch-alls moved to another back
    end), to a hub running in its own process; time each step after the pointer swap."""
    edited = RouteTable(
        tenants=table.tenants,
        rules=tuple(
            replace(rule, backend="bauaufsicht") if rule.backend == "fachverfahren" else rule
            for rule in table.rules
        ),
    )
    with EmbeddedNatsServer(store_dir=store_dir) as server:
        hub = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--hub",
            server.client_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert hub.stdin is not None and hub.stdout is not None
        try:
            assert json.loads(await hub.stdout.readline()) == {"ready": True}
            client = await nats.connect(server.client_url)
            store = await RouteTableStore.open(client.jetstream())
            figures: dict[str, float] = {}
            for name, version in (("first", table), ("reload", edited)):
                started = time.perf_counter()
                published = await store.publish(version)
                figures[f"{name}_publish"] = time.perf_counter() - started
                swapped = time.time()
                loaded = json.loads(await hub.stdout.readline())
                assert loaded["snapshot"] == published.pointer.snapshot
                figures[f"{name}_live"] = loaded["at"] - swapped
                figures["hub_peak_rss_mb"] = loaded["peak_rss_mb"]
            await client.drain()
            return figures
        finally:
            hub.stdin.close()
            async with asyncio.timeout(30):
                await hub.wait()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--hub":
        asyncio.run(_hub(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        # Generated in a child process so its objects do not count towards this RSS.
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "poststelle.routing.table.generator", folder, str(args.rules)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        generated = time.perf_counter() - started
        yaml_path = Path(folder) / "national.yaml"
        gc.collect()
        rss_before = _rss_mb()

        started = time.perf_counter()
        table = load_table(yaml_path)
        loaded = time.perf_counter()
        resolver = compile_table(table)
        compiled = time.perf_counter()
    gc.collect()
    rss_after = _rss_mb()
    peak_import = _peak_rss_mb()
    import_s, compile_s = loaded - started, compiled - loaded

    started = time.perf_counter()
    blob = encode_snapshot(table)
    encoded = time.perf_counter()
    decoded = decode_snapshot(blob)
    decode_s = time.perf_counter() - encoded
    encode_s = encoded - started
    assert decoded == table
    del decoded, blob
    gc.collect()

    queries = _queries(args.queries, args.seed)
    resolve = resolver.resolve
    for query in queries[:10_000]:
        resolve(query)
    gc.disable()
    # Five rounds: the machine may be shared; the median is the figure, the spread is shown.
    rounds = []
    routed = 0
    for _ in range(5):
        routed = 0
        started = time.perf_counter()
        for query in queries:
            if resolve(query).rule is not None:
                routed += 1
        rounds.append(time.perf_counter() - started)
    rounds.sort()
    throughput_s = rounds[2]
    latencies = []
    clock = time.perf_counter_ns
    for query in queries:
        before = clock()
        resolve(query)
        latencies.append(clock() - before)
    gc.enable()
    latencies.sort()
    gaps = sorted(-(clock() - clock()) for _ in range(1001))
    overhead = gaps[500]
    p50 = latencies[len(latencies) // 2] / 1000
    p99 = latencies[int(len(latencies) * 0.99)] / 1000
    p999 = latencies[int(len(latencies) * 0.999)] / 1000
    per_second = len(queries) / throughput_s

    peak_after_codec = _peak_rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        hub = asyncio.run(_through_nats(table, Path(folder)))

    explain_started = time.perf_counter()
    for query in queries[:20_000]:
        resolver.explain(query)
    explain_us = (time.perf_counter() - explain_started) / 20_000 * 1e6

    print(
        f"rules: {len(table.rules):,}  tenants: {len(table.tenants):,}  "
        f"(generated and written in {generated:.2f} s)"
    )
    print(f"import (read + validate YAML/CSV): {import_s:.2f} s")
    print(f"compile (index + tie check):       {compile_s:.2f} s")
    total = import_s + compile_s
    print(
        f"import + compile:                  {total:.2f} s   target < 10 s   ratio {total / 10:.2f}"
    )
    print(
        f"RSS with table compiled:           {rss_after:.0f} MB (before import "
        f"{rss_before:.0f} MB; peak during import {peak_import:.0f} MB)   target < 300 MB   "
        f"ratio {peak_import / 300:.2f}"
    )
    print(
        "peak RSS after also decoding a second snapshot beside it (as a hot reload does): "
        f"{peak_after_codec:.0f} MB"
    )
    print(f"snapshot encode / decode+validate: {encode_s:.2f} s / {decode_s:.2f} s")
    print(
        f"publish to the routes bucket (compile, encode, write, CAS): {hub['first_publish']:.2f} s"
        f"; a hub in another process routes on it {hub['first_live']:.2f} s after the swap"
    )
    print(
        f"hot reload of an edited table: publish {hub['reload_publish']:.2f} s; the hub routes on "
        f"it {hub['reload_live']:.2f} s after the swap   target < 2 s   "
        f"ratio {hub['reload_live'] / 2:.2f}"
    )
    print(f"hub process peak RSS through both loads: {hub['hub_peak_rss_mb']:.0f} MB")
    print(
        f"resolutions: {len(queries):,} ({routed / len(queries):.1%} routed) in "
        f"{throughput_s:.3f} s = {per_second:,.0f}/s on one core   target >= 100,000/s   "
        f"ratio {per_second / 100_000:.2f}  (median of 5 rounds; best "
        f"{len(queries) / rounds[0]:,.0f}/s, worst {len(queries) / rounds[-1]:,.0f}/s)"
    )
    print(
        f"latency per resolve: p50 {p50:.2f} µs  p99 {p99:.2f} µs  p99.9 {p999:.2f} µs   "
        f"target p99 < 50 µs   ratio {p99 / 50:.2f}  (timer overhead ~{overhead / 1000:.2f} µs "
        "included)"
    )
    print(f"explain (candidates + reason): {explain_us:.2f} µs per query")


if __name__ == "__main__":
    main()
