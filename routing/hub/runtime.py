"""The hub process: NATS (embedded or external), topology, routing core, delivery, intake.

``Hub`` is an async context manager so tests and ``poststelle run`` drive the very same
object; everything runs on one event loop.

A hub has a role. The *primary* runs everything: NATS (embedded unless configured), the
inbound adapters, the reply router, the answer workers, the dead-letter recorder, the
routing core, the delivery workers and the HTTP intake. A *worker* (``poststelle run
--workers N`` starts N-1 of them beside the primary; ``--role worker`` adds them from other
hosts) joins the primary's NATS and runs only the stages that keep no order per case: the
routing core on the shared ``router`` consumer, the delivery workers on their back ends'
shared consumers (with the route-table watcher the core needs) and, if asked, the HTTP
intake on the primary's port (``SO_REUSEPORT``). Stages whose order matters per case (the
reply router, the answer workers on ``OUTBOX``), and the ones that must run once (inbound
pollers, a file drop's reply folder, the dead-letter recorder, the federation set-up) stay
in the primary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.adapters.base import (
    AdapterContext,
    AttachmentMissing,
    InboundAdapter,
    OutboundAdapter,
)
from poststelle.adapters.portal import PortalAdapter, PortalSettings
from poststelle.adapters.registry import AdapterRegistry, default_registry
from poststelle.contracts.inspection import MessageInspector
from poststelle.contracts.intake import Accepted, TooLarge
from poststelle.contracts.replies import CaseReply
from poststelle.routing.console import CONSOLE_PATH, create_console_app
from poststelle.routing.federation.states import (
    LEAF_SEED_VARIABLE,
    add_inbox_sources,
    ensure_federation_stream,
    leafnode_config,
    mirror_peer_table,
)
from poststelle.routing.hub.caseregistry import load_case
from poststelle.routing.hub.config import BackendConfig, HubConfig
from poststelle.routing.hub.core import RoutingCore
from poststelle.routing.hub.delivery import AnswerWorker, DeliveryWorker, ensure_backend_consumer
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.intake import Intake, IntakeAdmission
from poststelle.routing.hub.replies import ReplyIntake, ReplyRouter
from poststelle.routing.hub.wiring import build_backends, build_inbound
from poststelle.routing.ops import tracing
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.dlq import RECORDER_DURABLE, DeadLetterRecorder
from poststelle.routing.ops.metrics import CONTENT_TYPE, Counters, broker_exposition
from poststelle.routing.ops.stats import collect_stats
from poststelle.routing.streams.claim_check import BodyMissing, put_once, read_object
from poststelle.routing.streams.topology import (
    CASES,
    INBOX,
    ROUTER_DURABLE,
    ROUTES_BUCKET,
    ensure_topology,
)
from poststelle.routing.table.live import TableRouteResolver
from poststelle.routing.table.static import RouteResolver, RoutingFacts, StaticRouteResolver
from poststelle.routing.table.store import RouteTableStore, RouteTableWatcher

__all__ = ["Hub", "HubAlreadyRunningError", "HubRole", "NoHubToJoinError", "connect"]

log = logging.getLogger(__name__)

_RESTART_DELAY = 1.0
# A scrape reads about a dozen stream and consumer infos; a broker slower than this is
# reported as ``poststelle_broker_up 0`` rather than holding the scraper.
_SCRAPE_TIMEOUT = 5.0


async def connect(
    config: HubConfig, url: str | None = None, *, persistent: bool = True
) -> NatsClient:
    """A hub's client reconnects for ever: the hub outlives server restarts. A command-line
    client (``persistent=False``) gives up after a few attempts with a clear error."""

    client = NatsClient()

    async def on_error(exc: Exception) -> None:
        log.warning("nats error=%r", exc)

    async def on_disconnect() -> None:
        # nats-py reports its own close() as a disconnect too; only a lost link is news.
        if client.is_closed:
            log.debug("nats connection closed")
            return
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    servers = [part.strip() for part in (url or config.nats.url or "").split(",") if part.strip()]
    # nats-py annotates the timeouts as int but takes seconds as float.
    options: dict[str, Any] = {
        "connect_timeout": config.nats.connect_timeout,
        "reconnect_time_wait": 0.5,
    }
    if config.nats.credentials:
        options["user_credentials"] = str(config.nats.credentials)
    if config.nats.nkey_seed:
        options["nkeys_seed"] = str(config.nats.nkey_seed)
    await client.connect(
        servers=servers,
        max_reconnect_attempts=-1 if persistent else 2,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        **options,
    )
    return client


HubRole = Literal["primary", "worker"]


class HubAlreadyRunningError(RuntimeError):
    pass


class NoHubToJoinError(RuntimeError):
    """A worker needs a hub's NATS: the configured URL or a primary on the data folder."""


