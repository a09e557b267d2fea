"""The console's pages: overview, quarantine, DLQ, case trace, routing.

Every page needs a session; every POST its CSRF token; replays and table changes the
operator role. A replay is asked for twice: the list or the message page links to a
confirmation page naming every record that will go, and only its POST replays exactly
those (what the operator saw is what is replayed, even if more arrived meanwhile).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from poststelle.routing.console._app import Context
from poststelle.routing.console._overview import collect_overview
from poststelle.routing.console._parked import (
    MAX_LISTED,
    ParkedFilter,
    list_dead,
    list_parked,
    load_parked,
    replay_dead,
    replay_parked,
)
from poststelle.routing.console._routes import add_rule, explain_query
from poststelle.routing.console._trace import SCAN_WINDOW, find_cases, load_trace
from poststelle.routing.ops.dlq import DeadLetter
from poststelle.routing.ops.parked import ReplayResult
from poststelle.routing.streams.topology import DLQ, QUARANTINE
from poststelle.routing.table.resolver import CRITERIA
from poststelle.routing.table.rules import ARS_LEVELS, RouteTableError
from poststelle.routing.table.store import ConcurrentImportError

__all__ = ["add_pages"]

log = logging.getLogger(__name__)

_MAX_SELECTED = MAX_LISTED


def _sequences(values: list[str]) -> list[int]:
    """The record numbers a form names; anything else is ignored, at most a page's worth."""
    chosen = sorted({int(v) for v in values if v.isdigit() and 0 < int(v) < 2**63})
    return chosen[:_MAX_SELECTED]


def _filter(request: Request) -> ParkedFilter:
    params = request.query_params
    return ParkedFilter(
        reason=params.get("reason", "").strip()[:100],
        standard=params.get("standard", "").strip()[:100],
        channel=params.get("channel", "").strip()[:100],
    )


