"""``GET /metrics``: the counters move with traffic, broker state is read from JetStream, and
with ``poststelle run --workers 2`` any process answers with the sum of all of them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.metrics import Counters, HubMetrics
from tests.integration.conftest import eventually
from tests.integration.test_workers import poststelle_run
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, parsed by prometheus-client's own parser."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and wanted <= ls)


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_counters_and_histograms_move_during_traffic(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    before = await scrape(http)
    assert value(before, "poststelle_messages_total", outcome="routed") == 0
    assert value(before, "poststelle_broker_up") == 1

    bodies = [xbau_antrag()[0] for _ in range(5)]
    for body in bodies:
        assert (await http.post("/v1/submissions", content=body, headers=XML)).status_code == 202
    again = await http.post("/v1/submissions", content=bodies[0], headers=XML)
    assert again.json()["duplicate"] is True
    bad = await http.post("/v1/submissions", content=b"<not-xoev/>", headers=XML)
    assert bad.status_code == 202

    async def settled() -> str | None:
        text = await scrape(http)
        delivered = value(text, "poststelle_deliveries_total", outcome="delivered")
        # The broker's side: the back end's consumer has the acks (they go unawaited).
        stored = value(text, "poststelle_delivered_messages")
        return text if (delivered, stored) == (5, 5) else None

    text = await eventually(settled)
    assert (
        value(text, "poststelle_intake_messages_total", channel="portal", outcome="received") == 6
    )
    assert value(text, "poststelle_intake_messages_total", outcome="duplicate") == 1
    routed = value(
        text, "poststelle_messages_total", channel="portal", standard="xbau", outcome="routed"
    )
    assert routed == 5
    assert value(text, "poststelle_messages_total", outcome="quarantined") == 1
    consumer = hub.workers[0].durable
    assert value(text, "poststelle_deliveries_total", consumer=consumer, outcome="delivered") == 5
    # Histograms: one observation per arrival stored, per arrival routed, per hand-over.
    assert value(text, "poststelle_intake_seconds_count", channel="portal") == 7
    assert value(text, "poststelle_core_message_seconds_count") == 6
    assert value(text, "poststelle_delivery_seconds_count", consumer=consumer) == 5
    assert value(text, "poststelle_intake_seconds_bucket", channel="portal", le="+Inf") == 7
    # Broker state, read from JetStream at scrape time.
    assert value(text, "poststelle_stream_messages", stream="INBOX") == 6
    assert value(text, "poststelle_stream_messages", stream="CASES") == 5
    assert value(text, "poststelle_quarantined_messages") == 1
    assert value(text, "poststelle_dead_letters") == 0
    assert value(text, "poststelle_unaccounted_messages") == 0
    assert value(text, "poststelle_delivered_messages", consumer=consumer) == 5
    assert value(text, "poststelle_delivering_messages") == 0
    assert value(text, "poststelle_native_backlog_messages") == 0
    # Federation terms: families without series on a hub with no peers.
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"poststelle_forwarded_messages", "poststelle_arrived_from_peers_messages"} <= families
    assert value(text, "poststelle_forwarded_messages") == 0
    assert ("poststelle_consumer_pending", frozenset({("consumer", consumer)})) in samples(text)
    assert value(text, "poststelle_route_table_rules") >= 1


async def test_backlog_gauge_shows_what_a_consumer_has_not_taken(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    worker = hub.workers[0]
    worker.stop()  # the back end's consumer stays; nothing takes from it now
    await eventually(lambda: all(t.done() for t in hub._tasks if t.get_name() == worker.durable))
    for _ in range(3):
        body = xbau_antrag()[0]
        assert (await http.post("/v1/submissions", content=body, headers=XML)).status_code == 202

    async def backlog() -> float:
        text = await scrape(http)
        return value(text, "poststelle_consumer_pending", consumer=worker.durable)

    assert await eventually(lambda: _at_least(backlog, 3)) >= 3


async def _at_least(read: object, minimum: float) -> float | None:
    got = await read()  # type: ignore[operator]
    return got if got >= minimum else None


def test_label_sets_are_bounded() -> None:
    metrics = HubMetrics()
    for index in range(600):
        metrics.delivery(f"consumer-{index}", "delivered")
    exposed = metrics.exposition().decode()
    consumers = set(re.findall(r'poststelle_deliveries_total\{consumer="([^"]+)"', exposed))
    assert len(consumers) == 501  # 500 named, the rest folded into one
    assert "other" in consumers
    assert value(exposed, "poststelle_deliveries_total", consumer="other") == 100


def test_hub_counters_carry_the_metrics() -> None:
    counters = Counters()
    counters.metrics.settled("portal", "xbau", "routed")
    text = counters.metrics.exposition().decode()
    labels = {"channel": "portal", "standard": "xbau", "outcome": "routed"}
    assert value(text, "poststelle_messages_total", **labels) == 1


async def test_workers_share_one_view(tmp_path: Path) -> None:
    """Two processes route and deliver; /metrics, whichever answers, counts every case."""
    with poststelle_run(tmp_path, "--workers", "2") as running:
        assert len(running.pids) == 2
        async with httpx.AsyncClient(base_url=running.url, timeout=30.0) as http:
            bodies = [xbau_antrag()[0] for _ in range(20)]
            answers = await asyncio.gather(
                *(http.post("/v1/submissions", content=b, headers=XML) for b in bodies)
            )
            assert all(a.status_code == 202 for a in answers)

            async def all_delivered() -> str | None:
                text = await scrape(http)
                delivered = value(text, "poststelle_deliveries_total", outcome="delivered")
                return text if delivered >= 20 else None

            text = await eventually(all_delivered, within=60)
            assert value(text, "poststelle_intake_messages_total", outcome="received") == 20
            assert value(text, "poststelle_messages_total", outcome="routed") == 20
            assert value(text, "poststelle_deliveries_total", outcome="delivered") == 20
            # Several scrapes land on either process: each gives the same sums.
            for _ in range(6):
                again = await scrape(http)
                assert value(again, "poststelle_messages_total", outcome="routed") == 20
        files = sorted(p.name for p in (tmp_path / "data" / "metrics").glob("*.db"))
        pids = {int(name.rsplit("_", 1)[1].split(".")[0]) for name in files}
        assert pids == set(running.pids), files


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
_QUERIED = re.compile(r"\bpoststelle_[a-z_]+\b")


def _queries(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [q for value in node.values() for q in _queries(value)]
    if isinstance(node, list):
        return [q for item in node for q in _queries(item)]
    return []


async def test_every_metric_the_dashboard_queries_is_exported(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["panels"]
    queried = {name for query in _queries(dashboard) for name in _QUERIED.findall(query)}
    assert len(queried) >= 15, queried
    body = xbau_antrag()[0]
    assert (await http.post("/v1/submissions", content=body, headers=XML)).status_code == 202
    await eventually(lambda: hub.counters.get("delivery.delivered") >= 1)
    text = await scrape(http)
    families = {family.name for family in text_string_to_metric_families(text)}
    exported = {name for name, _ in samples(text)} | families
    # A labelled family without a series yet is exported as HELP and TYPE, named without
    # its _total; its series then carry the suffix the query names.
    missing = {
        name
        for name in queried
        if name not in exported and re.sub(r"_(total|bucket|count|sum)$", "", name) not in families
    }
    assert missing == set()


def test_a_primary_drops_the_files_of_processes_gone_and_keeps_the_living(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import values

    from poststelle.routing.ops.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    # Restored after the test: the switch to multiprocess mode is process-wide.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    gone = subprocess.Popen(["true"])
    gone.wait()
    folder = tmp_path / "metrics"
    folder.mkdir()
    for name in (f"counter_{gone.pid}.db", f"counter_{os.getpid()}.db", "histogram_x.db"):
        (folder / name).write_bytes(b"")
    prepare_multiprocess_dir(folder, clear=False)
    assert len(list(folder.glob("*.db"))) == 3  # a supervised worker keeps every file
    prepare_multiprocess_dir(folder, clear=True)
    assert sorted(p.name for p in folder.glob("*.db")) == [f"counter_{os.getpid()}.db"]
    assert os.environ[MULTIPROC_ENV] == str(folder)
    assert getattr(values.ValueClass, "_multiprocess", False)
