"""Traces on a real nats-server: one trace id from the intake to the back end and back, the
context carried in NATS headers; OTLP export when configured; nothing at all when not."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops import tracing
from poststelle.routing.streams.topology import CASES, INBOX
from tests.adapters.receiver import webhook_receiver
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}
STATUS = {"kind": "receipt"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_provider(None)


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


async def test_one_trace_spans_intake_core_delivery_reply_and_answer(
    spans: InMemorySpanExporter, hub: Hub, http: httpx.AsyncClient
) -> None:
    body, _ = xbau_antrag()
    case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()["case_id"]
    await eventually(lambda: "poststelle delivery" in _by_name(spans.get_finished_spans()))
    reply = await http.post(f"/v1/cases/{case_id}/events", json=STATUS)
    assert reply.status_code in (200, 202), reply.text
    await eventually(lambda: "poststelle answer" in _by_name(spans.get_finished_spans()))

    found = _by_name(spans.get_finished_spans())
    chain = [
        "poststelle intake",
        "poststelle route",
        "poststelle delivery",
        "poststelle reply",
        "poststelle reply-route",
        "poststelle answer",
    ]
    assert {found[name].context.trace_id for name in chain} == {
        found["poststelle intake"].context.trace_id
    }
    parent_of = {
        "poststelle route": "poststelle intake",
        "poststelle delivery": "poststelle route",
        "poststelle reply": "poststelle route",
        "poststelle reply-route": "poststelle reply",
        "poststelle answer": "poststelle reply-route",
    }
    for child, parent in parent_of.items():
        assert found[child].parent is not None, child
        assert found[child].parent.span_id == found[parent].context.span_id, child
    assert found["poststelle intake"].attributes["poststelle.case_id"] == case_id
    assert found["poststelle route"].attributes["poststelle.outcome"] == "routed"
    assert found["poststelle delivery"].attributes["poststelle.consumer"] == hub.workers[0].durable

    # The context travels in the stored messages' headers, W3C traceparent.
    trace_hex = f"{found['poststelle intake'].context.trace_id:032x}"
    arrival = await hub.js.get_last_msg(INBOX, "inbox.>")
    assert (arrival.headers or {})["traceparent"].split("-")[1] == trace_hex
    event = await hub.js.get_last_msg(CASES, "case.>")
    assert (event.headers or {})["traceparent"].split("-")[1] == trace_hex
    # And the audit trail shows it beside the routed hop.
    assert hub.audit is not None
    routed = [e for e in await hub.audit.read(case_id) if e.hop == "routed"]
    assert trace_hex in routed[0].detail["traceparent"]


async def test_a_webhook_back_end_is_sent_the_trace_context(
    spans: InMemorySpanExporter, hub_config: HubConfig
) -> None:
    document = hub_config.model_dump(mode="json")
    document["routes"] = [{"standard": "xbau", "tenant": "stadt-kiel", "backend": "fv"}]
    with webhook_receiver() as receiver:
        document["backends"] = [receiver.backend("stadt-kiel", "fv")]
        async with (
            Hub(HubConfig.model_validate(document)) as hub,
            httpx.AsyncClient(base_url=hub.http_url) as http,
        ):
            body, _ = xbau_antrag()
            assert (await http.post("/v1/submissions", content=body, headers=XML)).is_success
            await eventually(lambda: receiver.traceparents)
            await eventually(lambda: "poststelle delivery" in _by_name(spans.get_finished_spans()))
    found = _by_name(spans.get_finished_spans())
    _, trace_id, parent_id, _ = receiver.traceparents[0].split("-")
    assert int(trace_id, 16) == found["poststelle intake"].context.trace_id
    assert int(parent_id, 16) == found["poststelle delivery"].context.span_id


async def test_a_caller_with_a_traceparent_is_continued(
    spans: InMemorySpanExporter, hub: Hub, http: httpx.AsyncClient
) -> None:
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    body, _ = xbau_antrag()
    answer = await http.post(
        "/v1/submissions", content=body, headers={**XML, "traceparent": caller}
    )
    assert answer.status_code == 202
    await eventually(lambda: "poststelle route" in _by_name(spans.get_finished_spans()))
    found = _by_name(spans.get_finished_spans())
    intake = found["poststelle intake"]
    assert intake.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert intake.parent is not None and intake.parent.span_id == 0xB7AD6B7169203331
    assert found["poststelle route"].context.trace_id == intake.context.trace_id


async def test_without_configuration_nothing_is_traced_or_added(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    assert not tracing.enabled()
    assert tracing.inject({}) == {}
    assert tracing.span("x") is tracing.span("y")  # one shared null context
    body, _ = xbau_antrag()
    case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()["case_id"]
    await eventually(lambda: hub.counters.get("delivery.delivered") >= 1)
    arrival = await hub.js.get_last_msg(INBOX, "inbox.>")
    event = await hub.js.get_last_msg(CASES, "case.>")
    assert "traceparent" not in (arrival.headers or {})
    assert "traceparent" not in (event.headers or {})
    assert hub.audit is not None
    routed = [e for e in await hub.audit.read(case_id) if e.hop == "routed"]
    assert "traceparent" not in routed[0].detail


async def test_without_configuration_a_webhook_gets_no_trace_context(
    hub_config: HubConfig,
) -> None:
    with webhook_receiver() as receiver:
        document = hub_config.model_dump(mode="json")
        document["backends"] = [receiver.backend("stadt-kiel", "fv")]
        document["routes"] = [{"standard": "xbau", "tenant": "stadt-kiel", "backend": "fv"}]
        async with (
            Hub(HubConfig.model_validate(document)) as hub,
            httpx.AsyncClient(base_url=hub.http_url) as http,
        ):
            body, _ = xbau_antrag()
            caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            headers = {**XML, "traceparent": caller}
            assert (await http.post("/v1/submissions", content=body, headers=headers)).is_success
            await eventually(lambda: receiver.accepted_keys())
    # Not even the caller's context travels on when the hub does not trace.
    assert receiver.traceparents == []


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def traced_hub(
    hub_config: HubConfig, collector: tuple[str, list[tuple[str, bytes]]]
) -> AsyncIterator[Hub]:
    endpoint, _ = collector
    config = hub_config.model_copy(
        update={"telemetry": hub_config.telemetry.model_copy(update={"otlp_endpoint": endpoint})}
    )
    hub = Hub(config)
    try:
        yield await hub.start()
    finally:
        await hub.stop()
        tracing.use_provider(None)


async def test_configured_endpoint_receives_the_spans_over_otlp_http(
    traced_hub: Hub, collector: tuple[str, list[tuple[str, bytes]]]
) -> None:
    assert tracing.enabled()
    async with httpx.AsyncClient(base_url=traced_hub.http_url, timeout=10.0) as http:
        body, _ = xbau_antrag()
        assert (await http.post("/v1/submissions", content=body, headers=XML)).status_code == 202
    await eventually(lambda: traced_hub.counters.get("delivery.delivered") >= 1)
    await traced_hub.stop()  # sends what the batch processor holds
    assert not tracing.enabled()
    _, received = collector
    names: set[str] = set()
    services: set[str] = set()
    for path, payload in await asyncio.to_thread(lambda: list(received)):
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(payload)
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope in resource_spans.scope_spans:
                names.update(span.name for span in scope.spans)
    assert {"poststelle intake", "poststelle route", "poststelle delivery"} <= names
    assert services == {"poststelle"}
