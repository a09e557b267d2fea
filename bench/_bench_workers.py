"""The helper processes ``bench_hub.py`` starts beside the hub (which it starts as
``poststelle run --workers N``): the raw loops and the webhook receiver.

    python bench/_bench_workers.py raw --url nats://... --batch 256
    python bench/_bench_workers.py receiver

Each prints ``ready <detail>`` on stdout once it serves, and stops cleanly on SIGTERM or when
its stdin closes (the receiver prints ``received <count>`` before it exits).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import nats
from nats.js.errors import FetchTimeoutError

from poststelle.routing.streams.topology import INBOX

__all__ = ["RAW_DURABLE", "RAW_SUBJECT"]

RAW_DURABLE = "raw"
RAW_SUBJECT = "case.raw.bench.x"


def _ready(detail: str = "") -> None:
    print(f"ready {detail}".rstrip(), flush=True)


def _until_terminated() -> asyncio.Event:
    """Set on SIGTERM or SIGINT, or when the bench's end of stdin closes: a bench killed
    without cleaning up must not leave hubs running for ever."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    return stop


async def run_raw(url: str, batch: int) -> None:
    """The least a router must do: fetch a batch, publish each to CASES asynchronously,
    await every ack, ack the batch. Shares the ``raw`` durable the bench created."""
    stop = _until_terminated()
    nc = await nats.connect(url)
    js = nc.jetstream()
    subscription = await js.pull_subscribe("inbox.>", durable=RAW_DURABLE, stream=INBOX)
    _ready()
    while not stop.is_set():
        try:
            messages = await subscription.fetch(batch, timeout=0.5)
        except (FetchTimeoutError, TimeoutError):
            continue
        acks = [
            await js.publish_async(
                RAW_SUBJECT,
                msg.data,
                headers={"Nats-Msg-Id": f"raw:{msg.metadata.sequence.stream}"},
            )
            for msg in messages
        ]
        await asyncio.gather(*acks)
        for msg in messages:
            await msg.ack()
    await nc.close()


async def run_receiver() -> None:
    from _bench_http import Receiver  # the bench folder is on sys.path when run as a script

    stop = _until_terminated()
    receiver = Receiver()
    await receiver.start()
    _ready(f"http://127.0.0.1:{receiver.port}/cases")
    await stop.wait()
    await receiver.stop()
    print(f"received {receiver.received}", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    roles = parser.add_subparsers(dest="role", required=True)
    raw = roles.add_parser("raw")
    raw.add_argument("--url", required=True)
    raw.add_argument("--batch", type=int, default=256)
    roles.add_parser("receiver")
    arguments = parser.parse_args(argv)
    if arguments.role == "raw":
        asyncio.run(run_raw(arguments.url, arguments.batch))
    else:
        asyncio.run(run_receiver())


if __name__ == "__main__":
    main(sys.argv[1:])
