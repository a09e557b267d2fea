"""The overview page's figures: the conservation balance, rates, backlogs and health.

The balance is ``collect_stats``'s (``poststelle stats``), derived from the streams alone.
Rates are differences between two looks at the streams' subject counts (arrivals per
channel in ``INBOX``, events per back end in ``CASES``) taken by this process: the first
look after a start has no rate yet. Replays into ``INBOX`` count as arrivals of their
channel here, as they do in the stream.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.routing.ops.stats import collect_stats
from poststelle.routing.streams.topology import CASES, INBOX

__all__ = ["Overview", "RateSampler", "collect_overview"]

Health = Callable[[], Awaitable[dict[str, Any]]]


async def _subject_counts(js: JetStreamContext, stream: str, subjects: str) -> dict[str, int]:
    try:
        info = await js.stream_info(stream, subjects_filter=subjects)
    except NotFoundError:
        return {}
    return {subject: int(count) for subject, count in (info.state.subjects or {}).items()}


def _by_channel(counts: dict[str, int]) -> dict[str, int]:
    grouped: dict[str, int] = {}
    for subject, count in counts.items():
        parts = subject.split(".")  # inbox.<channel>.<adapter>
        key = parts[1] if len(parts) > 1 else subject
        grouped[key] = grouped.get(key, 0) + count
    return grouped


def _by_backend(counts: dict[str, int]) -> dict[str, int]:
    grouped: dict[str, int] = {}
    for subject, count in counts.items():
        parts = subject.split(".")  # case.<tenant>.<backend>.<type>
        key = f"{parts[1]}/{parts[2]}" if len(parts) > 2 else subject
        grouped[key] = grouped.get(key, 0) + count
    return grouped


@dataclass
class RateSampler:
    """Keeps the previous look at the counts; a rate needs two looks a second apart."""

    min_interval: float = 1.0
    _previous: tuple[float, dict[str, int]] | None = field(default=None, init=False)
    _rates: dict[str, float] = field(default_factory=dict, init=False)

    def rates(self, counts: dict[str, int], now: float | None = None) -> dict[str, float]:
        """Per minute, for each key of ``counts``; the last rates until a second passed."""
        now = time.monotonic() if now is None else now
        if self._previous is None:
            self._previous = (now, counts)
            return {}
        then, before = self._previous
        if now - then < self.min_interval:
            return self._rates
        self._rates = {
            key: max(0.0, (count - before.get(key, 0)) * 60.0 / (now - then))
            for key, count in counts.items()
        }
        self._previous = (now, counts)
        return self._rates


@dataclass(frozen=True)
class Overview:
    conservation: dict[str, Any]
    streams: dict[str, int]
    channels: list[tuple[str, int, float | None]]
    backends: list[tuple[str, int, float | None]]
    consumers: dict[str, dict[str, int]]
    health: dict[str, Any]

    @property
    def balanced(self) -> bool:
        return int(self.conservation.get("unaccounted", 0)) == 0


async def collect_overview(js: JetStreamContext, health: Health, sampler: RateSampler) -> Overview:
    stats = await collect_stats(js)
    channels = _by_channel(await _subject_counts(js, INBOX, "inbox.>"))
    backends = _by_backend(await _subject_counts(js, CASES, "case.>"))
    keyed = {f"in:{k}": v for k, v in channels.items()} | {
        f"out:{k}": v for k, v in backends.items()
    }
    rates = sampler.rates(keyed)
    return Overview(
        conservation=stats["conservation"],
        streams=stats["streams"],
        channels=[(k, v, rates.get(f"in:{k}")) for k, v in sorted(channels.items())],
        backends=[(k, v, rates.get(f"out:{k}")) for k, v in sorted(backends.items())],
        consumers=stats["consumers"],
        health=await health(),
    )
