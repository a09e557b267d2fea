"""Native NATS back end: the Fachverfahren pulls ``CASES`` itself, with its own credentials.

The hub only makes sure the back end's durable consumer exists (``case_<tenant>_<backend>``,
the name ``poststelle nats-config`` grants that tenant); it runs no delivery worker. The back
end binds to the consumer, processes each CaseEvent and acks it; the event id is the
idempotency key, and redeliveries follow the same ``max_deliver`` as hub-run back ends.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from poststelle.adapters.base import AdapterContext, AdapterSettings
from poststelle.adapters.errors import PermanentDeliveryError
from poststelle.contracts.events import CaseEvent

__all__ = ["NativeNatsBackend", "NativeNatsSettings"]


class NativeNatsSettings(AdapterSettings):
    """Nothing to set: the consumer follows the back end's ``max_deliver``."""


class NativeNatsBackend:
    kind: ClassVar[Literal["outbound"]] = "outbound"
    settings_model: ClassVar[type[AdapterSettings]] = NativeNatsSettings
    # The hub creates the consumer and leaves the consuming to the back end.
    self_consuming: ClassVar[bool] = True

    def __init__(
        self, *, name: str, tenant: str, settings: NativeNatsSettings, context: AdapterContext
    ) -> None:
        self.name = name
        self.tenant = tenant
        self.settings = settings

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, object]:
        return {"ok": True, "consumed_by": "the back end, natively"}

    async def deliver(self, event: CaseEvent) -> None:
        raise PermanentDeliveryError(
            f"{self.tenant}/{self.name} consumes CASES itself; the hub does not deliver to it"
        )