def add_pages(app: FastAPI, ctx: Context) -> None:
    guard = ctx.guard

    # -- overview ------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        user = await guard.user(request)
        figures = await collect_overview(ctx.hub.js, ctx.hub.health, ctx.sampler)
        return ctx.page(request, "overview.html", user, o=figures, page="overview")

    @app.get("/overview/live", response_class=HTMLResponse)
    async def overview_live(request: Request) -> Response:
        user = await guard.user(request)
        figures = await collect_overview(ctx.hub.js, ctx.hub.health, ctx.sampler)
        return ctx.page(request, "_overview_live.html", user, o=figures)

    # -- what the quarantine and the DLQ pages share --------------------------------------

    async def replay_chosen(
        request: Request, kind: str, stream: str, replay: Callable[..., Awaitable[ReplayResult]]
    ) -> Response:
        """The confirmation page's POST: replay exactly the records it named."""
        user = await guard.operator(request)
        chosen = _sequences([str(v) for v in (await request.form()).getlist("seq")])
        if not chosen:
            return ctx.page(
                request, "error.html", user, status_code=400, message="no record was chosen"
            )
        result = await replay(ctx.hub.js, chosen, actor=user.actor)
        log.info("console replay stream=%s by=%s seqs=%s", stream, user.name, result.replayed)
        return ctx.page(request, "replayed.html", user, page=kind, kind=kind, result=result)

    async def show_parked(
        request: Request, kind: str, stream: str, sequence: int, record: str
    ) -> Response:
        """One parked record's page; a gone ``record`` (replayed or aged out) is a 404."""
        user = await guard.user(request)
        view = await load_parked(ctx.hub.js, stream, sequence)
        if view is None:
            return ctx.page(
                request,
                "error.html",
                user,
                status_code=404,
                message=f"{record} is gone (replayed or aged out)",
            )
        return ctx.page(request, "message.html", user, page=kind, v=view, kind=kind)

    # -- quarantine ----------------------------------------------------------------------

    @app.get("/quarantine", response_class=HTMLResponse)
    async def quarantine(request: Request) -> Response:
        user = await guard.user(request)
        wanted = _filter(request)
        listing = await list_parked(ctx.hub.js, wanted, ctx.standards)
        return ctx.page(
            request, "quarantine.html", user, page="quarantine", listing=listing, wanted=wanted
        )

    @app.get("/quarantine/replay", response_class=HTMLResponse)
    async def quarantine_confirm(request: Request) -> Response:
        user = await guard.user(request)
        chosen = _sequences(request.query_params.getlist("seq"))
        listed = (await list_parked(ctx.hub.js, _filter(request), ctx.standards)).items
        if chosen:
            listed = [i for i in listed if i.item.sequence in set(chosen)]
        return ctx.page(
            request,
            "replay_confirm.html",
            user,
            page="quarantine",
            kind="quarantine",
            items=[
                (i.item.sequence, i.item.case_id, f"{i.item.step}/{i.item.reason}", i.item.detail)
                for i in listed
            ],
            target="INBOX: the routing core takes them again",
        )

    @app.post("/quarantine/replay", response_class=HTMLResponse)
    async def quarantine_replay(request: Request) -> Response:
        return await replay_chosen(request, "quarantine", QUARANTINE, replay_parked)

    @app.get("/quarantine/{sequence}", response_class=HTMLResponse)
    async def quarantined(request: Request, sequence: int) -> Response:
        return await show_parked(
            request, "quarantine", QUARANTINE, sequence, f"quarantine record #{sequence}"
        )

    # -- dead letters --------------------------------------------------------------------

    def dead_rows(letters: list[DeadLetter]) -> list[tuple[int, str, str, str]]:
        return [(d.sequence, d.case_id, d.consumer, d.reason) for d in letters]

    @app.get("/dlq", response_class=HTMLResponse)
    async def dlq(request: Request) -> Response:
        user = await guard.user(request)
        consumer = request.query_params.get("consumer", "").strip()[:200]
        letters, more = await list_dead(ctx.hub.js, consumer)
        # The filter's choices come from every letter: a second walk only when filtered.
        everything = (await list_dead(ctx.hub.js))[0] if consumer else letters
        return ctx.page(
            request,
            "dlq.html",
            user,
            page="dlq",
            letters=letters,
            more=more,
            consumer=consumer,
            consumers=sorted({d.consumer for d in everything}),
        )

    @app.get("/dlq/replay", response_class=HTMLResponse)
    async def dlq_confirm(request: Request) -> Response:
        user = await guard.user(request)
        chosen = set(_sequences(request.query_params.getlist("seq")))
        consumer = request.query_params.get("consumer", "").strip()[:200]
        letters, _ = await list_dead(ctx.hub.js, consumer)
        if chosen:
            letters = [d for d in letters if d.sequence in chosen]
        return ctx.page(
            request,
            "replay_confirm.html",
            user,
            page="dlq",
            kind="dlq",
            items=dead_rows(letters),
            target="their original subjects: the back ends' consumers take them again",
        )

    @app.post("/dlq/replay", response_class=HTMLResponse)
    async def dlq_replay(request: Request) -> Response:
        return await replay_chosen(request, "dlq", DLQ, replay_dead)

    @app.get("/dlq/{sequence}", response_class=HTMLResponse)
    async def dead_letter(request: Request, sequence: int) -> Response:
        return await show_parked(request, "dlq", DLQ, sequence, f"dead letter #{sequence}")

    # -- case trace ----------------------------------------------------------------------

    @app.get("/trace", response_class=HTMLResponse)
    async def trace_search(request: Request) -> Response:
        user = await guard.user(request)
        query = request.query_params.get("q", "")
        search = None
        if query.strip():
            namespaces = sorted(ctx.standards.namespaces)
            search = await find_cases(ctx.hub.js, query, namespaces)
            if len(search.cases) == 1:
                found = await load_trace(ctx.hub.js, search.cases[0][0])
                return ctx.page(
                    request, "trace.html", user, page="trace", search=search, trace=found
                )
        return ctx.page(
            request,
            "trace.html",
            user,
            page="trace",
            search=search,
            trace=None,
            window=SCAN_WINDOW,
        )

    @app.get("/trace/{case_id}", response_class=HTMLResponse)
    async def trace(request: Request, case_id: str) -> Response:
        user = await guard.user(request)
        found = await load_trace(ctx.hub.js, case_id[:200])
        return ctx.page(request, "trace.html", user, page="trace", search=None, trace=found)

    # -- routing -------------------------------------------------------------------------

    async def routing_page(
        request: Request,
        user: Any,
        *,
        status_code: int = 200,
        **values: Any,
    ) -> Response:
        active = await ctx.routes.active(ctx.hub.js)
        form = dict(request.query_params) if request.method == "GET" else {}
        resolution = None
        problem = ""
        if active is not None and form.get("explain"):
            try:
                resolution = explain_query(active.resolver, form)
            except ValueError as error:
                problem = f"cannot explain: {error}"
        return ctx.page(
            request,
            "routing.html",
            user,
            status_code=status_code,
            page="routing",
            active=active,
            form=form,
            resolution=resolution,
            explain_problem=problem,
            criteria=CRITERIA,
            levels=ARS_LEVELS,
            **values,
        )

    @app.get("/routing", response_class=HTMLResponse)
    async def routing(request: Request) -> Response:
        return await routing_page(request, await guard.user(request))

    @app.post("/routing/rules", response_class=HTMLResponse)
    async def routing_add(request: Request) -> Response:
        user = await guard.operator(request)
        form = {k: str(v)[:200] for k, v in (await request.form()).items()}
        revision = int(form["revision"]) if form.get("revision", "").isdigit() else 0
        try:
            published = await add_rule(
                ctx.hub.js, form, expected_revision=revision, actor=user.actor
            )
        except (RouteTableError, ConcurrentImportError) as error:
            problems = error.problems if isinstance(error, RouteTableError) else [str(error)]
            return await routing_page(
                request, user, status_code=422, rule_problems=problems, rule_form=form
            )
        added = published.table.rules[-1].describe()
        return await routing_page(
            request, user, rule_added=f"snapshot {published.pointer.snapshot}: {added}"
        )
