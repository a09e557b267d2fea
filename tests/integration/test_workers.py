"""``poststelle run --workers N``: real processes on one real nats-server.

The primary and its worker share the ``router`` consumer, the file drop's consumer and the
HTTP port; every case is routed and delivered once, ``poststelle stats`` balances, a killed
worker is started again without losing a message, and no worker outlives its primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from poststelle.contracts.envelope import H_CASE_ID
from poststelle.routing.cli.main import build_parser
from poststelle.routing.hub.delivery import backend_subject, consumer_name
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.supervisor import READY_PREFIX, restart_delay
from poststelle.routing.streams.topology import (
    AUDIT,
    CASES,
    INBOX,
    ROUTER_DURABLE,
    ensure_topology,
)
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

POSTSTELLE = [sys.executable, "-m", "poststelle.routing.cli"]
XML = {"Content-Type": "application/xml"}
TENANT, BACKEND = "stadt-kiel", "akte"
CONFIG = f"""
[[backends]]
tenant = "{TENANT}"
name = "{BACKEND}"

[[routes]]
standard = "xbau"
tenant = "{TENANT}"
backend = "{BACKEND}"
"""


# -- the command line ------------------------------------------------------------------


def test_workers_default_to_the_number_of_cores() -> None:
    args = build_parser().parse_args(["run"])
    assert args.workers == (os.cpu_count() or 1)
    assert args.role == "primary"
    assert args.supervised is False


def test_workers_and_role_are_parsed() -> None:
    args = build_parser().parse_args(["run", "--workers", "3", "--role", "worker"])
    assert (args.workers, args.role) == (3, "worker")


@pytest.mark.parametrize("bad", [["--workers", "0"], ["--workers", "two"], ["--role", "boss"]])
def test_bad_workers_or_role_are_refused(
    bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["run", *bad])
    assert stopped.value.code == 2
    assert bad[0] in capsys.readouterr().err


def test_restart_delay_grows_and_is_capped() -> None:
    assert [restart_delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_worker_without_a_hub_to_join_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *POSTSTELLE,
            *("run", "--role", "worker", "--workers", "1", "--no-demo"),
            *("--data-dir", str(tmp_path), "--http-port", "0"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
    )
    assert result.returncode == 2, result.stderr
    assert "no hub runs on" in result.stderr
    # It did not start a server of its own on the folder's store.
    assert not (tmp_path / "nats").exists()


# -- running hubs ------------------------------------------------------------------------


@dataclass
class RunningHub:
    process: subprocess.Popen[str]
    url: str
    pids: list[int]
    log: Path

    @property
    def worker_pids(self) -> list[int]:
        return self.pids[1:]


def _environment() -> dict[str, str]:
    # The test's own settings only: nothing from the developer's POSTSTELLE_* variables.
    return {k: v for k, v in os.environ.items() if not k.startswith("POSTSTELLE_")}


@contextlib.contextmanager
def poststelle_run(tmp_path: Path, *options: str) -> Iterator[RunningHub]:
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    log = tmp_path / "run.log"
    command = [*POSTSTELLE, "run", "--config", str(config), "--no-demo", "--http-port", "0"]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--data-dir", str(tmp_path / "data"), *options],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_environment(),
        )
    try:
        assert process.stdout is not None
        banner: list[str] = []
        while not banner or banner[-1] not in ("", "Press Ctrl+C to stop.\n"):
            banner.append(process.stdout.readline())
        text = "".join(banner)
        url = re.search(r"POST (http://\S+)/v1/submissions", text)
        assert url, f"{text}\n{log.read_text()[-3000:]}"
        pids = re.search(r"worker processes: \d+, pids ([\d ]+)", text)
        listed = [int(p) for p in pids.group(1).split()] if pids else [process.pid]
        yield RunningHub(process, url.group(1), listed, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to read its status."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


async def _submit_all(url: str, count: int, accepted: list[str]) -> None:
    """POST ``count`` applications, 16 at a time; a request cut off (a worker killed under
    it) is sent again: the same message, so the same case."""
    bodies = [xbau_antrag()[0] for _ in range(count)]
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:

        async def submit(body: bytes) -> None:
            async with gate:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        response = await client.post("/v1/submissions", content=body, headers=XML)
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.1)
                        continue
                    assert response.status_code == 202, response.text
                    accepted.append(response.json()["case_id"])
                    return

        await asyncio.gather(*(submit(body) for body in bodies))


async def _case_ids_in(js: JetStreamContext, stream: str, subject: str) -> list[Any]:
    """Every message of ``stream`` (case id header, JSON body), read with an ordered consumer."""
    total = (await js.stream_info(stream)).state.messages
    subscription = await js.subscribe(
        subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    found: list[Any] = []
    try:
        while len(found) < total:
            msg = await subscription.next_msg(timeout=10.0)
            found.append(((msg.headers or {}).get(H_CASE_ID), json.loads(msg.data)))
    finally:
        await subscription.unsubscribe()
    return found


def _stats(nats_url: str, data_dir: Path) -> dict[str, Any]:
    result = subprocess.run(
        [*POSTSTELLE, "stats", "--json", "--nats-url", nats_url, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
    )
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


async def _settled(nats_url: str, data_dir: Path, count: int) -> dict[str, Any]:
    """``poststelle stats`` once every arrival is routed and nothing is in flight."""

    def balanced() -> dict[str, Any] | None:
        report = _stats(nats_url, data_dir)
        balance = report["conservation"]
        done = balance["routed"] == count and balance["in_flight"] == 0
        return report if done else None

    report: dict[str, Any] = await eventually(lambda: asyncio.to_thread(balanced), within=45)
    return report


async def _assert_each_case_once(
    js: JetStreamContext, accepted: list[str], drop: Path, *, delivered_once: bool
) -> None:
    expected = set(accepted)
    events = await _case_ids_in(js, CASES, "case.>")
    assert Counter(case for case, _ in events) == Counter(expected)
    # The file drop holds every case's event.
    await eventually(lambda: {p.stem for p in drop.glob("*.json")} == expected, within=30)
    # Every delivery acked: nothing left for the back end's consumer. A file may be written
    # before its ack (the ack follows the delivered record), and an event a killed worker held
    # comes back after the ack wait: so eventually, not at once.

    async def all_acked() -> bool:
        info = await js.consumer_info(CASES, consumer_name(TENANT, BACKEND))
        return (info.num_pending, info.num_ack_pending) == (0, 0)

    await eventually(all_acked, within=30)
    if delivered_once:
        hops = await _case_ids_in(js, AUDIT, "audit.>")
        delivered = Counter(entry["case_id"] for _, entry in hops if entry["hop"] == "delivered")
        assert delivered == Counter(expected)


async def _two_pullers(js: JetStreamContext, stream: str, durable: str) -> bool:
    """Two pull requests wait on ``durable``: a sign the processes are up, not a proof that
    both pull (nats-py may leave two of one fetch); the counters are that."""
    return (await js.consumer_info(stream, durable)).num_waiting >= 2


async def _process_counters(url: str, count: int) -> dict[str, dict[str, int]]:
    """role -> counters, from ``/healthz`` on fresh connections until both processes have
    answered: the kernel spreads connections over the processes sharing the port."""
    seen: dict[str, dict[str, int]] = {}
    deadline = time.monotonic() + 20
    while len(seen) < count and time.monotonic() < deadline:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
            report = (await client.get("/healthz")).json()
        seen[f"{report['process']['role']}-{report['process']['pid']}"] = report["counters"]
    return seen


async def test_two_processes_route_and_deliver_every_case_once(tmp_path: Path) -> None:
    """Primary with embedded NATS plus one worker: 300 submissions over the shared port."""
    count = 300
    with poststelle_run(tmp_path, "--workers", "2") as hub:
        assert len(hub.pids) == 2 and all(_alive(pid) for pid in hub.pids)
        data_dir = tmp_path / "data"
        nats_url = EmbeddedNatsServer.discover(data_dir / "nats")
        assert nats_url, "the primary runs the embedded server on the data folder"
        # The worker joined it: no second server on the same store.
        assert len(list((data_dir / "nats" / "run").glob("*.ports"))) == 1
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            await eventually(lambda: _two_pullers(js, INBOX, ROUTER_DURABLE))
            await eventually(lambda: _two_pullers(js, CASES, consumer_name(TENANT, BACKEND)))
            accepted: list[str] = []
            await _submit_all(hub.url, count, accepted)
            assert len(set(accepted)) == count
            report = await _settled(nats_url, data_dir, count)
            balance = report["conservation"]
            assert (balance["received"], balance["routed"], balance["unaccounted"]) == (
                count,
                count,
                0,
            )
            drop = data_dir / "outbox" / TENANT / BACKEND
            await _assert_each_case_once(js, accepted, drop, delivered_once=True)
            # Both processes took arrivals and routed cases; their own counters add up.
            counters = await _process_counters(hub.url, 2)
            assert len(counters) == 2, counters
            for name in ("intake.received", "core.routed", "delivery.delivered"):
                shares = [values.get(name, 0) for values in counters.values()]
                assert sum(shares) == count, (name, counters)
                assert all(shares), (name, counters)
        finally:
            await nc.close()
        workers = hub.worker_pids
    # SIGTERM to the primary stopped its worker too.
    assert hub.process.returncode == 0, hub.log.read_text()[-3000:]
    assert not any(_alive(pid) for pid in workers)


async def test_killed_worker_is_restarted_and_nothing_is_lost(
    tmp_path: Path, fresh_nats: EmbeddedNatsServer
) -> None:
    """SIGKILL the worker under load: the supervisor starts another, what the dead one held
    is redelivered (short ack waits here, set on the consumers before the hub binds them),
    every case reaches CASES and the file drop once, and the books balance."""
    count = 200
    nc = await nats.connect(fresh_nats.client_url)
    try:
        js = nc.jetstream()
        await ensure_topology(js)
        quick = {"ack_policy": AckPolicy.EXPLICIT, "ack_wait": 3.0, "max_ack_pending": 1024}
        await js.add_consumer(
            INBOX, ConsumerConfig(durable_name=ROUTER_DURABLE, max_deliver=20, **quick)
        )
        await js.add_consumer(
            CASES,
            ConsumerConfig(
                durable_name=consumer_name(TENANT, BACKEND),
                filter_subject=backend_subject(TENANT, BACKEND),
                max_deliver=10,
                **quick,
            ),
        )
        with poststelle_run(tmp_path, "--workers", "2", "--nats-url", fresh_nats.client_url) as hub:
            [worker] = hub.worker_pids
            await eventually(lambda: _two_pullers(js, INBOX, ROUTER_DURABLE))
            accepted: list[str] = []
            load = asyncio.create_task(_submit_all(hub.url, count, accepted))
            await eventually(lambda: len(accepted) >= count // 4 or load.done())
            os.kill(worker, signal.SIGKILL)
            restarted = re.compile(r"worker process started index=1 pid=(\d+)")

            def new_worker() -> int | None:
                pids = [int(p) for p in restarted.findall(hub.log.read_text())]
                return pids[-1] if pids and pids[-1] != worker else None

            replacement = await eventually(new_worker)
            assert "worker process exited, restarting index=1" in hub.log.read_text()
            assert "returncode=-9" in hub.log.read_text()
            await load
            assert len(set(accepted)) == count
            await eventually(lambda: _two_pullers(js, INBOX, ROUTER_DURABLE))
            report = await _settled(fresh_nats.client_url, tmp_path / "data", count)
            assert report["conservation"]["unaccounted"] == 0
            drop = tmp_path / "data" / "outbox" / TENANT / BACKEND
            # What the killed worker held may be delivered twice: at least once, never lost.
            await _assert_each_case_once(js, accepted, drop, delivered_once=False)
            # A primary that dies without a word takes its worker with it.
            hub.process.kill()
            hub.process.wait(timeout=10)
            await eventually(lambda: not _alive(replacement), within=20)
    finally:
        await nc.close()


def _start_worker(config: Path, data_dir: Path, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as stderr:
        return subprocess.Popen(
            [
                *POSTSTELLE,
                *("run", "--role", "worker", "--workers", "1", "--no-demo", "--http-port", "0"),
                *("--config", str(config), "--data-dir", str(data_dir)),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_environment(),
        )


async def test_a_worker_started_on_its_own_joins_the_hub_on_the_data_folder(
    tmp_path: Path,
) -> None:
    """``--role worker`` beside a running ``--workers 1`` hub: it finds the hub's embedded
    server on the data folder, shares the router's consumer and serves an intake of its own."""
    with poststelle_run(tmp_path, "--workers", "1") as hub:
        data_dir = tmp_path / "data"
        nats_url = EmbeddedNatsServer.discover(data_dir / "nats")
        assert nats_url
        worker_log = tmp_path / "worker.log"
        worker = _start_worker(tmp_path / "hub.toml", data_dir, worker_log)
        nc = await nats.connect(nats_url)
        try:
            assert worker.stdout is not None
            ready = await asyncio.to_thread(worker.stdout.readline)
            assert ready.startswith(READY_PREFIX), ready
            assert f"NATS {nats_url}" in ready
            worker_url = re.search(r"HTTP intake (http://\S+)", ready)
            assert worker_url and worker_url.group(1) != hub.url, ready
            js = nc.jetstream()
            await eventually(lambda: _two_pullers(js, INBOX, ROUTER_DURABLE))
            accepted: list[str] = []
            await _submit_all(worker_url.group(1), 60, accepted)
            drop = data_dir / "outbox" / TENANT / BACKEND
            await eventually(lambda: {p.stem for p in drop.glob("*.json")} == set(accepted))
            reports = {}
            for url in (hub.url, worker_url.group(1)):
                async with httpx.AsyncClient(base_url=url) as client:
                    report = (await client.get("/healthz")).json()
                reports[report["process"]["role"]] = report["counters"]
            # The worker took every submission; primary and worker share the routing.
            assert reports["worker"].get("intake.received") == 60, reports
            assert "intake.received" not in reports["primary"], reports
            routed = [reports[role].get("core.routed", 0) for role in ("primary", "worker")]
            assert sum(routed) == 60 and all(routed), reports
            # Still one server on the store: the worker joined it.
            assert len(list((data_dir / "nats" / "run").glob("*.ports"))) == 1
        finally:
            await nc.close()
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)
        assert worker.returncode == 0, worker_log.read_text()[-3000:]
