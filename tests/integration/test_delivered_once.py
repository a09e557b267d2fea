"""Effectively once at a webhook back end across a hub crash: a real ``poststelle run
--workers 1`` is SIGKILLed while it delivers to a real HTTP receiver under load, started
again on the same NATS server, and the receiver (counting by idempotency key) gets every
case; a repeat can only be an event of the batch the hub was working when it died (between
the receiver's 200 and the delivered-ledger entry: docs/operations.md). The delivered-ledger
is what keeps the events confirmed before the crash from coming again."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig

from poststelle.routing.hub.delivery import backend_subject, consumer_name, ledger_key
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.streams.topology import CASES, DELIVERED_BUCKET, ensure_topology
from tests.adapters.receiver import Receiver, webhook_receiver
from tests.integration.conftest import eventually
from tests.integration.test_workers import POSTSTELLE, _environment, _submit_all

TENANT, BACKEND = "stadt-kiel", "akte-hook"
# One fetched batch: what the hub can hold between a back end's 200 and the ledger entry.
BATCH = 32


def _config(receiver: Receiver) -> str:
    return f"""
[[backends]]
tenant = "{TENANT}"
name = "{BACKEND}"
kind = "webhook"
settings = {{ url = "{receiver.url}", secret = "{receiver.secret.decode()}" }}

[[routes]]
standard = "xbau"
tenant = "{TENANT}"
backend = "{BACKEND}"
"""


@contextlib.contextmanager
def _hub(tmp_path: Path, nats_url: str, run: int) -> Iterator[tuple[subprocess.Popen[str], str]]:
    log = tmp_path / f"run-{run}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                *POSTSTELLE,
                *("run", "--config", str(tmp_path / "hub.toml"), "--no-demo"),
                *("--http-port", "0", "--workers", "1", "--nats-url", nats_url),
                *("--data-dir", str(tmp_path / "data")),
            ],
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
        url = re.search(r"POST (http://\S+)/v1/submissions", "".join(banner))
        assert url, "".join(banner) + log.read_text()[-3000:]
        yield process, url.group(1)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


async def test_a_killed_hub_delivers_each_event_once_or_repeats_only_its_last_batch(
    tmp_path: Path, fresh_nats: EmbeddedNatsServer
) -> None:
    count = 120
    nc = await nats.connect(fresh_nats.client_url)
    try:
        js = nc.jetstream()
        await ensure_topology(js)
        # A short ack wait, set before the hub binds the consumer: what the killed hub held
        # comes again within seconds.
        await js.add_consumer(
            CASES,
            ConsumerConfig(
                durable_name=consumer_name(TENANT, BACKEND),
                filter_subject=backend_subject(TENANT, BACKEND),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=3.0,
                max_deliver=10,
                max_ack_pending=1024,
            ),
        )
        with webhook_receiver() as receiver:
            receiver.delay = 0.02  # slower than the intake: deliveries are under way at the kill
            (tmp_path / "hub.toml").write_text(_config(receiver))
            accepted: list[str] = []
            with _hub(tmp_path, fresh_nats.client_url, 1) as (first, url):
                await _submit_all(url, count, accepted)
                await eventually(lambda: len(receiver.accepted_keys()) >= count // 4)
                os.kill(first.pid, signal.SIGKILL)
                first.wait(timeout=10)
            confirmed_before = len(receiver.accepted_keys())
            assert confirmed_before < count, "the kill came after the last delivery"
            with _hub(tmp_path, fresh_nats.client_url, 2):

                async def settled() -> bool:
                    if len(set(receiver.accepted_keys())) < count:
                        return False
                    info = await js.consumer_info(CASES, consumer_name(TENANT, BACKEND))
                    return (info.num_pending, info.num_ack_pending) == (0, 0)

                await eventually(settled, within=60)
            keys = Counter(receiver.accepted_keys())
            repeats = sum(n - 1 for n in keys.values())
            print(f"confirmed before the kill={confirmed_before} repeats={repeats} of {count}")
            assert len(keys) == count and len(set(accepted)) == count
            assert repeats <= BATCH, keys.most_common(5)
            ledger = await js.key_value(DELIVERED_BUCKET)
            durable = consumer_name(TENANT, BACKEND)
            for key in keys:
                await ledger.get(ledger_key(durable, key))  # every event is in the ledger
    finally:
        await nc.close()
