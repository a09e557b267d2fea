"""The fault scenarios: each starts its own NATS server, hub and back end in a fresh folder,
runs steady load, injects its fault while the load flows, and returns the balance."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from chaos.harness import (
    ANSWER_DURABLE,
    TENANT,
    Balance,
    FileDropCounter,
    HubProcess,
    LinkCutter,
    LoadGenerator,
    WebhookReceiver,
    XtaLoad,
    connections_of,
    free_port,
    hub_config,
    preset_quick_consumers,
    settle,
    start_cluster,
    start_nats,
    start_xta_simulator,
    stream_leader,
    until_clustered,
    xta_inbound,
)
from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.replies import REPLY_ROUTER_DURABLE
from poststelle.routing.streams.topology import INBOX
from tests.messages import xbau_decision

__all__ = ["SCENARIOS", "Profile", "profile"]


@dataclass(frozen=True)
class Profile:
    """How much load and how long each fault lasts."""

    short: bool
    count: int  # submissions per scenario
    rate: float  # submissions per second
    kills: int  # repeated kills in the kill scenarios
    outage: float  # seconds a back end or a server stays down
    ack_wait: float | None  # consumers preset with this ack wait; None: the product's own
    settle_within: float
    xta_count: int  # XTA messages per scenario with an XTA load
    xta_rate: float  # XTA messages dropped into the hub's mailbox per second


def profile(short: bool) -> Profile:
    if short:
        return Profile(True, 120, 12.0, 3, 12.0, 3.0, 120.0, 24, 2.0)
    return Profile(False, 600, 15.0, 6, 120.0, None, 420.0, 120, 3.0)


@dataclass
class Stage:
    workdir: Path
    servers: list[EmbeddedNatsServer]
    hub: HubProcess
    load: LoadGenerator
    counted: Callable[[], Counter[str]]
    receiver: WebhookReceiver | None
    xta: XtaLoad | None

    @property
    def nats_url(self) -> str:
        return ",".join(server.client_url for server in self.servers)


@contextlib.asynccontextmanager
async def _stage(
    workdir: Path,
    setup: Profile,
    backend: str,
    receiver: WebhookReceiver | None,
    *,
    cluster: bool = False,
    xta: bool = False,
    workers: int = 2,
    xta_read_timeout: float = 5.0,
) -> AsyncIterator[Stage]:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    simulator = await asyncio.to_thread(start_xta_simulator) if xta else None
    if cluster:
        servers = await asyncio.to_thread(start_cluster, workdir / "cluster")
    else:
        servers = [await asyncio.to_thread(start_nats, workdir / "nats")]
    nats_url = ",".join(server.client_url for server in servers)
    hub: HubProcess | None = None
    drop: FileDropCounter | None = None
    try:
        if cluster:
            await until_clustered(nats_url)
        elif setup.ack_wait is not None:
            await preset_quick_consumers(nats_url, backend, setup.ack_wait, answers=xta)
        config = hub_config(
            backend, webhook_url=receiver.url if receiver else "", replicas=3 if cluster else 1
        )
        if simulator is not None:
            config += xta_inbound(simulator.url, read_timeout=xta_read_timeout)
        hub = HubProcess(workdir, nats_url, free_port(), config, workers=workers)
        await asyncio.to_thread(hub.start)
        if receiver is not None:
            counted = receiver.counted
        else:
            drop = FileDropCounter(hub.data_dir / "outbox" / TENANT / backend).start()
            counted = drop.counted
        load = LoadGenerator(hub.url, setup.count, setup.rate)
        xta_load = XtaLoad(simulator, setup.xta_count, setup.xta_rate) if simulator else None
        yield Stage(workdir, servers, hub, load, counted, receiver, xta_load)
    finally:
        if drop is not None:
            await drop.stop()
        if hub is not None:
            await asyncio.to_thread(hub.stop)
        for server in servers:
            server.stop()
        if simulator is not None:
            simulator.stop()


async def _until(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def _run(
    name: str,
    workdir: Path,
    setup: Profile,
    backend: str,
    fault: Callable[[Stage, asyncio.Task[None]], Awaitable[str]],
    *,
    crashed: bool,
    receiver: WebhookReceiver | None = None,
    settle_longer: float = 0.0,
    cluster: bool = False,
    xta: bool = False,
    workers: int = 2,
    xta_read_timeout: float = 5.0,
    durables: tuple[str, ...] = (),
    busy: Callable[[], bool] = lambda: False,
    finish: Callable[[Stage, Balance], Awaitable[Balance]] | None = None,
) -> Balance:
    """Start the stage, run the load with ``fault`` injected, settle, take the balance.
    ``crashed``: the fault kills a process, so repeats under one idempotency key are the
    documented at-least-once window, not unexplained. ``xta``: XTA messages arrive in the
    hub's mailbox at the simulator alongside the HTTP load."""
    if backend == "webhook" and receiver is None:
        receiver = WebhookReceiver().start()
    started = time.monotonic()
    try:
        async with _stage(
            workdir,
            setup,
            backend,
            receiver,
            cluster=cluster,
            xta=xta,
            workers=workers,
            xta_read_timeout=xta_read_timeout,
        ) as stage:
            load = asyncio.create_task(_both(stage))
            note = await fault(stage, load)
            await load
            balance = await settle(
                name,
                stage.load,
                stage.counted,
                stage.nats_url,
                stage.hub.data_dir,
                started,
                within=setup.settle_within + settle_longer,
                crashed=crashed,
                backend=backend,
                two_keys=receiver.cases_with_two_keys if receiver else lambda: 0,
                note=note,
                xta=stage.xta,
                case_of=receiver.case_of if receiver else lambda uuid: None,
                durables=durables,
                busy=busy,
            )
            return balance if finish is None else await finish(stage, balance)
    finally:
        if receiver is not None:
            receiver.stop()


