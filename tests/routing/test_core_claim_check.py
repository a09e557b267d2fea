"""The routing core's reaction to an object store that does not answer: a delayed retry
(growing with the delivery count), never an immediate redelivery and never a quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors

from poststelle.contracts.envelope import H_BODY_REF, H_BODY_SHA256, H_BODY_SIZE, H_CASE_ID
from poststelle.contracts.inspection import MessageInspector
from poststelle.routing.hub.core import RoutingCore
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.table.static import StaticRouteResolver


class _UnreachableStore:
    async def object_store(self, bucket: str) -> Any:
        raise nats.errors.TimeoutError

    async def publish_async(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing may be published while the body is unreadable")


@dataclass
class _Metadata:
    num_delivered: int


@dataclass
class _Msg:
    num_delivered: int
    headers: dict[str, str] = field(
        default_factory=lambda: {
            H_CASE_ID: "c-1",
            H_BODY_REF: "attachments/messages/" + "a" * 64,
            H_BODY_SIZE: "700000",
            H_BODY_SHA256: "a" * 64,
        }
    )
    data: bytes = b""
    naks: list[float | None] = field(default_factory=list)
    acks: int = 0

    @property
    def metadata(self) -> _Metadata:
        return _Metadata(self.num_delivered)

    async def nak(self, delay: float | None = None) -> None:
        self.naks.append(delay)

    async def ack(self) -> None:
        self.acks += 1


async def test_unreachable_store_is_retried_later_with_a_growing_delay(tmp_path: Path) -> None:
    js: Any = _UnreachableStore()
    counters = Counters()
    core = RoutingCore(
        js,
        StaticRouteResolver([]),
        AuditTrail(js),
        counters,
        inspector=MessageInspector(tmp_path),
    )
    first, fourth = _Msg(num_delivered=1), _Msg(num_delivered=4)
    await core.process_batch([first, fourth])  # type: ignore[list-item]
    assert first.acks == fourth.acks == 0
    [early], [late] = first.naks, fourth.naks
    assert early is not None and early >= 1.0
    assert late is not None and late > early
    assert counters.get("core.quarantined") == 0
