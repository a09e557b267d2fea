"""The hub's instruments: in-process counters (``/healthz``, the conservation checks in tests)
and the Prometheus series behind ``GET /metrics``.

``Counters`` is one process's account (received = routed + quarantined + duplicates + in
flight). ``HubMetrics`` carries the same events as labelled Prometheus series plus latency
histograms; ``Counters.metrics`` holds the hub's one ``HubMetrics``, so every stage that
counts gets both from the object it already has.

Cost on the hot path: a label set's child is bound once and kept in a dict keyed by the
label values, so counting a message is one dict lookup and one ``inc``; no label dict is
built per message. Label values come from the hub itself (channel and adapter names from the
configuration, standards from the contract registry, consumer names), never from message
content; a label that still grows past ``MAX_LABEL_SETS`` sets is folded into ``other``.

Several processes (``poststelle run --workers N``): prometheus-client's multiprocess mode,
with ``PROMETHEUS_MULTIPROC_DIR`` set before the library is imported (``poststelle run``
does it, under the data folder): each process writes its values to files there and any
process answering ``/metrics`` sums them. Broker state (backlogs, stream sizes, quarantine
and DLQ) is not a process's to count: it is read from JetStream at scrape time
(``broker_exposition``), so every process answers the same.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from poststelle.contracts.data_dir import process_alive

__all__ = [
    "CONTENT_TYPE",
    "MAX_LABEL_SETS",
    "MULTIPROC_ENV",
    "Counters",
    "HubMetrics",
    "broker_exposition",
    "prepare_multiprocess_dir",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_LABEL_SETS = 500
_OTHER = "other"

# Seconds. The intake answers after JetStream's ack (a few ms); a back end may take seconds.
_INTAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
_DELIVERY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def multiprocess_dir() -> Path | None:
    """The folder the processes of this hub write their values to, if the library writes
    there (it decides when it is imported)."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path or not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return Path(path)


def prepare_multiprocess_dir(path: Path, *, clear: bool) -> None:
    """Make this process (and the workers it starts, through the environment) write its
    values under ``path``. Runs before the hub's first metric exists. ``clear`` (a primary,
    at start) drops the files of processes no longer running: an earlier run's counters
    would otherwise be added to this run's. A worker that dies during the run keeps its
    file, so the hub's counters never go down when it is restarted."""
    path.mkdir(parents=True, exist_ok=True)
    if clear:
        for file in path.glob("*.db"):
            pid = file.stem.rsplit("_", 1)[-1]
            if not pid.isdigit() or not process_alive(int(pid)):
                file.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus-client picks its value class when it is imported; the CLI imported it
    # before the data folder was known, so it picks again (its own tests do the same).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


class _Children:
    """Label values -> the bound child, for one labelled metric."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._bound: dict[tuple[str, ...], Any] = {}

    def get(self, key: tuple[str, ...]) -> Any:
        child = self._bound.get(key)
        if child is None:
            if len(self._bound) >= MAX_LABEL_SETS:
                key = tuple(_OTHER for _ in key)
                child = self._bound.get(key)
                if child is not None:
                    return child
            child = self._bound[key] = self._metric.labels(*key)
        return child


class HubMetrics:
    """The Prometheus series one hub process writes (see the module's docstring)."""

    def __init__(self) -> None:
        # A registry of its own: several hubs in one process (tests) do not collide.
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._intake = _Children(
            PromCounter(
                "poststelle_intake_messages",
                "Arrivals offered to the intake, by channel and what became of them "
                "(received, duplicate, too_large, unavailable)",
                ["channel", "outcome"],
                registry=r,
            )
        )
        self._intake_refused = _Children(
            PromCounter(
                "poststelle_intake_refused",
                "Arrivals refused by admission control (in_flight, backlog, stream_full)",
                ["reason"],
                registry=r,
            )
        )
        self._intake_seconds = _Children(
            Histogram(
                "poststelle_intake_seconds",
                "Time to store an arrival in INBOX (until JetStream's ack), by channel",
                ["channel"],
                buckets=_INTAKE_BUCKETS,
                registry=r,
            )
        )
        self._routed = _Children(
            PromCounter(
                "poststelle_messages",
                "Arrivals the routing core settled, by channel, standard and outcome "
                "(routed, quarantined, forwarded)",
                ["channel", "standard", "outcome"],
                registry=r,
            )
        )
        self.core_seconds = Histogram(
            "poststelle_core_message_seconds",
            "Routing core time per arrival: read, inspect, validate, map, resolve, publish",
            buckets=_CORE_BUCKETS,
            registry=r,
        )
        self.core_retries = PromCounter(
            "poststelle_core_retries",
            "Arrivals the routing core nak'd to try again (broker or store unavailable)",
            registry=r,
        )
        self._deliveries = _Children(
            PromCounter(
                "poststelle_deliveries",
                "Hand-overs by durable consumer (back end or answering adapter) and outcome "
                "(delivered, retried, dead_lettered, repeat_recognised)",
                ["consumer", "outcome"],
                registry=r,
            )
        )
        self._delivery_seconds = _Children(
            Histogram(
                "poststelle_delivery_seconds",
                "Time a back end or an answering adapter took to take one message",
                ["consumer"],
                buckets=_DELIVERY_BUCKETS,
                registry=r,
            )
        )
        self._replies = _Children(
            PromCounter(
                "poststelle_replies",
                "Back-end replies the reply router settled (routed, quarantined)",
                ["outcome"],
                registry=r,
            )
        )
        self.dead_letters_recorded = PromCounter(
            "poststelle_dead_letters_recorded",
            "DLQ records written from JetStream max-deliveries advisories",
            registry=r,
        )

    # Hot-path entry points: one dict lookup for the bound child, then the library's own call.

    def intake(self, channel: str, outcome: str) -> None:
        self._intake.get((channel, outcome)).inc()

    def intake_refused(self, reason: str) -> None:
        self._intake_refused.get((reason,)).inc()

    def intake_seconds(self, channel: str, seconds: float) -> None:
        self._intake_seconds.get((channel,)).observe(seconds)

    def settled(self, channel: str, standard: str, outcome: str) -> None:
        self._routed.get((channel, standard, outcome)).inc()

    def delivery(self, consumer: str, outcome: str) -> None:
        self._deliveries.get((consumer, outcome)).inc()

    def delivery_seconds(self, consumer: str, seconds: float) -> None:
        self._delivery_seconds.get((consumer,)).observe(seconds)

    def reply(self, outcome: str) -> None:
        self._replies.get((outcome,)).inc()

    def exposition(self) -> bytes:
        """The process-written series in the text format: every process's sum in
        multiprocess mode, else this hub's own."""
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
        return generate_latest(registry)


class Counters:
    def __init__(self, metrics: HubMetrics | None = None) -> None:
        self._values: Counter[str] = Counter()
        self.metrics = metrics if metrics is not None else HubMetrics()

    def incr(self, name: str, by: int = 1) -> None:
        self._values[name] += by

    def get(self, name: str) -> int:
        return self._values[name]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._values.items()))


