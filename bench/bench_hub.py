"""Hub throughput, latency and memory beside the raw nats-py ceiling, in one run.

    .venv/bin/python bench/bench_hub.py [--messages 3000] [--seconds 10] [--workers 1,2]
    .venv/bin/python bench/bench_hub.py --quick          # a smoke run, under a minute

One real ``nats-server`` (``EmbeddedNatsServer``) serves every stage. "Workers" are separate
OS processes on that server: N raw loops on one durable, or the hub as ``poststelle run
--workers N --nats-url ...`` starts it (the very command: a primary and N-1 worker processes
whose routing cores and delivery workers share the same durable consumers and whose HTTP
intakes share one port). For each worker count and each message size (5 KB and 50 KB XBau
0200, distinct ``nachrichtenUUID`` each, schema-valid and validated when the corpus is at
hand):

- **raw loop**: fetch a batch → ``publish_async`` each to ``CASES`` → await the acks → ack the
  batch. The ceiling any router on this server and client library can reach.
- **routing core**: ``INBOX`` preloaded (consumer paused, then resumed) → ``CASES``; the hubs'
  back ends are native NATS ones, so nothing else runs in the hub.
- **end to end**: ``POST /v1/submissions`` (keep-alive, 16 in flight per worker) → ``CASES`` →
  delivered by the file drop (Kiel's cases) and a webhook to a loopback receiver (Lübeck's),
  routed by an imported routing table.
- **latency**: HTTP 202 → the CaseEvent stored in ``CASES`` (the server's store timestamp), at
  a fixed offered load of 500 msg/s on a fixed schedule (open loop), end-to-end hubs running;
  and at a light 50 msg/s, what the design adds when no queue builds.
- **RSS**: ``VmRSS`` (at the end) and ``VmHWM`` (peak) of each of the hub's processes.

Ratios compare figures of the same run, size and worker count. Not a test: numbers depend on
the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from _bench_http import ConnectionPool
from _bench_inbox import preload_inbox, with_source
from _bench_workers import RAW_DURABLE
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from poststelle.contracts.envelope import (
    H_CASE_ID,
)
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub.delivery import consumer_name
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.streams.topology import CASES, INBOX, ROUTER_DURABLE, ensure_topology
from poststelle.routing.table.files import parse_yaml
from poststelle.routing.table.store import RouteTableStore

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MESSAGES = ROOT / "tests" / "contracts" / "messages"
# The shipped example padded with realistic Anlagen and Beteiligte; tests prove both valid.
SIZES = {
    "5 KB": MESSAGES / "xbau-antrag-0200-5k.xml",
    "50 KB": MESSAGES / "xbau-antrag-0200-50k.xml",
}
WORKER_SCRIPT = BENCH / "_bench_workers.py"
POSTSTELLE_RUN = [sys.executable, "-m", "poststelle.routing.cli", "run"]

# Longer than the routers' fetch timeout (``RoutingCore.run``, 0.5 s).
_PULL_EXPIRY_MARGIN = 1.0
OFFERED_RATE = 500  # msg/s, the latency load
# Well below what one hub sustains end to end: what latency the design adds without a queue.
LIGHT_RATE = 50
IN_FLIGHT_PER_WORKER = 16
TARGET_CORE, TARGET_E2E, TARGET_P99_MS, TARGET_RSS_MB = 0.75, 0.5, 20.0, 300.0

# Kiel's cases go to the file drop, Lübeck's to the webhook: both back ends in one stage.
ROUTE_TABLE = """
tenants:
  kiel: {backends: [filedrop]}
  luebeck: {backends: [webhook]}
rules:
  - {ars: 010020000000, tenant: kiel, backend: filedrop}
  - {ars: 010030000000, tenant: luebeck, backend: webhook}
