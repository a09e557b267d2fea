"""OpenTelemetry traces across the hub: intake → routing core → delivery → reply → answer.

Each stage opens one span per message and hands its context on in the NATS headers of what it
publishes (W3C ``traceparent``, ``tracestate``), so one trace id follows a case from the
intake to its back end and back: the stored INBOX arrival, its CaseEvent in CASES, the
reply in REPLIES and the answer in OUTBOX carry it. The case record keeps the routing span's
``traceparent`` too: a back end's reply arrives as a new request, and joins its case's trace
through it.

Off unless configured (``[telemetry] otlp_endpoint``): then ``span`` hands out one shared
null context and ``inject`` returns at once, so an unconfigured hub pays a function call per
message and builds nothing. Configured, spans are batched to the OTLP/HTTP exporter (its
package is imported only then). Tests install their own provider with ``use_provider``.
The hub keeps its own provider instead of OpenTelemetry's global one: several hubs in one
process (tests) and the global provider's set-once rule do not collide.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "TRACEPARENT",
    "SpanKind",
    "annotate",
    "configure",
    "current_traceparent",
    "enabled",
    "inject",
    "parent_of",
    "shutdown",
    "span",
    "use_provider",
]

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_NOOP: AbstractContextManager[Any] = contextlib.nullcontext()
_Headers = TypeVar("_Headers", bound=MutableMapping[str, str])


class _State:
    tracer: Tracer | None = None
    provider: Any = None


_state = _State()


def enabled() -> bool:
    return _state.tracer is not None


def use_provider(provider: Any) -> None:
    """Trace through ``provider`` (an SDK ``TracerProvider``); ``None`` turns tracing off."""
    _state.provider = provider
    _state.tracer = None if provider is None else provider.get_tracer("poststelle")


def configure(otlp_endpoint: str | None, service_name: str = "poststelle") -> bool:
    """Export spans to ``otlp_endpoint`` (OTLP over HTTP); ``None`` leaves tracing off.
    Returns whether tracing is on. A second call with tracing on keeps the first set-up:
    one provider per process."""
    if not otlp_endpoint:
        return enabled()
    if enabled():
        return True
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise RuntimeError(
            "telemetry.otlp_endpoint is set but the OTLP exporter is not installed: "
            "pip install 'poststelle[otlp]' (or opentelemetry-exporter-otlp-proto-http)"
        ) from exc
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    use_provider(provider)
    log.info("tracing on otlp_endpoint=%s service=%s", otlp_endpoint, service_name)
    return True


def shutdown() -> None:
    """Send what is batched and stop (the hub's last act)."""
    provider = _state.provider
    if provider is not None:
        provider.shutdown()
    use_provider(None)


def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
) -> AbstractContextManager[Any]:
    """A span for one message, child of the context in ``parent`` (its NATS headers) if
    they carry one, else of the current span; the shared null context when tracing is off."""
    tracer = _state.tracer
    if tracer is None:
        return _NOOP
    context = _PROPAGATOR.extract(parent) if parent and TRACEPARENT in parent else None
    return tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=dict(attributes or {})
    )


def annotate(**attributes: str | int) -> None:
    """Attributes for the current span, known only once its work is under way."""
    if _state.tracer is not None:
        trace_api.get_current_span().set_attributes(attributes)


def inject(headers: _Headers) -> _Headers:
    """Add the current span's ``traceparent`` to ``headers`` (returned, for chaining)."""
    if _state.tracer is not None:
        _PROPAGATOR.inject(headers)
    return headers


def current_traceparent() -> str | None:
    """The current span's ``traceparent``, to keep beside a case (``None`` when off)."""
    if _state.tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def parent_of(traceparent: str | None) -> dict[str, str] | None:
    """Headers-like carrier for a kept ``traceparent`` (``span(parent=...)``)."""
    return {TRACEPARENT: traceparent} if traceparent else None