# -- broker state, read at scrape time ---------------------------------------------------


class _Snapshot:
    """A collector over figures read before the scrape (``collect`` cannot await)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def broker_exposition(
    stats: dict[str, Any] | None, route_table: dict[str, Any] | None = None
) -> bytes:
    """Gauges from ``collect_stats``'s answer (``None``: the broker did not answer, so only
    ``poststelle_broker_up 0``) and the route table this process routes on."""
    up = _gauge("poststelle_broker_up", "1 if JetStream answered the scrape's questions")
    up.add_metric([], 0 if stats is None else 1)
    families: list[Metric] = [up]
    if stats is not None:
        streams = _gauge("poststelle_stream_messages", "Messages stored per stream", ["stream"])
        for stream, count in sorted(stats["streams"].items()):
            streams.add_metric([stream], count)
        pending = _gauge(
            "poststelle_consumer_pending",
            "Backlog per durable consumer: messages it has not been given yet",
            ["consumer"],
        )
        ack_pending = _gauge(
            "poststelle_consumer_ack_pending",
            "Messages given to a consumer and not acknowledged yet",
            ["consumer"],
        )
        redelivered = _gauge(
            "poststelle_consumer_redelivered",
            "Messages a consumer has been given more than once and not acknowledged",
            ["consumer"],
        )
        for consumer, figures in sorted(stats["consumers"].items()):
            pending.add_metric([consumer], figures["stream_pending"])
            ack_pending.add_metric([consumer], figures["ack_pending"])
            redelivered.add_metric([consumer], figures["redelivered"])
        balance = stats["conservation"]
        quarantined = _gauge(
            "poststelle_quarantined_messages",
            "Arrivals parked in QUARANTINE by the routing core (replayable)",
        )
        quarantined.add_metric([], balance["quarantined"])
        dead = _gauge("poststelle_dead_letters", "Deliveries parked in DLQ (replayable)")
        dead.add_metric([], balance["dead_lettered"])
        unaccounted = _gauge(
            "poststelle_unaccounted_messages",
            "received - routed - forwarded - quarantined - router dead letters - in flight: "
            "0 when every arrival is accounted for",
        )
        unaccounted.add_metric([], balance["unaccounted"])
        forwarded = _gauge(
            "poststelle_forwarded_messages",
            "Arrivals forwarded to a peer state's hub (FEDERATION), per peer",
            ["peer"],
        )
        for peer, count in balance["forwarded_to"].items():
            forwarded.add_metric([peer], count)
        arrived = _gauge(
            "poststelle_arrived_from_peers_messages",
            "Arrivals a peer state's hub forwarded here (part of received), per peer",
            ["peer"],
        )
        for peer, count in balance["arrived_from"].items():
            arrived.add_metric([peer], count)
        delivered = _gauge(
            "poststelle_delivered_messages",
            "Routed events a back end has (acked by its consumer; a native NATS back end's "
            "once stored under its subject), per back end consumer",
            ["consumer"],
        )
        for consumer, count in balance["delivered_by_backend"].items():
            delivered.add_metric([consumer], count)
        delivering = _gauge(
            "poststelle_delivering_messages",
            "Routed events on their way to hub-run back ends (pending or unacknowledged)",
        )
        delivering.add_metric([], balance["delivering"])
        native_backlog = _gauge(
            "poststelle_native_backlog_messages",
            "Events native NATS back ends have not pulled and acked yet",
        )
        native_backlog.add_metric([], balance["native_backlog"])
        families += [streams, pending, ack_pending, redelivered, quarantined, dead, unaccounted]
        families += [forwarded, arrived, delivered, delivering, native_backlog]
    if route_table is not None:
        rules = _gauge("poststelle_route_table_rules", "Rules in the table this process routes on")
        rules.add_metric([], route_table.get("rules") or 0)
        version = _gauge(
            "poststelle_route_table_version",
            "The route table this process routes on (1 for the snapshot named, 0 if none)",
            ["source", "snapshot"],
        )
        snapshot = route_table.get("snapshot")
        version.add_metric([route_table.get("source", ""), snapshot or ""], 1 if snapshot else 0)
        families += [rules, version]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry)