async def _both(stage: Stage) -> None:
    """The HTTP load, and the XTA load where the stage has one, side by side."""
    loads = [stage.load.run()] + ([stage.xta.run()] if stage.xta is not None else [])
    await asyncio.gather(*loads)


async def _wait_for_share(stage: Stage, load: asyncio.Task[None], share: float) -> None:
    await _until(lambda: len(stage.load.accepted) >= stage.load.count * share or load.done(), 120)


# -- 1. SIGKILL of a hub worker, of the whole hub ------------------------------------------


async def worker_kill(workdir: Path, setup: Profile) -> Balance:
    """``--workers 2``: SIGKILL the worker child again and again while load flows, each time
    mid-batch: the webhook receiver holds back its answers until it has counted deliveries
    that came over the worker's own connections (the back end has them, the worker has no
    answer and so no ack), then the worker dies. The supervisor starts a new one each time;
    what the killed worker held comes again, under its own idempotency key."""

    async def fault(stage: Stage, load: asyncio.Task[None]) -> str:
        receiver = stage.receiver
        assert receiver is not None
        port = int(receiver.url.rsplit(":", 1)[1].split("/", 1)[0])
        in_flight: list[int] = []
        for round_ in range(setup.kills):
            await _wait_for_share(stage, load, (round_ + 1) / (setup.kills + 2))
            pid = await asyncio.to_thread(stage.hub.worker_pid)
            if pid is None:
                # The supervisor is still waiting out its restart delay.
                await _until(lambda: stage.hub.worker_pid() is not None, 60)
                pid = stage.hub.worker_pid()
            if pid is None:
                continue
            receiver.hold()
            try:
                await _until(_held_by(receiver, pid, port), 30)
                await asyncio.sleep(0.3)  # let more of the batch reach the receiver
                held = connections_of(pid, receiver.held_ports(), port)
                os.kill(pid, signal.SIGKILL)
            finally:
                receiver.unhold()
            in_flight.append(held)
            await _until(_replaced(stage.hub, pid), 60)
        mid = sum(1 for n in in_flight if n)
        return (
            f"worker SIGKILLed {len(in_flight)}x, {mid} of them mid-batch: "
            f"{'+'.join(map(str, in_flight))} deliveries counted by the back end, unanswered"
        )

    return await _run("worker-kill", workdir, setup, "webhook", fault, crashed=True, xta=True)


def _held_by(receiver: WebhookReceiver, pid: int, port: int) -> Callable[[], bool]:
    return lambda: connections_of(pid, receiver.held_ports(), port) > 0


def _replaced(hub: HubProcess, killed: int) -> Callable[[], bool]:
    return lambda: hub.worker_pid() not in (None, killed)