"""
KIEL, LUEBECK = b"01002000", b"01003000"
_AGS = re.compile(rb"(<xbau:gemeindeschluessel[^>]*>\s*<code>)\d{8}(</code>)")


# -- messages ------------------------------------------------------------------------------


def distinct_messages(template: bytes, count: int) -> list[tuple[bytes, str]]:
    """``count`` applications with their own nachrichtenUUID, alternately Kiel and Lübeck."""
    messages = []
    for index in range(count):
        body, source = with_source(template)
        ags = KIEL if index % 2 == 0 else LUEBECK
        body, places = _AGS.subn(rb"\g<1>" + ags + rb"\g<2>", body)
        if places != 1:
            raise SystemExit("the bench message must carry one AGS")
        messages.append((body, source))
    return messages


# -- worker processes ---------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[str]
    detail: str


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB from /proc: psutil is not a dependency."""
    fields: dict[str, float] = {}
    status = Path(f"/proc/{pid}/status").read_text()
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


@dataclass
class RunningHub:
    """``poststelle run --workers N``: its intake URL (one port for all its processes) and
    the process ids it printed, the primary first."""

    process: subprocess.Popen[str]
    url: str
    pids: list[int]


_INTAKE_URL = re.compile(r"POST (http://\S+)/v1/submissions")
_PIDS = re.compile(r"worker processes: \d+, pids ([\d ]+)")


@contextmanager
def poststelle_run(
    config: dict[str, Any], count: int, data_dir: Path, log_path: Path
) -> Iterator[RunningHub]:
    """The hub exactly as an operator starts it; ``--supervised`` stops it when the bench
    dies (its stdin closes), and it stops its own workers."""
    config_path = log_path.with_suffix(".yaml")
    config_path.write_text(json.dumps(config))  # JSON is YAML
    # The bench's configuration only, not the developer's POSTSTELLE_* settings.
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("POSTSTELLE_") or k.endswith("CORPUS")
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *POSTSTELLE_RUN,
                *("--config", str(config_path), "--data-dir", str(data_dir), "--no-demo"),
                *("--workers", str(count), "--supervised"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=environment,
        )
    try:
        assert process.stdout is not None
        banner = ""
        while not banner.endswith("Press Ctrl+C to stop.\n"):
            line = process.stdout.readline()  # blocks until the hub serves, or dies
            if not line:
                process.wait(timeout=30)
                raise SystemExit(f"poststelle run did not start:\n{log_path.read_text()[-3000:]}")
            banner += line
        url = _INTAKE_URL.search(banner)
        pids = _PIDS.search(banner)
        assert url is not None, banner
        yield RunningHub(
            process,
            url.group(1),
            [int(pid) for pid in pids.group(1).split()] if pids else [process.pid],
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def _start_worker(arguments: list[str], log_path: Path) -> Worker:
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, str(WORKER_SCRIPT), *arguments],
        stdin=subprocess.PIPE,  # closes when the bench dies: the worker stops then
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the worker serves, or dies
    if not line.startswith("ready"):
        process.wait(timeout=10)
        raise SystemExit(f"worker {arguments[0]} did not start:\n{log_path.read_text()[-3000:]}")
    return Worker(process, line.removeprefix("ready").strip())


def _stop_worker(worker: Worker) -> str:
    worker.process.send_signal(signal.SIGTERM)
    out, _ = worker.process.communicate(timeout=30)
    return out


@contextmanager
def workers(arguments: list[list[str]], logs: Path, name: str) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for index, argv in enumerate(arguments):
            started.append(_start_worker(argv, logs / f"{name}-{index}.log"))
        yield started
    finally:
        for worker in started:
            _stop_worker(worker)


# -- measurements ------------------------------------------------------------------------


async def _count(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


async def _poll(condition: Callable[[], Awaitable[bool]], deadline: float) -> bool:
    while time.perf_counter() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.02)
    return False


async def _fresh(js: JetStreamContext) -> None:
    await js.purge_stream(INBOX)
    await js.purge_stream(CASES)


async def _stored_times(js: JetStreamContext, stream: str) -> tuple[float, float]:
    """Store times (server clock, epoch seconds) of the stream's first and last message."""
    state = (await js.stream_info(stream)).state
    first = await js.get_msg(stream, state.first_seq)
    last = await js.get_msg(stream, state.last_seq)
    assert first.time is not None and last.time is not None
    return first.time.timestamp(), last.time.timestamp()


