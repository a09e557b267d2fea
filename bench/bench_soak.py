"""Soak bench: offer the hub more than it can take for minutes and show it holds.

A real hub (``poststelle run`` on its own embedded-style nats-server, one webhook back end
served here) gets more concurrent submitters than its in-flight limit, each sending as fast
as it is answered. Refused submissions (``429``/``503``) are retried after ``Retry-After``,
as a well-behaved portal does. Every 10 s it prints what was offered and answered, the
routing core's INBOX backlog and the hub's RSS; at the end it waits for the hub to drain and
checks the balance counted by the back end itself:

    accepted (202) = delivered (distinct cases at the webhook) + quarantined + DLQ, lost = 0

    python bench/bench_soak.py             # 180 s
    python bench/bench_soak.py --quick     # 20 s, the smoke test's run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from _bench_http import ConnectionPool, read_message
from bench_hub import MESSAGES, memory_mb, poststelle_run
from nats.js import JetStreamContext

from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.streams.topology import DLQ, INBOX, QUARANTINE, ROUTER_DURABLE

__all__ = ["main"]

TEMPLATE = MESSAGES / "xbau-antrag-0200-5k.xml"
REPORT_EVERY = 10.0
SUBMIT = "/v1/submissions"


@dataclass
class Tally:
    """Answers since the start; ``row`` prints the change since the last row."""

    offered: int = 0
    accepted: int = 0
    duplicate: int = 0
    too_many: int = 0  # 429
    unavailable: int = 0  # 503
    other: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    abandoned: int = 0  # refused, and the run ended before the retry
    _last: tuple[int, int, int, int] = (0, 0, 0, 0)

    def row(self) -> tuple[int, int, int, int]:
        now = (self.offered, self.accepted, self.too_many, self.unavailable)
        delta = tuple(a - b for a, b in zip(now, self._last, strict=True))
        self._last = now
        return delta  # type: ignore[return-value]


class CaseCounter:
    """The back end: a webhook that answers 200 and counts distinct cases it was given."""

    def __init__(self) -> None:
        self.cases: set[str] = set()
        self.posts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while True:
                _, _, body = await read_message(reader)
                self.posts += 1
                self.cases.add(json.loads(body)["data"]["case_id"])
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._connections.pop(task, None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        # Keep-alive connections the hub left open end here, not at interpreter exit; closed
        # rather than cancelled (Python 3.11 logs a cancelled connection handler as an error).
        pending = list(self._connections.items())
        for _, writer in pending:
            writer.close()
        await asyncio.gather(*(task for task, _ in pending), return_exceptions=True)


def _message(template: bytes) -> bytes:
    start = template.index(b"<nachrichtenUUID>") + len(b"<nachrichtenUUID>")
    end = template.index(b"</nachrichtenUUID>", start)
    return template[:start] + str(uuid.uuid4()).encode() + template[end:]


async def _submitter(pool: ConnectionPool, template: bytes, tally: Tally, stop_at: float) -> None:
    """One portal: a new message whenever the last was taken, the same one after a refusal."""
    while time.monotonic() < stop_at:
        body = _message(template)
        while True:
            tally.offered += 1
            try:
                answer = await pool.post(SUBMIT, body, "application/xml")
            except (OSError, asyncio.IncompleteReadError, ValueError):
                tally.errors += 1
                await asyncio.sleep(0.5)
                continue
            if answer.status == 202:
                if json.loads(answer.body)["duplicate"]:
                    tally.duplicate += 1
                else:
                    tally.accepted += 1
                break
            if answer.status in (429, 503):
                if answer.status == 429:
                    tally.too_many += 1
                else:
                    tally.unavailable += 1
                wait = float(answer.headers.get("retry-after", "1"))
                if time.monotonic() + wait >= stop_at:
                    tally.abandoned += 1
                    return
                await asyncio.sleep(wait)
                continue
            tally.other[answer.status] = tally.other.get(answer.status, 0) + 1
            break


async def _backlog(js: JetStreamContext) -> int:
    try:
        return (await js.consumer_info(INBOX, ROUTER_DURABLE, timeout=2.0)).num_pending or 0
    except Exception:
        return -1


async def _count(js: JetStreamContext, stream: str) -> int:
    return (await js.stream_info(stream)).state.messages


async def soak(arguments: argparse.Namespace, root: Path) -> int:
    receiver = CaseCounter()
    await receiver.start()
    template = TEMPLATE.read_bytes()
    config: dict[str, Any] = {
        "http": {"port": 0},
        "intake": {
            "max_in_flight": arguments.max_in_flight,
            "max_backlog": arguments.max_backlog,
            "retry_after": arguments.retry_after,
        },
        "backends": [
            {
                "tenant": "soak",
                "name": "webhook",
                "kind": "webhook",
                "settings": {
                    "url": f"http://127.0.0.1:{receiver.port}/events",
                    "secret": "soak-secret",
                },
            }
        ],
        "routes": [{"tenant": "soak", "backend": "webhook"}],
    }
    with EmbeddedNatsServer(store_dir=root / "nats") as server:
        config["nats"] = {"url": server.client_url}
        with poststelle_run(config, 1, root / "data", root / "hub.log") as hub:
            nc = await nats.connect(server.client_url)
            js = nc.jetstream()
            pool = ConnectionPool([hub.url], arguments.clients)
            tally = Tally()
            started = time.monotonic()
            stop_at = started + arguments.seconds
            clients = [
                asyncio.create_task(_submitter(pool, template, tally, stop_at))
                for _ in range(arguments.clients)
            ]
            peak_rss = 0.0
            print(
                f"soak: {arguments.clients} submitters, max_in_flight {arguments.max_in_flight}"
                f", max_backlog {arguments.max_backlog}, retry_after {arguments.retry_after} s"
                f", {arguments.seconds:.0f} s, hub pid {hub.pids[0]}"
            )
            print(
                f"{'t s':>5} {'offered':>8} {'202':>7} {'429':>7} {'503':>7} "
                f"{'backlog':>8} {'RSS MB':>7}"
            )
            while any(not client.done() for client in clients):
                await asyncio.wait(clients, timeout=REPORT_EVERY)
                offered, accepted, too_many, unavailable = tally.row()
                rss, hwm = memory_mb(hub.pids[0])
                peak_rss = max(peak_rss, hwm)
                print(
                    f"{time.monotonic() - started:5.0f} {offered:8d} {accepted:7d} "
                    f"{too_many:7d} {unavailable:7d} {await _backlog(js):8d} {rss:7.1f}",
                    flush=True,
                )
            for client in clients:
                client.result()  # a bug in a submitter surfaces here
            pool.close()
            # The hub drains what it took: every accepted arrival ends somewhere countable.
            drain_deadline = time.monotonic() + arguments.drain_seconds
            while True:
                quarantined = await _count(js, QUARANTINE)
                dead = await _count(js, DLQ)
                settled = len(receiver.cases) + quarantined + dead
                if settled >= tally.accepted or time.monotonic() > drain_deadline:
                    break
                await asyncio.sleep(0.5)
            drained_in = time.monotonic() - stop_at
            peak_rss = max(peak_rss, memory_mb(hub.pids[0])[1])
            await nc.close()
    await receiver.stop()
    lost = tally.accepted - settled
    print(
        f"totals: offered {tally.offered}, accepted {tally.accepted}, duplicate "
        f"{tally.duplicate}, 429 {tally.too_many}, 503 {tally.unavailable}, other "
        f"{tally.other or 0}, connection errors {tally.errors}, abandoned {tally.abandoned}"
    )
    print(
        f"balance: accepted {tally.accepted} = delivered {len(receiver.cases)} + quarantined "
        f"{quarantined} + DLQ {dead}; lost {lost} (webhook posts {receiver.posts}, "
        f"drained {drained_in:.1f} s after the load stopped)"
    )
    print(f"peak RSS hub: {peak_rss:.1f} MB")
    return 0 if lost == 0 and not tally.other else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long load is offered")
    parser.add_argument("--quick", action="store_true", help="20 s, for the smoke test")
    parser.add_argument("--clients", type=int, default=128, help="concurrent submitters")
    parser.add_argument("--max-in-flight", type=int, default=32, help="the hub's limit")
    parser.add_argument("--max-backlog", type=int, default=500, help="the hub's limit")
    parser.add_argument("--retry-after", type=int, default=1, help="the hub's Retry-After")
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    arguments = parser.parse_args(argv)
    if arguments.quick and "--seconds" not in (argv or sys.argv):
        arguments.seconds = 20.0
    with tempfile.TemporaryDirectory(prefix="poststelle-soak-") as root:
        sys.exit(asyncio.run(soak(arguments, Path(root))))


if __name__ == "__main__":
    main()