async def hub_kill_restart(workdir: Path, setup: Profile) -> Balance:
    """SIGKILL the primary (its worker follows it), start the hub again on the same data
    folder and port; repeated. The load generator retries what it could not hand over."""

    async def fault(stage: Stage, load: asyncio.Task[None]) -> str:
        rounds = max(2, setup.kills // 2)
        for round_ in range(rounds):
            await _wait_for_share(stage, load, (round_ + 1) / (rounds + 2))
            await asyncio.to_thread(stage.hub.kill)
            await _until(lambda: not any(_alive_pid(pid) for pid in stage.hub.pids[1:]), 30)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(stage.hub.start)
        return f"hub SIGKILLed and restarted {rounds}x"

    return await _run("hub-kill-restart", workdir, setup, "webhook", fault, crashed=True, xta=True)


def _alive_pid(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


# -- 2. a back end down, then back ----------------------------------------------------------


async def webhook_down(workdir: Path, setup: Profile) -> Balance:
    """The webhook answers 503 for ``outage`` seconds, then 200 again."""
    receiver = WebhookReceiver().start()

    async def fault(stage: Stage, load: asyncio.Task[None]) -> str:
        await _wait_for_share(stage, load, 0.25)
        receiver.down = True
        await asyncio.sleep(setup.outage)
        receiver.down = False
        return f"webhook 503 for {setup.outage:.0f}s, {receiver.refused} calls refused"

    # The hub's retries back off (1 s, 2 s, 4 s ... 256 s): the last one may come late.
    return await _run(
        "webhook-503",
        workdir,
        setup,
        "webhook",
        fault,
        crashed=False,
        receiver=receiver,
        settle_longer=300.0,
        xta=True,
    )


async def filedrop_unwritable(workdir: Path, setup: Profile) -> Balance:
    """The file drop's folder is not writable for ``outage`` seconds: it is moved aside and a
    plain file takes its name (a chmod would not stop root), then the folder comes back."""

    async def fault(stage: Stage, load: asyncio.Task[None]) -> str:
        folder = stage.hub.data_dir / "outbox" / TENANT / "filedrop"
        away = folder.with_name(folder.name + ".away")
        await _wait_for_share(stage, load, 0.25)
        await _until(folder.is_dir, 30)
        await asyncio.to_thread(_block, folder, away)
        await asyncio.sleep(setup.outage)
        await asyncio.to_thread(_unblock, folder, away)
        return f"file-drop folder unwritable for {setup.outage:.0f}s"

    return await _run("filedrop-unwritable", workdir, setup, "filedrop", fault, crashed=False)


def _block(folder: Path, away: Path) -> None:
    folder.rename(away)
    folder.write_text("not a folder\n")


def _unblock(folder: Path, away: Path) -> None:
    folder.unlink()
    away.rename(folder)


# -- 3. SIGKILL of the NATS server ------------------------------------------------------------


async def nats_kill(workdir: Path, setup: Profile) -> Balance:
    """SIGKILL nats-server under load, start it again on the same store and port a few
    seconds later; the hub keeps running and reconnects."""

    async def fault(stage: Stage, load: asyncio.Task[None]) -> str:
        rounds = 2 if setup.short else 3
        for round_ in range(rounds):
            await _wait_for_share(stage, load, (round_ + 1) / (rounds + 2))
            [server] = stage.servers
            server.stop(graceful=False)
            await asyncio.sleep(3.0 if setup.short else 10.0)
            await asyncio.to_thread(server.start)
        alive = stage.hub.process is not None and stage.hub.process.poll() is None
        return f"nats-server SIGKILLed and restarted {rounds}x, hub alive: {alive}"

    return await _run("nats-kill", workdir, setup, "webhook", fault, crashed=True, xta=True)


# -- 4. a three-node cluster losing a node, then the leader --------------------------------


async def cluster_node_loss(workdir: Path, setup: Profile) -> Balance:
    """Three JetStream servers on loopback, R3 streams; under load SIGKILL one node that
    does not lead ``INBOX``, start it again, then SIGKILL the node that leads ``INBOX`` and
    start it again. Two of three stay up at any time: the streams keep their quorum."""

    async def fault(stage: Stage, load: asyncio.Task[None]) -> str:
        by_name = {server.server_name: server for server in stage.servers}
        done = []
        for round_, target in enumerate(("follower", "leader")):
            await _wait_for_share(stage, load, (round_ + 1) / 4)
            leader = await stream_leader(stage.nats_url, INBOX)
            if leader is None:
                done.append(f"{target}: no leader seen")
                continue
            if target == "leader":
                victim = by_name[leader]
            else:
                victim = next(s for name, s in by_name.items() if name != leader)
            down = 3.0 if setup.short else 15.0
            killed_at = time.monotonic()
            victim.stop(graceful=False)
            # Asked of the survivors while the victim is down: who leads now. A killed leader
            # stays down until a new one is elected (at most 20 s more): the failover is
            # what this round is for, and an election can take longer than the short
            # outage on a loaded machine.
            survivors = ",".join(s.client_url for s in stage.servers if s is not victim)
            wait = max(down, 20.0) if target == "leader" else down
            during = await _leader_within(survivors, wait, other_than=victim.server_name)
            await asyncio.sleep(max(0.0, down - (time.monotonic() - killed_at)))
            await asyncio.to_thread(victim.start)
            # The survivors again: a restarted node may answer from its state before the kill.
            after = await _leader_within(survivors, 30.0)
            done.append(
                f"{target} {leader if target == 'leader' else victim.server_name} killed "
                f"(INBOX leader {leader} before, {during or 'none yet'} while it was down, "
                f"{after} after its restart)"
            )
        return "; ".join(done)

    return await _run(
        "cluster-node-loss", workdir, setup, "webhook", fault, crashed=True, cluster=True, xta=True
    )


async def _leader_within(url: str, within: float, other_than: str = "") -> str | None:
    """The INBOX leader, once there is one (and it is not ``other_than``); None if none
    within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        leader = await stream_leader(url, INBOX)
        if leader is not None and leader != other_than:
            return leader
        await asyncio.sleep(0.5)
    return None


# -- 5. XTA faults: timeouts, SOAP faults, dropped connections, a duplicate offer, crashes --

_XTA_ID = re.compile(rb"urn:de:xta:messageid:[^<\s]+")


@dataclass
class _Answerer:
    """The back end's side of the way back: a decision for each XTA case it received, over
    the hub's HTTP reply intake (retried while the hub is down); the hub answers each at the
    simulator with ``sendMessage`` into the sender's mailbox."""

    stage: Stage
    decided: dict[str, str] = field(default_factory=dict)  # XTA MessageID -> case id

    def busy(self) -> bool:
        """Decisions still to make, or made and not yet answered in the sender's mailbox."""
        xta = self.stage.xta
        receiver = self.stage.receiver
        if xta is None or receiver is None:
            return False
        waiting = xta.waiting()
        taken = [mid for mid, uuid in list(xta.put.items()) if mid not in waiting]
        answered = xta.answers()
        return any(mid not in self.decided or not answered[mid] for mid in taken)

    async def run(self) -> None:
        xta, receiver = self.stage.xta, self.stage.receiver
        assert xta is not None and receiver is not None
        async with httpx.AsyncClient(base_url=self.stage.hub.url, timeout=10.0) as http:
            while True:
                for message_id, uuid in list(xta.put.items()):
                    case_id = receiver.case_of(uuid)
                    if case_id is None or message_id in self.decided:
                        continue
                    decision = xbau_decision(f"bescheid-{case_id}")
                    try:
                        answer = await http.post(f"/v1/cases/{case_id}/events", json=decision)
                    except httpx.TransportError:
                        break  # the hub is down: the next round tries again
                    if answer.status_code == 202:
                        self.decided[message_id] = case_id
                await asyncio.sleep(0.3)


async def _hit(simulator: XtaSimulator, rule: FaultRule, within: float) -> bool:
    """Wait until ``rule`` has been used up (each of its calls arrived)."""
    return await _until(lambda: rule not in simulator.pending_faults(), within)


async def _kill_and_restart(hub: HubProcess) -> None:
    await asyncio.to_thread(hub.kill)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(hub.start)


async def xta_faults(workdir: Path, setup: Profile) -> Balance:
    """The hub's XTA mailbox under the simulator's fault injection while XTA and HTTP load
    flow: read timeouts (getStatusList stalls past the client's 2 s), XTA SOAP faults
    (getMessage, 9030), dropped connections (getMessage before, close after it took effect),
    a duplicate offer (close keeps the message, so it is delivered again; a status list names
    every entry twice), and two SIGKILLs of the hub (one process): while an answer's
    ``sendMessage`` is in flight (sent, OUTBOX not acked), and while a ``close`` stalls (the
    message stored, INBOX acked, not closed at the simulator). Every back end decision is
    answered: each answer must reach the sender exactly once."""
    answerer: _Answerer | None = None
    runner: asyncio.Task[None] | None = None

    async def fault(stage: Stage, load: asyncio.Task[None]) -> str:
        nonlocal answerer, runner
        assert stage.xta is not None
        xta, sim, hub = stage.xta, stage.xta.simulator, stage.hub
        answerer = _Answerer(stage)
        runner = asyncio.create_task(answerer.run())
        done = []
        # 1. SIGKILL while the first answer's sendMessage is in flight; the call takes
        #    effect 4 s later at the simulator, the killed hub never hears of it.
        sending = FaultRule("delay", operation="sendMessage", delay=4.0)
        sim.inject(sending)
        if await _hit(sim, sending, 60):
            await _kill_and_restart(hub)
            done.append("hub SIGKILLed during sendMessage")
        # 2. The protocol faults, while messages keep arriving.
        rules = [
            FaultRule("delay", operation="getStatusList", times=2, delay=3.0),
            FaultRule("fault", operation="getMessage", times=3),
            FaultRule("drop", operation="getMessage", times=2),
            FaultRule("drop", operation="close", after_processing=True),
            FaultRule("duplicate", operation="close"),
            FaultRule("duplicate", operation="getStatusList"),
        ]
        for rule in rules:
            sim.inject(rule)
            if not await _hit(sim, rule, 20) and load.done():
                await xta.put_one()  # the load is over: one more message to take the rule
                await _hit(sim, rule, 20)
            # The client's retries of the call it hit come first: the next rule is for a
            # call of its own (a retried close would take a duplicate rule and do nothing).
            await asyncio.sleep(1.0)
        hit = len(rules) - len(sim.pending_faults())
        done.append(f"{hit}/{len(rules)} protocol faults hit")
        # 3. SIGKILL while a close stalls: the message is stored, not closed.
        closing = FaultRule("drop", operation="close", delay=3.0)
        sim.inject(closing)
        if not await _hit(sim, closing, 20):
            await xta.put_one()
        if await _hit(sim, closing, 20):
            await _kill_and_restart(hub)
            done.append("hub SIGKILLed during close")
        sim.clear_faults()
        return ", ".join(done)

    async def finish(stage: Stage, balance: Balance) -> Balance:
        assert stage.xta is not None and answerer is not None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        sim = stage.xta.simulator
        answers = stage.xta.answers()
        decided = set(answerer.decided)
        missing = sum(1 for mid in decided if not answers[mid])
        twice = sum(n - 1 for mid, n in answers.items() if n > 1)
        # The crash windows, from the simulator's own record of the calls.
        stalled = [
            _XTA_ID.findall(e.request)
            for e in sim.exchanges
            if e.operation == "close" and e.response is None
        ]
        refetched = sum(
            1
            for ids in stalled
            for mid in ids
            if sum(mid in e.request for e in sim.exchanges if e.operation == "getMessage") > 1
        )
        sends = Counter(
            _XTA_ID.findall(e.request)[0]
            for e in sim.exchanges
            if e.operation == "sendMessage" and _XTA_ID.findall(e.request)
        )
        resent = sum(1 for n in sends.values() if n > 1)
        fetched = Counter(
            mid
            for e in sim.exchanges
            if e.operation == "getMessage" and e.status == 200
            for mid in set(_XTA_ID.findall(e.request))
        )
        twice_offered = sum(1 for n in fetched.values() if n > 1)
        note = (
            f"answers: {len(decided)} decisions, {len(decided) - missing} answered, "
            f"{twice} twice, {missing} missing; {twice_offered} messages handed over twice, "
            f"{refetched} of them stored and not closed at the kill; {resent} answers resent "
            "under their MessageID"
        )
        return replace(
            balance,
            lost=balance.lost + missing,
            unexplained=balance.unexplained + twice,
            note=f"{note}; {balance.note}",
        )

    return await _run(
        "xta-faults",
        workdir,
        # Twice the XTA load: messages keep arriving until the last fault has hit.
        replace(setup, xta_count=setup.xta_count * 2),
        "webhook",
        fault,
        crashed=True,
        xta=True,
        workers=1,
        xta_read_timeout=2.0,
        durables=(REPLY_ROUTER_DURABLE, ANSWER_DURABLE),
        busy=lambda: answerer is not None and answerer.busy(),
        finish=finish,
    )


# -- 6. two state hubs, their leaf link cut -------------------------------------------------


def _in_muenchen(body: bytes) -> bytes:
    """The application's site moved to München: Bayern's hub owns the case."""
    return body.replace(b"<code>01002000</code>", b"<code>09162000</code>")


def _state_hub_config(state: str, peer: str, nats: str, backend: str) -> str:
    return (
        f"[nats]\n{nats}\n\n[federation]\nstate = {json.dumps(state)}\n"
        f"peers = [{json.dumps(peer)}]\n\n"
        + backend
        + f'\n[[routes]]\nstandard = "xbau"\ntenant = "bauaufsicht-{state}"\n'
        'backend = "akte"\n'
    )


async def federation_leaf_cut(workdir: Path, setup: Profile) -> Balance:
    """Two state hubs, each with its own embedded NATS: Schleswig-Holstein (A) takes the
    load over HTTP, every application for a municipality in Bayern, whose hub (B) owns it;
    B's leaf node links to A through a TCP proxy. While the load flows the proxy cuts the
    link (every connection closed, new ones refused) for ``outage`` seconds (15 s short), then
    lets it up again. The balance is counted at B's back end; A's and B's quarantine and DLQ
    count, A's router must have forwarded everything."""
    outage = 15.0 if setup.short else 60.0
    receiver = WebhookReceiver().start()
    started = time.monotonic()
    leaf_port = free_port()
    link = LinkCutter(leaf_port)
    hubs: list[HubProcess] = []
    try:
        await asyncio.to_thread((workdir / "sh").mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread((workdir / "by").mkdir, parents=True, exist_ok=True)
        a = HubProcess(
            workdir / "sh",
            "",
            free_port(),
            _state_hub_config(
                "sh",
                "by",
                f"leaf_listen_port = {leaf_port}",
                '[[backends]]\ntenant = "bauaufsicht-sh"\nname = "akte"\nkind = "filedrop"\n',
            ),
            workers=1,
            embedded=True,
        )
        hubs.append(a)
        await asyncio.to_thread(a.start)
        await link.start()
        b = HubProcess(
            workdir / "by",
            "",
            free_port(),
            _state_hub_config(
                "by",
                "sh",
                f'leaf_remotes = ["nats-leaf://127.0.0.1:{link.port}"]',
                '[[backends]]\ntenant = "bauaufsicht-by"\nname = "akte"\nkind = "webhook"\n'
                f'settings = {{ url = "{receiver.url}", secret = "chaos-secret" }}\n',
            ),
            workers=1,
            embedded=True,
        )
        hubs.append(b)
        await asyncio.to_thread(b.start)
        load = LoadGenerator(a.url, setup.count, setup.rate, transform=_in_muenchen)
        running = asyncio.create_task(load.run())
        await _until(lambda: len(load.accepted) >= load.count * 0.25 or running.done(), 120)
        before = len(receiver.counted())
        await link.cut()
        await asyncio.sleep(outage)
        during = len(receiver.counted()) - before
        held_back = len(load.offered - set(receiver.counted()))
        await link.restore()
        await running
        return await settle(
            "federation-leaf-cut",
            load,
            receiver.counted,
            b.nats_url,
            b.data_dir,
            started,
            within=setup.settle_within,
            crashed=False,
            backend="akte",
            tenant="bauaufsicht-by",
            two_keys=receiver.cases_with_two_keys,
            also=((a.nats_url, a.data_dir),),
            note=f"leaf link cut for {outage:.0f}s: {during} deliveries at B meanwhile, "
            f"{held_back} accepted cases waiting at A when it came back",
        )
    finally:
        await link.stop()
        for hub in reversed(hubs):
            await asyncio.to_thread(hub.stop)
        receiver.stop()


SCENARIOS: dict[str, Callable[[Path, Profile], Coroutine[Any, Any, Balance]]] = {
    "worker-kill": worker_kill,
    "hub-kill-restart": hub_kill_restart,
    "webhook-503": webhook_down,
    "filedrop-unwritable": filedrop_unwritable,
    "nats-kill": nats_kill,
    "cluster-node-loss": cluster_node_loss,
    "xta-faults": xta_faults,
    "federation-leaf-cut": federation_leaf_cut,
}