async def _pause(js: JetStreamContext, durable: str, started_by: float) -> None:
    """Pause ``durable`` once it exists: a hub's routing core creates its consumer only
    after ``Hub.start`` returned, so the first stage must wait for it."""

    async def exists() -> bool:
        try:
            await js.consumer_info(INBOX, durable)
        except NotFoundError:
            return False
        return True

    if not await _poll(exists, time.perf_counter() + started_by):
        raise SystemExit(f"consumer {durable} never appeared on {INBOX}")
    far = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if not (await js.pause_consumer(INBOX, durable, far)).paused:
        raise SystemExit(f"consumer {durable} could not be paused (nats-server >= 2.11?)")
    # A pull request from before the pause is still served while it lives (the routers fetch
    # with 0.5 s expiry): with two processes one nearly always waits. Let them expire.
    await asyncio.sleep(_PULL_EXPIRY_MARGIN)


async def drain_rate(
    js: JetStreamContext, durable: str, template: bytes, count: int, limit: float
) -> float:
    """INBOX preloaded while ``durable`` is paused; msg/s from its resumption until the last
    CaseEvent was stored (the server's clock, on this host the bench's too).

    A pull request from before the pause may still be served while INBOX fills: the events
    stored before the resumption are left out of the figure, and a run in which most were
    is measured again."""
    rate = 0.0
    for _attempt in range(5):
        await _fresh(js)
        await _pause(js, durable, started_by=limit)
        # Fresh ids each attempt: INBOX would drop repeated ones as duplicates.
        messages = distinct_messages(template, count)
        await preload_inbox(js, messages[:-1])
        started, resumed = time.perf_counter(), time.time()
        await js.resume_consumer(INBOX, durable)
        # The server serves pull requests left waiting by the pause only when a message arrives.
        await preload_inbox(js, messages[-1:])
        if not await _poll(_holds(js, CASES, count), started + limit):
            done = await _count(js, CASES)
            print(f"    timed out: {done} of {count} in CASES after {limit:.0f} s")
            return done / limit
        first, last = await _stored_times(js, CASES)
        measured = await _stored_after(js, CASES, resumed)
        rate = measured / max(last - resumed, 1e-6)
        if measured >= count // 2:
            print(
                f"    first CaseEvent {1000 * (first - resumed):.0f} ms after resume"
                + (f", {count - measured} stored before it" if measured < count else "")
            )
            return rate
        print(f"    {count - measured} CaseEvents stored while {durable} was paused; again")
    print(f"    warning: {durable} could not be held back; the figure is from too few events")
    return rate


async def _stored_after(js: JetStreamContext, stream: str, since: float) -> int:
    """How many of the stream's messages were stored after ``since`` (epoch seconds): store
    times grow with the sequence, so a binary search finds the first."""
    state = (await js.stream_info(stream)).state
    low, high = state.first_seq, state.last_seq + 1
    while low < high:
        middle = (low + high) // 2
        stored = await js.get_msg(stream, middle)
        assert stored.time is not None
        if stored.time.timestamp() > since:
            high = middle
        else:
            low = middle + 1
    return state.last_seq + 1 - low


