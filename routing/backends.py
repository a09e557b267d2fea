"""Turning ``[[backends]]`` entries into outbound adapters through the registry."""

from __future__ import annotations

from pydantic import ValidationError

from poststelle.adapters.base import AdapterContext, OutboundAdapter
from poststelle.adapters.registry import AdapterRegistry, UnknownAdapterError
from poststelle.routing.config import BackendConfig, ConfigError, HubConfig

__all__ = ["build_backend", "build_backends"]


def build_backend(
    index: int, backend: BackendConfig, registry: AdapterRegistry, context: AdapterContext
) -> OutboundAdapter:
    key = f"backends[{index}]"
    try:
        adapter_class = registry.get(backend.kind)
    except UnknownAdapterError as exc:
        raise ConfigError(f"{key}.kind: {exc}") from exc
    if getattr(adapter_class, "kind", None) != "outbound":
        raise ConfigError(f"{key}.kind: adapter {backend.kind!r} does not deliver to back ends")
    try:
        settings = adapter_class.settings_model.model_validate(backend.settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{key}.settings.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
    adapter: OutboundAdapter = adapter_class(
        name=backend.name, tenant=backend.tenant, settings=settings, context=context
    )
    return adapter


def build_backends(
    config: HubConfig, registry: AdapterRegistry, context: AdapterContext
) -> list[tuple[BackendConfig, OutboundAdapter]]:
    return [
        (backend, build_backend(index, backend, registry, context))
        for index, backend in enumerate(config.backends)
    ]
