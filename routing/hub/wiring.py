"""Turning ``[[backends]]`` and ``[[inbound]]`` entries into adapters through the registry."""

from __future__ import annotations

from pydantic import ValidationError

from poststelle.adapters.base import (
    AdapterContext,
    AdapterSettings,
    InboundAdapter,
    OutboundAdapter,
)
from poststelle.adapters.registry import AdapterRegistry, UnknownAdapterError
from poststelle.routing.hub.config import BackendConfig, ConfigError, HubConfig

__all__ = ["build_backend", "build_backends", "build_inbound"]


def _resolve(
    key: str, kind: str, settings: dict[str, object], wanted: str, registry: AdapterRegistry
) -> tuple[type, AdapterSettings]:
    try:
        adapter_class = registry.get(kind)
    except UnknownAdapterError as exc:
        raise ConfigError(f"{key}.kind: {exc}") from exc
    if getattr(adapter_class, "kind", None) != wanted:
        role = "deliver to back ends" if wanted == "outbound" else "receive messages"
        raise ConfigError(f"{key}.kind: adapter {kind!r} does not {role}")
    try:
        validated = adapter_class.settings_model.model_validate(settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{key}.settings.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
    return adapter_class, validated


def build_backend(
    index: int, backend: BackendConfig, registry: AdapterRegistry, context: AdapterContext
) -> OutboundAdapter:
    adapter_class, settings = _resolve(
        f"backends[{index}]", backend.kind, backend.settings, "outbound", registry
    )
    adapter: OutboundAdapter = adapter_class(
        name=backend.name, tenant=backend.tenant, settings=settings, context=context
    )
    return adapter


def build_inbound(
    config: HubConfig, registry: AdapterRegistry, context: AdapterContext
) -> list[InboundAdapter]:
    adapters: list[InboundAdapter] = []
    for index, entry in enumerate(config.inbound):
        adapter_class, settings = _resolve(
            f"inbound[{index}]", entry.kind, entry.settings, "inbound", registry
        )
        adapters.append(adapter_class(name=entry.name, settings=settings, context=context))
    return adapters


def build_backends(
    config: HubConfig, registry: AdapterRegistry, context: AdapterContext
) -> list[tuple[BackendConfig, OutboundAdapter]]:
    return [
        (backend, build_backend(index, backend, registry, context))
        for index, backend in enumerate(config.backends)
    ]