class Hub:
    def __init__(
        self,
        config: HubConfig,
        *,
        resolver: RouteResolver | None = None,
        registry: AdapterRegistry | None = None,
        role: HubRole = "primary",
        share_http_port: bool = False,
    ) -> None:
        """``share_http_port`` binds the HTTP intake with ``SO_REUSEPORT`` so the hub's
        other processes can serve the same port."""
        self.config = config
        self.role: HubRole = role
        self._share_http_port = share_http_port
        self.registry = registry or default_registry()
        self._backends: list[tuple[BackendConfig, OutboundAdapter]] = []
        self._native_backends: list[tuple[BackendConfig, OutboundAdapter]] = []
        self.inbound: list[InboundAdapter] = []
        self.counters = Counters()
        intake_config = self.config.intake
        self.admission = IntakeAdmission(
            self.counters,
            max_in_flight=intake_config.max_in_flight,
            max_backlog=intake_config.max_backlog,
            retry_after=intake_config.retry_after,
        )
        self.embedded: EmbeddedNatsServer | None = None
        self._joined_url: str | None = None
        self.nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._explicit_resolver = resolver
        self.resolver: RouteResolver = resolver or StaticRouteResolver(config.routes)
        self.route_watcher: RouteTableWatcher | None = None
        self.core: RoutingCore | None = None
        self.workers: list[DeliveryWorker] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.portal: PortalAdapter | None = None
        self.replies: ReplyIntake | None = None
        self.reply_router: ReplyRouter | None = None
        self.answer_workers: list[AnswerWorker] = []
        self.dead_letters: DeadLetterRecorder | None = None
        self.intake: Intake | None = None
        self.audit: AuditTrail | None = None
        self._traces = False

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("hub not started")
        return self._js

    @property
    def nats_url(self) -> str:
        if self.config.nats.url:
            return self.config.nats.url
        if self._joined_url:
            return self._joined_url
        if self.embedded is None:
            raise RuntimeError("hub not started")
        return self.embedded.client_url

    @property
    def http_url(self) -> str:
        if self.portal is None:
            raise RuntimeError("HTTP intake not started")
        return self.portal.url

    async def start(self, *, http: bool = True, workers: bool = True) -> Hub:
        """``workers=False`` gives a client of the hub's NATS (the CLI), not a second hub."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        telemetry = self.config.telemetry
        if workers and telemetry.otlp_endpoint and not tracing.enabled():
            # This hub set tracing up, so it sends the last spans when it stops.
            self._traces = tracing.configure(telemetry.otlp_endpoint, telemetry.service_name)
        context = AdapterContext(
            data_dir=self.config.data_dir,
            publish=self.accept,
            read_attachment=self.read_attachment,
            extras={
                "health": self.health,
                "accept_reply": self.accept_reply,
                "case_status": self.case_status,
                # An adapter's fact about a case for its trail (a FIT-Connect reply's verdict).
                "record_hop": self.record_hop,
                # Multipart intakes claim-check file parts before publishing the rest.
                "store_attachment": self.store_attachment,
                # Asked before a request's body is read, and by pollers before they fetch.
                "admission": self.admission,
                "metrics": self.metrics_exposition,
            },
        )
        primary = self.role == "primary"
        if workers:
            # Bad adapter settings stop start-up before anything is connected. A worker's back
            # ends get no reply intake: a file drop's reply folder is read by the primary only.
            backends = build_backends(
                self.config, self.registry, context if primary else _without_replies(context)
            )
            # Native back ends pull CASES themselves: the hub only provides their consumer.
            self._native_backends = [
                (c, b) for c, b in backends if getattr(b, "self_consuming", False)
            ]
            self._backends = [
                (c, b) for c, b in backends if not getattr(b, "self_consuming", False)
            ]
            if primary:
                self.inbound = build_inbound(self.config, self.registry, context)
        if http:
            self.portal = self._build_portal(context)
        store = self.config.data_dir / "nats"
        running = None if self.config.nats.url else EmbeddedNatsServer.discover(store)
        if running and workers and primary:
            # Two servers on one store would corrupt it; one hub per data folder.
            raise HubAlreadyRunningError(
                f"a hub already runs on {self.config.data_dir} (NATS {running}); "
                "stop it or choose another --data-dir"
            )
        if not primary and not self.config.nats.url and not running:
            # A worker never starts a server of its own: it joins the primary's.
            raise NoHubToJoinError(
                f"no hub runs on {self.config.data_dir}: start `poststelle run` there "
                "first, or give the hub's NATS with --nats-url"
            )
        self._joined_url = running
        if not self.config.nats.url and not self._joined_url:
            self.embedded = EmbeddedNatsServer(
                store_dir=store,
                domain=self.domain,
                extra_config=self._auth_config() + self._leaf_config(),
                sync_interval=self.config.nats.sync_interval,
                environment=self._leaf_environment(),
            )
            await asyncio.to_thread(self.embedded.start)
        self.nc = await connect(self.config, self.nats_url, persistent=workers)
        # The hub's own JetStream, addressed without a domain prefix: the local server's.
        self._js = self.nc.jetstream()
        await ensure_topology(
            self.js,
            replicas=self.config.nats.replicas,
            stream_max_bytes=self.config.nats.stream_max_bytes,
            delivered_ttl=self.config.nats.delivered_ttl,
            console_session_ttl=self.config.console.session_hours * 3600,
            # A CLI client (workers=False) may run without the hub's configuration.
            update_existing=workers,
        )
        if workers and self._explicit_resolver is None:
            await self._follow_route_table()
        for backend_config, backend in self._native_backends if primary else []:
            await ensure_backend_consumer(
                self.js, backend.tenant, backend.name, backend_config.max_deliver
            )
        if workers and primary and self.config.federation.state:
            await self._join_federation()
        self.audit = audit = AuditTrail(self.js)
        self.admission.bind(self.js)
        self.intake = Intake(
            self.js,
            audit,
            self.counters,
            max_message_bytes=self.config.intake.max_message_bytes,
            claim_check_bytes=self.config.intake.claim_check_bytes,
            admission=self.admission,
        )
        # One inspector for arrivals and answers: each schema compiles once per process, and
        # an answer is held to the verdicts an arrival gets (docs/adding-a-standard.md).
        # The parser's size bound is the intake's: what the intake took, the core reads.
        inspector = MessageInspector(
            self.config.data_dir, max_bytes=self.config.intake.max_message_bytes
        )
        self.replies = ReplyIntake(self.js, audit, inspector)
        if workers:
            self._start_workers(audit, inspector)
            # Sources are read only once everything behind them runs.
            for adapter in self.inbound:
                await adapter.start()
        if self.portal is not None:
            self._serve_fitconnect_routing(self.portal)
            await self.portal.start()
        log.info("hub started role=%s pid=%d nats=%s", self.role, os.getpid(), self.nats_url)
        return self

    @property
    def domain(self) -> str | None:
        return self.config.nats.domain or self.config.federation.state

    def _leaf_config(self) -> str:
        nats_config = self.config.nats
        if nats_config.leaf_listen_port is None and not nats_config.leaf_remotes:
            return ""
        return leafnode_config(
            listen_port=nats_config.leaf_listen_port,
            remotes=nats_config.leaf_remotes,
            remote_seed_variable=LEAF_SEED_VARIABLE if nats_config.leaf_nkey_seed else None,
        )

    def _auth_config(self) -> str:
        auth_file = self.config.nats.auth_file
        return auth_file.read_text(encoding="utf-8") + "\n" if auth_file else ""

    def _leaf_environment(self) -> dict[str, str]:
        # The seed reaches nats-server in its environment: the generated config holds none.
        seed_file = self.config.nats.leaf_nkey_seed
        return (
            {LEAF_SEED_VARIABLE: seed_file.read_text(encoding="utf-8").strip()} if seed_file else {}
        )

    async def _join_federation(self) -> None:
        """Cases for peers leave through ``FEDERATION``; peers' cases for us arrive in
        ``INBOX`` by stream sourcing, which resumes by itself after a link outage."""
        federation = self.config.federation
        assert federation.state is not None
        await ensure_federation_stream(self.js)
        await add_inbox_sources(self.js, federation.state, federation.peers)
        for peer in federation.peers:
            await mirror_peer_table(self.js, peer)

    async def _follow_route_table(self) -> None:
        """Route on the imported table, reloaded within seconds of every import."""
        self.route_watcher = RouteTableWatcher(
            await RouteTableStore.open(self.js), poll_interval=1.0
        )
        self.resolver = TableRouteResolver(self.route_watcher, fallback=self.resolver)
        await self.route_watcher.start()

    def _start_workers(self, audit: AuditTrail, inspector: MessageInspector) -> None:
        self.core = RoutingCore(
            self.js,
            self.resolver,
            audit,
            self.counters,
            inspector=inspector,
            federation=self.config.federation,
            peer_jetstream=self._peer_jetstream,
            batch_size=self.config.router_batch_size,
        )
        self._supervise("routing-core", self.core.run)
        for backend_config, backend in self._backends:
            worker = DeliveryWorker(
                self.js, backend, audit, self.counters, max_deliver=backend_config.max_deliver
            )
            self.workers.append(worker)
            self._supervise(worker.durable, worker.run)
        if self.role != "primary":
            return
        # Order per case matters from here on (answers reach an origin in the order of the
        # replies), and the recorder must see each advisory once: the primary's alone.
        self.reply_router = ReplyRouter(self.js, audit, self.counters, inspector)
        self._supervise("reply-router", self.reply_router.run)
        self.dead_letters = DeadLetterRecorder(self.js, audit, self.counters)
        self._supervise(RECORDER_DURABLE, self.dead_letters.run)
        answering = [*self.inbound, *([self.portal] if self.portal else [])]
        for adapter in answering:
            if callable(getattr(adapter, "answer", None)):
                answer_worker = AnswerWorker(self.js, adapter, audit, self.counters)  # type: ignore[arg-type]
                self.answer_workers.append(answer_worker)
                self._supervise(answer_worker.durable, answer_worker.run)

    def _peer_jetstream(self, state: str) -> JetStreamContext:
        """A peer state's JetStream, addressed by its domain across the leaf link."""
        assert self.nc is not None
        return self.nc.jetstream(domain=state)

    def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Keep a worker alive across NATS hiccups; a crash restarts it after a pause."""

        async def loop() -> None:
            while True:
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("worker crashed, restarting name=%s", name)
                    await asyncio.sleep(_RESTART_DELAY)

        self._tasks.append(asyncio.create_task(loop(), name=name))

    def _serve_fitconnect_routing(self, portal: PortalAdapter) -> None:
        """The FIT-Connect Routing API under ``/fitconnect/v1`` when the hub runs
        destinations: a portal asks which of them takes a Leistung for a region, and the
        routing table answers (docs/fitconnect.md, "Destination discovery")."""
        destinations = [a for a in self.inbound if callable(getattr(a, "routed_destination", None))]
        if not destinations:
            return
        from poststelle.adapters.fitconnect import RoutedDestination, routing_api

        def lookup(leika_key: str, ars: str) -> list[RoutedDestination]:
            facts = RoutingFacts(
                standard="", message_type="", channel="fitconnect", leistung=leika_key, ars=ars
            )
            target = self.resolver.resolve(facts)
            if target is None:
                return []
            return [
                a.routed_destination()  # type: ignore[attr-defined]
                for a in destinations
                if a.serves(target.tenant)  # type: ignore[attr-defined]
            ]

        portal.app.include_router(routing_api(lookup), prefix="/fitconnect/v1")

    def _build_portal(self, context: AdapterContext) -> PortalAdapter:
        http = self.config.http
        settings = PortalSettings(
            host=http.host,
            port=http.port,
            max_body_bytes=http.max_body_bytes,
            max_attachments=http.max_attachments,
            callback_url=http.callback_url,
            callback_secret=http.callback_secret,
            api_keys=http.api_keys,
            backend_keys={
                f"{backend.tenant}/{backend.name}": backend.api_key
                for backend in self.config.backends
                if backend.api_key is not None
            },
            reuse_port=self._share_http_port,
            tls_certfile=http.tls_certfile,
            tls_keyfile=http.tls_keyfile,
        )
        portal = PortalAdapter(name="http", settings=settings, context=context)
        # The operator's console shares the intake's port; its pages need a login of their
        # own (``[console.accounts]``), whatever API keys the intake asks for.
        portal.app.mount(
            CONSOLE_PATH,
            create_console_app(
                self,
                self.config.console,
                data_dir=self.config.data_dir,
                secure_cookies=http.tls_certfile is not None,
            ),
        )
        return portal

    async def stop(self) -> None:
        if self.portal is not None:
            await self.portal.stop()
        self.admission.stop()
        for adapter in self.inbound:
            await adapter.stop()
        if self.route_watcher is not None:
            await self.route_watcher.stop()
        if self.core is not None:
            self.core.stop()
        if self.reply_router is not None:
            self.reply_router.stop()
        if self.dead_letters is not None:
            self.dead_letters.stop()
        for answer_worker in self.answer_workers:
            answer_worker.stop()
        for worker in self.workers:
            worker.stop()
        if self._tasks:
            _, still_running = await asyncio.wait(self._tasks, timeout=5.0)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        self._tasks.clear()
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
        if self._traces:
            self._traces = False
            await asyncio.to_thread(tracing.shutdown)
        log.info("hub stopped")

    async def __aenter__(self) -> Hub:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- services for adapters -----------------------------------------------------------

    @property
    def max_body_bytes(self) -> int:
        return self.config.http.max_body_bytes

    async def accept(
        self,
        raw: bytes,
        *,
        channel: str,
        adapter: str,
        source_message_id: str | None = None,
        content_type: str = "application/xml",
        extra_headers: dict[str, str] | None = None,
        transport_id: str | None = None,
        too_large: TooLarge = "refuse",
    ) -> Accepted:
        if self.intake is None:
            raise RuntimeError("hub not started")
        return await self.intake.accept(
            raw,
            channel=channel,
            adapter=adapter,
            source_message_id=source_message_id,
            content_type=content_type,
            extra_headers=extra_headers,
            transport_id=transport_id,
            too_large=too_large,
        )

    async def accept_reply(
        self,
        case_id: str,
        reply: CaseReply,
        *,
        via: str,
        backend: tuple[str, str] | None = None,
        check_answer: bool = False,
    ) -> str:
        if self.replies is None:
            raise RuntimeError("hub not started")
        return await self.replies.accept(
            case_id, reply, via=via, backend=backend, check_answer=check_answer
        )

    async def store_attachment(self, name: str, content: bytes) -> None:
        """Put one file into the ``attachments`` object store (claim check)."""
        await put_once(self.js, name, content)

    async def read_attachment(self, ref: str) -> bytes:
        """The bytes behind an ``attachments/<name>`` reference (for outbound adapters)."""
        try:
            return await read_object(self.js, ref)
        except BodyMissing as exc:
            raise AttachmentMissing(str(exc)) from exc

    async def record_hop(self, case_id: str, hop: str, **detail: Any) -> None:
        """Append ``hop`` to the case's audit trail on an adapter's behalf."""
        if self.audit is None:
            raise RuntimeError("hub not started")
        await self.audit.append(case_id, hop, **detail)

    async def case_status(self, case_id: str) -> dict[str, Any] | None:
        return await load_case(self.js, case_id)

    def _route_table_health(self) -> dict[str, Any]:
        watcher = self.route_watcher
        if watcher is None or watcher.resolver is None:
            return {"source": "config", "rules": len(self.config.routes)}
        pointer = watcher.pointer
        return {
            "source": "table",
            "snapshot": pointer.snapshot if pointer else None,
            "rules": watcher.resolver.rule_count,
            # A table that failed validation is reported here while the old one keeps routing.
            "last_error": watcher.last_error,
        }

    def _inbound_health(self) -> dict[str, Any]:
        """Each configured source by name: its kind and its own report (for a poller: last
        poll, last success, messages received, last error with its time)."""
        return {
            entry.name: {"kind": entry.kind, **adapter.health()}
            for entry, adapter in zip(self.config.inbound, self.inbound, strict=False)
        }

    async def metrics_exposition(self) -> tuple[bytes, str]:
        """``GET /metrics``: the processes' series, then the broker's state read now."""
        stats: dict[str, Any] | None = None
        if self.nc is not None and self.nc.is_connected:
            try:
                stats = await asyncio.wait_for(collect_stats(self.js), _SCRAPE_TIMEOUT)
            except Exception as exc:  # the process series are still worth the answer
                log.warning("broker state not read for /metrics error=%r", exc)
        body = self.counters.metrics.exposition() + broker_exposition(
            stats, self._route_table_health()
        )
        return body, CONTENT_TYPE

    async def health(self) -> dict[str, Any]:
        connected = self.nc is not None and self.nc.is_connected
        report: dict[str, Any] = {
            "status": "ok" if connected else "degraded",
            # With --workers the intake's port is shared: this is the process that answered,
            # and the counters below are its own (``poststelle stats`` counts for the hub).
            "process": {"role": self.role, "pid": os.getpid()},
            "nats": {
                "connected": connected,
                "url": self.nats_url,
                "embedded": self.embedded is not None,
            },
            "consumers": {},
            "counters": self.counters.snapshot(),
            "routes": self._route_table_health(),
            "inbound": self._inbound_health(),
        }
        if not connected:
            return report
        consumers = [(INBOX, ROUTER_DURABLE)] + [(CASES, w.durable) for w in self.workers]
        for stream, durable in consumers:
            try:
                info = await self.js.consumer_info(stream, durable, timeout=2.0)
            except (NotFoundError, TimeoutError):
                report["consumers"][durable] = {"present": False}
                report["status"] = "degraded"
                continue
            report["consumers"][durable] = {
                "present": True,
                "stream": stream,
                "pending": info.num_pending,
                "ack_pending": info.num_ack_pending,
                "redelivered": info.num_redelivered,
            }
        for worker in self.workers:
            report["consumers"][worker.durable]["backend"] = worker.backend.health()
        if self.config.federation.state:
            report["federation"] = await self._federation_health()
        return report

    async def _federation_health(self) -> dict[str, Any]:
        """Each peer as its table mirror sees it: the link is up while the mirror is
        active; ``lag`` is what it has not copied yet."""
        federation = self.config.federation
        peers: dict[str, Any] = {}
        for peer in federation.peers:
            try:
                info = await self.js.stream_info(f"KV_{ROUTES_BUCKET}-{peer}")
            except (NotFoundError, TimeoutError):
                peers[peer] = {"ok": False, "detail": "no mirror of its table"}
                continue
            mirror = info.mirror
            error = (mirror.error or {}).get("description") if mirror else None
            # ``active``: nanoseconds since the mirror last heard from the peer (-1: never).
            active = mirror.active if mirror and mirror.active is not None else -1
            lag = mirror.lag if mirror and mirror.lag is not None else 0
            ok = error is None and 0 <= active < 30 * 10**9
            seen = f"{active / 1e9:.1f} s ago" if active >= 0 else "never"
            peers[peer] = {
                "ok": ok,
                "lag": lag,
                "detail": error or f"table mirror heard from it {seen}, {lag} behind",
            }
        return {"state": federation.state, "peers": peers}


def _without_replies(context: AdapterContext) -> AdapterContext:
    """The adapters' context minus the reply intake: back ends built with it take no
    replies themselves (a worker's file drop leaves its ``in/`` folder to the primary)."""
    extras = {key: value for key, value in context.extras.items() if key != "accept_reply"}
    return dataclasses.replace(context, extras=extras)