def _holds(js: JetStreamContext, stream: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def holds() -> bool:
        return await _count(js, stream) >= count

    return holds


async def _delivered_all(js: JetStreamContext, total: int) -> bool:
    if await _count(js, CASES) < total:
        return False
    for tenant, backend in (("kiel", "filedrop"), ("luebeck", "webhook")):
        info = await js.consumer_info(CASES, consumer_name(tenant, backend))
        if info.num_pending or info.num_ack_pending:
            return False
    return True


@dataclass
class EndToEnd:
    rate: float
    intake_rate: float
    refused: int


async def end_to_end_rate(
    js: JetStreamContext, urls: list[str], messages: list[tuple[bytes, str]], limit: float
) -> EndToEnd:
    """POST every message (closed loop, 16 in flight per worker) and wait until both back ends
    have acknowledged every CaseEvent."""
    await _fresh(js)
    pool = ConnectionPool(urls, IN_FLIGHT_PER_WORKER)
    refused = 0

    async def submit(body: bytes) -> None:
        nonlocal refused
        response = await pool.post("/v1/submissions", body, "application/xml")
        refused += response.status != 202

    started = time.perf_counter()
    await asyncio.gather(*(submit(body) for body, _ in messages))
    intake_done = time.perf_counter()
    pool.close()

    async def delivered() -> bool:
        return await _delivered_all(js, len(messages) - refused)

    if not await _poll(delivered, started + limit):
        print(f"    timed out after {limit:.0f} s before every case was delivered")
    elapsed = time.perf_counter() - started
    return EndToEnd(
        rate=len(messages) / elapsed,
        intake_rate=len(messages) / (intake_done - started),
        refused=refused,
    )


@dataclass
class Latency:
    offered: float
    achieved: float
    percentiles_ms: dict[str, float]
    missing: int


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


async def _stored_at(js: JetStreamContext, count: int, limit: float) -> dict[str, float]:
    """case id → the server's store time of its CaseEvent, read back from CASES."""
    subscription = await js.subscribe(
        "case.>", stream=CASES, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    stored: dict[str, float] = {}
    deadline = time.perf_counter() + limit
    try:
        while len(stored) < count and time.perf_counter() < deadline:
            try:
                msg = await subscription.next_msg(timeout=1.0)
            except TimeoutError:
                continue
            stored[(msg.headers or {}).get(H_CASE_ID, "")] = msg.metadata.timestamp.timestamp()
    finally:
        await subscription.unsubscribe()
    return stored


async def latency_at_offered_load(
    js: JetStreamContext,
    urls: list[str],
    messages: list[tuple[bytes, str]],
    rate: int,
    limit: float,
) -> Latency:
    """Open loop: message i leaves at t0 + i / rate whatever the answers before it did."""
    await _fresh(js)
    pool = ConnectionPool(urls, 64)
    accepted_at: dict[str, float] = {}

    async def submit(body: bytes) -> None:
        response = await pool.post("/v1/submissions", body, "application/xml")
        if response.status == 202:
            accepted_at[json.loads(response.body)["case_id"]] = time.time()

    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    tasks = []
    for index, (body, _) in enumerate(messages):
        delay = start + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(submit(body)))
    await asyncio.gather(*tasks)
    achieved = len(messages) / (loop.time() - start)
    pool.close()
    stored = await _stored_at(js, len(accepted_at), limit)
    # Under light load the core can store the CaseEvent before the client has read its 202:
    # already durable when answered counts as 0.
    latencies = sorted(
        max(0.0, stored[case] - at) * 1000 for case, at in accepted_at.items() if case in stored
    )
    return Latency(
        offered=rate,
        achieved=achieved,
        percentiles_ms={
            name: percentile(latencies, fraction)
            for name, fraction in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999))
        },
        missing=len(accepted_at) - len(latencies),
    )


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    value: str
    ratio: str = ""
    target: str = ""
    verdict: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.figure:<44} {row.value:>22} {row.ratio:>10}")

    def table(self) -> str:
        header = Row("figure", "value", "ratio/raw", "target", "met")
        widths = [44, 40, 9, 16, 4]
        lines = []
        for row in [header, *self.rows]:
            cells = [row.figure, row.value, row.ratio, row.target, row.verdict]
            lines.append(" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
            if row is header:
                lines.append("-+-".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)


def _ratio(value: float, raw: float) -> str:
    return f"{value / raw:.2f}" if raw else "n/a"


def _verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def _hub_config(url: str, *, native: bool, webhook_url: str, batch: int) -> dict[str, Any]:
    backends: list[dict[str, Any]]
    if native:
        # Native back ends pull CASES themselves: the hub runs its routing core and nothing else.
        backends = [
            {"tenant": "kiel", "name": "filedrop", "kind": "nats"},
            {"tenant": "luebeck", "name": "webhook", "kind": "nats"},
        ]
    else:
        backends = [
            {
                "tenant": "kiel",
                "name": "filedrop",
                "kind": "filedrop",
                "settings": {"replies": False},
            },
            {
                "tenant": "luebeck",
                "name": "webhook",
                "kind": "webhook",
                "settings": {"url": webhook_url, "secret": "bench-secret"},
            },
        ]
    return {
        "nats": {"url": url},
        "http": {"port": 0},
        "router_batch_size": batch,
        "backends": backends,
        "routes": [],
    }


def _register_schemas(data_dir: Path) -> str:
    corpus = Path(os.environ.get("POSTSTELLE_CORPUS", ROOT.parent / "shared" / "corpus"))
    xsd = corpus / "xbau-2.6" / "xsd"
    if not xsd.is_dir():
        return "off (no corpus: set POSTSTELLE_CORPUS); identify and map only"
    ContractRegistry.for_data_dir(data_dir).add_schema_set(xsd)
    return f"on (XBau 2.6 XSD from {xsd})"


@dataclass
class Settings:
    messages: int
    seconds: float
    workers: list[int]
    batch: int
    limit: float
    profile: Path | None = None


@contextmanager
def profiled(hub: RunningHub, folder: Path | None, name: str) -> Iterator[None]:
    """py-spy samples every hub process (on-CPU stacks only) while the block runs; each
    writes ``<folder>/<name>-hub<i>.speedscope.json`` when interrupted."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                *("record", "--pid", str(pid), "--rate", "250"),
                *("--format", "speedscope", "--output"),
                str(folder / f"{name}-hub{index + 1}.speedscope.json"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index, pid in enumerate(hub.pids)
    ]
    time.sleep(1.0)  # py-spy attaches before the stage starts
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)


async def run(settings: Settings, root: Path) -> Results:
    results = Results()
    logs = root / "logs"
    logs.mkdir()
    data_dir = root / "hub"
    data_dir.mkdir()
    validation = _register_schemas(data_dir)
    templates = {size: path.read_bytes() for size, path in SIZES.items()}
    with EmbeddedNatsServer(store_dir=root / "nats") as server:
        url = server.client_url
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_topology(js)
        await (await RouteTableStore.open(js)).publish(parse_yaml(ROUTE_TABLE))
        await js.add_consumer(
            INBOX,
            ConsumerConfig(
                durable_name=RAW_DURABLE,
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=max(1000, settings.batch * 4),
            ),
        )
        print(f"nats-server {url}; XSD validation {validation}")
        print(
            f"messages per drain stage {settings.messages:,}, latency stage "
            f"{settings.seconds:g} s at {OFFERED_RATE} and at {LIGHT_RATE} msg/s, "
            f"router batch {settings.batch}"
        )
        receiver = _start_worker(["receiver"], logs / "receiver.log")
        try:
            for count in settings.workers:
                await _run_worker_count(
                    js, url, count, settings, templates, results, data_dir, logs, receiver.detail
                )
        finally:
            print(f"webhook receiver: {_stop_worker(receiver).strip()}")
            await nc.close()
    return results


async def _run_worker_count(
    js: JetStreamContext,
    url: str,
    count: int,
    settings: Settings,
    templates: dict[str, bytes],
    results: Results,
    data_dir: Path,
    logs: Path,
    webhook_url: str,
) -> None:
    label = f"{count} worker{'s' if count > 1 else ''}"
    print(
        f"\n== {label}: {count} process{'es' if count > 1 else ''} on one server and one data dir"
    )
    raw: dict[str, float] = {}
    raw_argv = [["raw", "--url", url, "--batch", str(settings.batch)]] * count
    with workers(raw_argv, logs, f"raw-{count}"):
        for size, template in templates.items():
            raw[size] = await drain_rate(
                js, RAW_DURABLE, template, settings.messages, settings.limit
            )
            results.add(Row(f"raw loop {size}, {label}", f"{raw[size]:,.0f} msg/s", "1.00"))

    def hub(native: bool, stage: str) -> contextlib.AbstractContextManager[RunningHub]:
        config = _hub_config(url, native=native, webhook_url=webhook_url, batch=settings.batch)
        return poststelle_run(config, count, data_dir, logs / f"{stage}-{count}.log")

    # The HTTP intake idles here: the native back ends leave the routing core alone at work.
    with hub(native=True, stage="core") as running:
        for size, template in templates.items():
            with profiled(running, settings.profile, f"core-{_slug(size)}-w{count}"):
                rate = await drain_rate(
                    js, ROUTER_DURABLE, template, settings.messages, settings.limit
                )
            target = f">= {TARGET_CORE} x raw" if count >= 2 else ""
            ok = rate / raw[size] >= TARGET_CORE if target else None
            results.add(
                Row(
                    f"routing core {size}, {label}",
                    f"{rate:,.0f} msg/s",
                    _ratio(rate, raw[size]),
                    target,
                    "" if ok is None else _verdict(ok),
                )
            )
        _memory_rows(results, running, f"routing core, {label}")

    with hub(native=False, stage="e2e") as running:
        # One port for all of the hub's processes: the kernel spreads the connections.
        urls = [running.url] * count
        for size, template in templates.items():
            messages = distinct_messages(template, settings.messages)
            with profiled(running, settings.profile, f"e2e-{_slug(size)}-w{count}"):
                e2e = await end_to_end_rate(js, urls, messages, settings.limit)
            results.add(
                Row(
                    f"end to end {size}, {label}",
                    f"{e2e.rate:,.0f} msg/s",
                    _ratio(e2e.rate, raw[size]),
                    f">= {TARGET_E2E} x raw",
                    _verdict(e2e.rate / raw[size] >= TARGET_E2E),
                )
            )
            refused = f", {e2e.refused} not 202" if e2e.refused else ""
            results.add(
                Row(
                    f"  of which HTTP intake {size}, {label}",
                    f"{e2e.intake_rate:,.0f} msg/s{refused}",
                )
            )
        for rate in (OFFERED_RATE, LIGHT_RATE):
            for size, template in templates.items():
                offered = distinct_messages(template, int(rate * settings.seconds))
                latency = await latency_at_offered_load(js, urls, offered, rate, settings.limit)
                _latency_rows(results, latency, f"{size}, {label}")
        _memory_rows(results, running, f"end to end, {label}")


def _latency_rows(results: Results, latency: Latency, stage: str) -> None:
    p = latency.percentiles_ms
    at_target = latency.offered == OFFERED_RATE
    results.add(
        Row(
            f"202 → CASES {stage}, {latency.offered}/s",
            f"p50 {p['p50']:.1f} p99 {p['p99']:.1f} p99.9 {p['p99.9']:.1f} ms",
            "",
            f"p99 <= {TARGET_P99_MS:g} ms" if at_target else "(light load)",
            _verdict(p["p99"] <= TARGET_P99_MS) if at_target else "",
        )
    )
    missing = f", {latency.missing} missing" if latency.missing else ""
    results.add(
        Row(
            f"  offered / answered {stage}, {latency.offered}/s",
            f"{latency.offered} / {latency.achieved:,.0f} msg/s{missing}",
        )
    )


def _slug(size: str) -> str:
    return size.replace(" ", "").lower()


def _memory_rows(results: Results, hub: RunningHub, stage: str) -> None:
    for index, pid in enumerate(hub.pids):
        rss, peak = memory_mb(pid)
        results.add(
            Row(
                f"RSS hub {index + 1} ({stage})",
                f"{rss:,.0f} MB, peak {peak:,.0f} MB",
                "",
                f"< {TARGET_RSS_MB:g} MB",
                _verdict(peak < TARGET_RSS_MB),
            )
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="per throughput stage")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency stage duration")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2")
    parser.add_argument("--batch", type=int, default=256, help="router and raw fetch batch")
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 60 s)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write py-spy flame graphs (speedscope JSON) of the hubs per stage to this folder",
    )
    arguments = parser.parse_args(argv)
    settings = Settings(
        messages=200 if arguments.quick else arguments.messages,
        seconds=0.5 if arguments.quick else arguments.seconds,
        workers=[int(n) for n in arguments.workers.split(",")],
        batch=arguments.batch,
        limit=30.0 if arguments.quick else 300.0,
        profile=arguments.profile,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="poststelle-bench-") as folder:
        results = asyncio.run(run(settings, Path(folder)))
    elapsed = time.perf_counter() - started
    print(f"\nresults ({elapsed:.0f} s; ratio: to the raw loop of the same size and worker count)")
    print(results.table())


if __name__ == "__main__":
    main()
