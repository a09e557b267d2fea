"""The routing core's batch path alone, in this process: µs per message and how soon a full
batch's first CaseEvent is stored, for the project's core and, beside it, another version.

    .venv/bin/python bench/bench_core_batch.py --messages 1024 --rounds 3
    git show <commit>:routing/hub/core.py > /tmp/core_before.py
    .venv/bin/python bench/bench_core_batch.py --compare /tmp/core_before.py

One ``nats-server``; each round preloads ``INBOX`` with fresh 5 KB (or ``--size 50k``) XBau
0200 applications, then one ``RoutingCore`` fetches batches of ``--batch`` and runs
``process_batch`` until every message is routed. The versions take turns, round by round, so
both see the same load on a shared machine; the best round of each is printed too.

``--rates 50,500`` adds latency rounds: arrivals published to ``INBOX`` on a fixed schedule
at that rate for ``--seconds`` while the core runs, then INBOX store time → CaseEvent store
time per case, both the server's clock (no HTTP, no deliveries: the core's own share).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import nats
from _bench_inbox import INBOX_SUBJECT, inbox_headers, preload_inbox, with_source
from nats.js import JetStreamContext

from poststelle.contracts.envelope import H_CASE_ID
from poststelle.contracts.inspection import MessageInspector
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub import core as project_core
from poststelle.routing.hub.config import StaticRoute
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.topology import CASES, INBOX, ensure_topology
from poststelle.routing.table.static import StaticRouteResolver

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = ROOT / "tests" / "contracts" / "messages"


def _load_core(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"core_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def _preload(js: JetStreamContext, template: bytes, count: int) -> None:
    await preload_inbox(js, [with_source(template) for _ in range(count)])


async def _round(
    js: JetStreamContext,
    module: ModuleType,
    inspector: MessageInspector,
    template: bytes,
    args: Any,
) -> tuple[float, float, float]:
    """(wall µs per message, this process's CPU µs per message, ms from a full batch's start
    to its first CaseEvent's store time). CPU time is less at the mercy of other work on a
    shared machine than wall time; the server runs in its own process and is not in it."""
    await _preload(js, template, args.messages)
    counters = Counters()
    resolver = StaticRouteResolver([StaticRoute(standard="xbau", tenant="t", backend="b")])
    routing = module.RoutingCore(
        js,
        resolver,
        AuditTrail(js),
        counters,
        inspector=inspector,
        batch_size=args.batch,
    )
    subscribe = getattr(routing, "subscribe", None) or routing._subscribe
    subscription = await subscribe()
    first_seq = (await js.stream_info(CASES)).state.last_seq + 1
    first_batch_start = 0.0
    busy = cpu = 0.0
    done = 0
    while done < args.messages:
        batch = await subscription.fetch(args.batch, timeout=5.0)
        started, cpu_started = time.perf_counter(), time.process_time()
        if not first_batch_start:
            first_batch_start = time.time()
        await routing.process_batch(batch)
        busy += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        done += len(batch)
    assert counters.get("core.routed") == args.messages, counters.snapshot()
    await subscription.unsubscribe()
    first = await js.get_msg(CASES, first_seq)
    assert first.time is not None
    first_stored_ms = (first.time.timestamp() - first_batch_start) * 1e3
    return busy / args.messages * 1e6, cpu / args.messages * 1e6, first_stored_ms


async def _latency(
    js: JetStreamContext,
    module: ModuleType,
    inspector: MessageInspector,
    template: bytes,
    rate: int,
    seconds: float,
) -> list[float]:
    """ms from each arrival's INBOX store time to its CaseEvent's, sorted."""
    resolver = StaticRouteResolver([StaticRoute(standard="xbau", tenant="t", backend="b")])
    routing = module.RoutingCore(js, resolver, AuditTrail(js), Counters(), inspector=inspector)
    inbox_from = (await js.stream_info(INBOX)).state.last_seq + 1
    cases_from = (await js.stream_info(CASES)).state.last_seq + 1
    running = asyncio.create_task(routing.run())
    count = int(rate * seconds)
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        body, source = with_source(template)
        await js.publish(INBOX_SUBJECT, body, headers=inbox_headers(source))
    deadline = time.monotonic() + 60.0
    while (await js.stream_info(CASES)).state.last_seq < cases_from + count - 1:
        if time.monotonic() > deadline:
            raise SystemExit("the core did not route every arrival within 60 s")
        await asyncio.sleep(0.05)
    routing.stop()
    await running
    stored: dict[str, datetime] = {}
    for seq in range(inbox_from, inbox_from + count):
        arrival = await js.get_msg(INBOX, seq)
        assert arrival.time is not None
        stored[(arrival.headers or {})[H_CASE_ID]] = arrival.time
    latencies = []
    for seq in range(cases_from, cases_from + count):
        event = await js.get_msg(CASES, seq)
        assert event.time is not None
        arrived = stored[(event.headers or {})[H_CASE_ID]]
        latencies.append((event.time - arrived).total_seconds() * 1e3)
    return sorted(latencies)


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(args: argparse.Namespace) -> None:
    versions = {"project": project_core}
    if args.compare:
        versions = {"compared": _load_core(Path(args.compare)), **versions}
    template = (MESSAGES / f"xbau-antrag-0200-{args.size}.xml").read_bytes()
    with tempfile.TemporaryDirectory(prefix="bench-core-") as scratch:
        data_dir = Path(scratch) / "data"
        data_dir.mkdir()
        corpus = Path(os.environ.get("POSTSTELLE_CORPUS", ROOT.parent / "shared" / "corpus"))
        xsd = corpus / "xbau-2.6" / "xsd"
        validation = xsd.is_dir()
        if validation:
            ContractRegistry.for_data_dir(data_dir).add_schema_set(xsd)
        with EmbeddedNatsServer(store_dir=Path(scratch) / "nats") as server:
            nc = await nats.connect(server.client_url)
            js = nc.jetstream()
            await ensure_topology(js)
            results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in versions}
            # The schema set is compiled on first use: not part of any round.
            inspector = MessageInspector(data_dir)
            inspector.inspect(template)
            for index in range(args.rounds):
                for name, module in versions.items():
                    figures = await _round(js, module, inspector, template, args)
                    results[name].append(figures)
                    print(
                        f"round {index + 1} {name:<9} wall {figures[0]:7.1f} µs/msg  "
                        f"CPU {figures[1]:7.1f} µs/msg  "
                        f"first event of a batch stored after {figures[2]:7.1f} ms",
                        flush=True,
                    )
            latency: dict[tuple[str, int], list[list[float]]] = {}
            rates = [int(rate) for rate in args.rates.split(",") if rate]
            for index in range(args.rounds if rates else 0):
                for rate in rates:
                    for name, module in versions.items():
                        ordered = await _latency(
                            js, module, inspector, template, rate, args.seconds
                        )
                        latency.setdefault((name, rate), []).append(ordered)
                        print(
                            f"round {index + 1} {name:<9} {rate}/s INBOX → CASES p50 "
                            f"{_quantile(ordered, 0.5):.1f} p99 {_quantile(ordered, 0.99):.1f} "
                            f"max {ordered[-1]:.1f} ms",
                            flush=True,
                        )
            await nc.close()
    print(
        f"\n{args.size}, batch {args.batch}, {args.messages} messages a round, "
        f"validation {'on' if validation else 'off'}"
    )
    for name, rounds in results.items():
        wall, cpu, first_event = ([figures[i] for figures in rounds] for i in range(3))
        print(
            f"{name:<9} wall µs/msg best {min(wall):.1f} median {statistics.median(wall):.1f}; "
            f"CPU µs/msg best {min(cpu):.1f} median {statistics.median(cpu):.1f}; "
            f"first event stored after median {statistics.median(first_event):.1f} ms"
        )
    for (name, rate), runs in latency.items():
        merged = sorted(value for run in runs for value in run)
        print(
            f"{name:<9} {rate}/s INBOX → CASES, all rounds: p50 {_quantile(merged, 0.5):.1f} "
            f"p99 {_quantile(merged, 0.99):.1f} max {merged[-1]:.1f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1024, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", choices=("5k", "50k"), default="5k")
    parser.add_argument("--compare", help="another core.py to time beside the project's")
    parser.add_argument("--rates", default="", help="latency rounds at these msg/s, e.g. 50,500")
    parser.add_argument("--seconds", type=float, default=4.0, help="per latency round")
    asyncio.run(_run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
