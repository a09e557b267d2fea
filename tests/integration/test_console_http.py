"""The web console over real HTTP against a hub on a real nats-server: logins, roles, CSRF,
sessions shared by every process, replays audited with the user, the routing table's
explain, the case trace."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from fastapi import FastAPI
from nats.js import JetStreamContext

from poststelle.adapters._ozg import vorgang_nummer
from poststelle.contracts.envelope import H_CASE_ID, H_ORIGINAL_SUBJECT
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.cli.main import main as poststelle
from poststelle.routing.console import (
    CONSOLE_PATH,
    ConsoleAccount,
    ConsoleConfig,
    create_console_app,
    hash_password,
)
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.audit import AuditEntry, AuditTrail
from poststelle.routing.ops.dlq import publish_dead_letter
from poststelle.routing.ops.quarantine import QuarantinedMessage, list_quarantined
from poststelle.routing.streams.topology import CASES
from poststelle.routing.table.files import load_table
from poststelle.routing.table.store import RouteTableStore
from tests.integration.conftest import eventually
from tests.integration.test_table_routing import _config
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}
PASSWORDS = {"olga": "olga-operator-pass", "rudi": "rudi-reads-only-pass"}
KIEL_ONLY = """\
tenants:
  kiel: {name: Landeshauptstadt Kiel, backends: [bauakte]}
rules:
  - {ars: "010020000000", standard: xbau, tenant: kiel, backend: bauakte}
"""
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_config(hub_config: HubConfig) -> HubConfig:
    """The table-routing tests' hub (Kiel and Lübeck, the table alone decides), with two
    console accounts."""
    document = _config(hub_config).model_dump(mode="json")
    document["console"] = {
        "accounts": {
            "olga": {"password_hash": hash_password(PASSWORDS["olga"]), "role": "operator"},
            "rudi": {"password_hash": hash_password(PASSWORDS["rudi"]), "role": "read-only"},
        }
    }
    return HubConfig.model_validate(document)


async def import_table(hub: Hub, tmp_path: Path, text: str) -> None:
    file = tmp_path / "routes.yaml"
    file.write_text(text)
    store = await RouteTableStore.open(hub.js)
    current = await store.load()
    await store.publish(load_table(file), expected_revision=current.revision if current else 0)
    await eventually(
        lambda: (
            hub.route_watcher is not None
            and hub.route_watcher.pointer is not None
            and hub.route_watcher.pointer.rules == len(load_table(file).rules)
        )
    )


async def log_in(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    form = await client.get("/login")
    [token] = _TOKEN.findall(form.text)
    return await client.post(
        "/login", data={"username": name, "password": password, "csrf_token": token}
    )


def token_of(page: httpx.Response) -> str:
    found = _TOKEN.findall(page.text)
    assert found, f"no CSRF token in the page: {page.text[:300]}"
    return found[0]


@pytest.fixture
async def hub(hub_config: HubConfig) -> AsyncIterator[Hub]:
    async with Hub(console_config(hub_config)) as running:
        yield running


def console(hub: Hub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{hub.http_url}/console", timeout=15.0)


class _OtherProcess:
    """What the console of a second hub process sees: its own NATS connection to the same
    server, nothing of the first process's memory (the health report is the hub's)."""

    def __init__(self, js: JetStreamContext, hub: Hub) -> None:
        self._js = js
        self._hub = hub

    @property
    def js(self) -> JetStreamContext:
        return self._js

    async def health(self) -> dict[str, Any]:
        return await self._hub.health()


@asynccontextmanager
async def other_process(
    hub: Hub, config: ConsoleConfig | None = None, *, connected: bool = True
) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """A second console app on ``hub``'s nats-server and data folder (so the same cookie
    key), with ``config`` (default: the hub's), mounted at /console as the hub mounts it.
    Yields a maker of clients for it."""
    connection = await nats.connect(hub.nats_url)
    try:
        app = create_console_app(
            _OtherProcess(connection.jetstream(), hub),
            config or hub.config.console,
            data_dir=hub.config.data_dir,
        )
        outer = FastAPI()
        outer.mount(CONSOLE_PATH, app)
        if not connected:
            await connection.close()
        yield lambda: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=outer), base_url="http://second/console"
        )
    finally:
        await connection.close()


async def status_with(client: httpx.AsyncClient, cookie: str, path: str = "/") -> int:
    """The status of ``path`` for a copy of a session cookie."""
    answer = await client.get(path, headers={"Cookie": f"poststelle_console={cookie}"})
    return answer.status_code


async def park_unroutable(hub: Hub, tmp_path: Path) -> tuple[str, str, int]:
    """A Lübeck application while the table knows only Kiel: (case id, nachrichtenUUID, seq)."""
    await import_table(hub, tmp_path, KIEL_ONLY)
    body, uuid = xbau_antrag()
    body = body.replace(b"<code>01002000</code>", b"<code>01003000</code>")
    async with httpx.AsyncClient(base_url=hub.http_url) as intake:
        answer = await intake.post(
            "/v1/submissions", content=body, headers={**XML, "Idempotency-Key": "xta-msg-4711"}
        )
    assert answer.status_code == 202, answer.text
    case_id = answer.json()["case_id"]
    [parked] = await eventually(lambda: list_quarantined(hub.js, reason="unroutable"))
    assert parked.case_id == case_id
    return case_id, uuid, parked.sequence


async def test_every_page_wants_a_login(hub: Hub) -> None:
    async with console(hub) as client:
        for path in ("/", "/quarantine", "/quarantine/1", "/dlq", "/trace", "/routing"):
            answer = await client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/console/login"
        htmx = await client.get("/overview/live", headers={"HX-Request": "true"})
        assert (htmx.status_code, htmx.headers["HX-Redirect"]) == (401, "/console/login")
        login = await client.get("/login")
        assert login.status_code == 200 and 'name="password"' in login.text
        assert "default-src 'none'" in login.headers["content-security-policy"]
        # The vendored htmx is served by the hub itself, with its licence beside it.
        script = await client.get("/static/htmx.min.js")
        assert script.status_code == 200 and b"htmx" in script.content[:200]
        assert "Zero-Clause BSD" in (await client.get("/static/htmx.LICENSE")).text


async def test_a_wrong_password_is_refused(hub: Hub) -> None:
    async with console(hub) as client:
        refused = await log_in(client, "olga", "not-her-password")
        assert refused.status_code == 401
        assert "wrong account name or password" in refused.text
        unknown = await log_in(client, "mallory", PASSWORDS["olga"])
        assert unknown.status_code == 401
        assert "poststelle_console" not in client.cookies
        assert (await client.get("/")).status_code == 303
        accepted = await log_in(client, "olga", PASSWORDS["olga"])
        assert accepted.status_code == 303
        cookie = accepted.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        overview = await client.get("/")
        assert overview.status_code == 200
        assert 'id="received"' in overview.text and "operator" in overview.text


async def test_a_large_form_is_refused_before_it_is_read(hub: Hub) -> None:
    async with console(hub) as client:
        form = await client.get("/login")
        big = await client.post(
            "/login",
            content=b"username=" + b"a" * 100_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert big.status_code == 413
        assert "Content-Security-Policy" in big.headers  # still a console answer
        assert form.status_code == 200


async def test_a_forged_session_cookie_is_no_session(hub: Hub) -> None:
    async with console(hub) as client:
        await log_in(client, "rudi", PASSWORDS["rudi"])
        cookie = client.cookies["poststelle_console"]
        body, signature = cookie.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        assert claims["u"] == "rudi"
        # Claim to be olga, the operator, under rudi's signature.
        claims["u"] = "olga"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        client.cookies.set("poststelle_console", f"{forged}.{signature}", path="/console")
        assert (await client.get("/")).status_code == 303
        client.cookies.set("poststelle_console", cookie, path="/console")
        assert (await client.get("/")).status_code == 200


async def test_a_copied_cookie_is_refused_after_logout_in_every_process(hub: Hub) -> None:
    async with console(hub) as client, other_process(hub) as second, second() as elsewhere:
        await log_in(client, "olga", PASSWORDS["olga"])
        cookie = client.cookies["poststelle_console"]
        page = await client.get("/")
        assert page.status_code == 200 and 'id="logout-everywhere"' in page.text
        # The session is the same in the other process: it is in NATS, not in memory.
        assert await status_with(elsewhere, cookie) == 200
        async with console(hub) as copy:
            assert await status_with(copy, cookie) == 200
            logout = await client.post("/logout", data={"csrf_token": token_of(page)})
            assert logout.status_code == 303
            assert 'poststelle_console=""' in logout.headers["set-cookie"]
            # The very next request, in this process and in the other one: refused.
            assert await status_with(copy, cookie) == 303
            assert await status_with(elsewhere, cookie) == 303
            assert await status_with(copy, cookie, "/overview/live") == 303
        again = await log_in(client, "olga", PASSWORDS["olga"])
        assert again.status_code == 303 and (await client.get("/")).status_code == 200


async def test_log_out_everywhere_ends_every_session_of_the_account_only(hub: Hub) -> None:
    async with (
        console(hub) as laptop,
        console(hub) as desktop,
        console(hub) as colleague,
        other_process(hub) as second,
        second() as elsewhere,
    ):
        await log_in(laptop, "olga", PASSWORDS["olga"])
        await log_in(desktop, "olga", PASSWORDS["olga"])
        await log_in(colleague, "rudi", PASSWORDS["rudi"])
        await log_in(elsewhere, "olga", PASSWORDS["olga"])
        page = await laptop.get("/")
        no_token = await laptop.post("/logout-everywhere")
        assert no_token.status_code == 403
        assert (await desktop.get("/")).status_code == 200
        ended = await laptop.post("/logout-everywhere", data={"csrf_token": token_of(page)})
        assert (ended.status_code, ended.headers["location"]) == (303, "/console/login")
        for client in (desktop, elsewhere):
            assert (await client.get("/")).status_code == 303
        assert (await laptop.get("/")).status_code == 303
        assert (await colleague.get("/")).status_code == 200


async def test_an_administrator_ends_an_accounts_sessions_from_the_command_line(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        console(hub) as rudi,
        console(hub) as olga,
        other_process(hub) as second,
        second() as elsewhere,
    ):
        await log_in(rudi, "rudi", PASSWORDS["rudi"])
        await log_in(elsewhere, "rudi", PASSWORDS["rudi"])
        await log_in(olga, "olga", PASSWORDS["olga"])
        common = ["--nats-url", hub.nats_url, "--data-dir", str(hub.config.data_dir)]
        command = ["console-logout", "--name", "rudi", *common]
        assert await asyncio.to_thread(poststelle, command) == 0
        assert "ended 2 console session(s) of rudi" in capsys.readouterr().out
        assert (await rudi.get("/")).status_code == 303
        assert (await elsewhere.get("/")).status_code == 303
        assert (await olga.get("/")).status_code == 200


def _changed(config: ConsoleConfig, **accounts: ConsoleAccount | None) -> ConsoleConfig:
    """``config`` with ``accounts`` replaced (``None``: removed)."""
    kept = {name: a for name, a in config.accounts.items() if name not in accounts}
    kept.update({name: a for name, a in accounts.items() if a is not None})
    return config.model_copy(update={"accounts": kept})


async def test_a_changed_password_or_account_takes_effect_without_a_restart(hub: Hub) -> None:
    config = hub.config.console
    async with console(hub) as olga, console(hub) as rudi:
        await log_in(olga, "olga", PASSWORDS["olga"])
        await log_in(rudi, "rudi", PASSWORDS["rudi"])
        olgas, rudis = olga.cookies["poststelle_console"], rudi.cookies["poststelle_console"]
        new_hash = ConsoleAccount(password_hash=hash_password("olga-new-pass"), role="operator")
        promoted = ConsoleAccount(password_hash=config.accounts["rudi"].password_hash)
        promoted = promoted.model_copy(update={"role": "operator"})
        # The configuration as a process started after the change loads it.
        reloaded = _changed(config, olga=new_hash, rudi=promoted)
        async with other_process(hub, reloaded) as second, second() as client:
            assert await status_with(client, olgas) == 303  # the old hash's session
            overview = await client.get("/", headers={"Cookie": f"poststelle_console={rudis}"})
            assert overview.status_code == 200 and "role-operator" in overview.text
            assert (await log_in(client, "olga", "olga-new-pass")).status_code == 303
        # The unchanged configuration still takes both: nothing was logged out.
        assert (await olga.get("/")).status_code == 200
        async with other_process(hub, _changed(config, rudi=None)) as second, second() as client:
            assert await status_with(client, rudis) == 303  # a removed account
            assert await status_with(client, olgas) == 200


async def test_failed_logins_are_counted_by_every_process_together(hub: Hub) -> None:
    async with console(hub) as client, other_process(hub) as second, second() as elsewhere:
        for attempt in range(10):
            where = client if attempt % 2 else elsewhere
            refused = await log_in(where, "olga", f"guess-{attempt}")
            assert "wrong account name or password" in refused.text
        for where in (client, elsewhere):
            throttled = await log_in(where, "olga", PASSWORDS["olga"])
            assert throttled.status_code == 401
            assert "too many failed logins" in throttled.text
            assert "poststelle_console" not in where.cookies
        # Another name is not held back by olga's.
        assert (await log_in(elsewhere, "rudi", PASSWORDS["rudi"])).status_code == 303


async def test_without_nats_nobody_is_let_in(hub: Hub) -> None:
    async with console(hub) as client:
        await log_in(client, "olga", PASSWORDS["olga"])
        cookie = client.cookies["poststelle_console"]
    async with other_process(hub, connected=False) as second, second() as cut_off:
        assert await status_with(cut_off, cookie) == 503
        answer = await log_in(cut_off, "olga", PASSWORDS["olga"])
        assert answer.status_code == 503 and "NATS" in answer.text
        assert "poststelle_console" not in cut_off.cookies


async def test_parallel_guesses_get_no_more_attempts_than_one_after_another(hub: Hub) -> None:
    async def guess(n: int, make: Callable[[], httpx.AsyncClient]) -> str:
        async with make() as client:  # a client each: the login form's nonce is per client
            return (await log_in(client, "olga", f"guess-{n}")).text

    async with other_process(hub) as second:
        texts = await asyncio.gather(
            *(guess(n, second if n % 2 else (lambda: console(hub))) for n in range(14))
        )
    assert sum("wrong account name or password" in text for text in texts) == 10
    assert sum("too many failed logins" in text for text in texts) == 4


async def _refused_changes(
    client: httpx.AsyncClient, hub: Hub, sequence: int, form: dict[str, str]
) -> httpx.Response:
    """A replay of record ``sequence`` and a new rule, each posted with ``form``: both are
    refused and the record stays parked. Returns the replay's answer."""
    replay = await client.post("/quarantine/replay", data={"seq": str(sequence), **form})
    assert replay.status_code == 403, replay.text
    rule = await client.post(
        "/routing/rules", data={"tenant": "luebeck", "backend": "bauakte", **form}
    )
    assert rule.status_code == 403, rule.text
    [still] = await list_quarantined(hub.js)
    assert still.sequence == sequence
    return replay


async def test_a_post_without_its_csrf_token_is_refused(hub: Hub, tmp_path: Path) -> None:
    _, _, sequence = await park_unroutable(hub, tmp_path)
    async with console(hub) as client:
        form = await client.get("/login")
        assert form.status_code == 200
        no_token = await client.post(
            "/login", data={"username": "olga", "password": PASSWORDS["olga"]}
        )
        assert no_token.status_code == 403
        await log_in(client, "olga", PASSWORDS["olga"])
        missing = await _refused_changes(client, hub, sequence, {})
        assert "CSRF" in missing.text
        await _refused_changes(client, hub, sequence, {"csrf_token": "x" * 43})


async def test_read_only_sees_but_cannot_replay(hub: Hub, tmp_path: Path) -> None:
    _, _, sequence = await park_unroutable(hub, tmp_path)
    async with console(hub) as client:
        await log_in(client, "rudi", PASSWORDS["rudi"])
        listing = await client.get("/quarantine")
        assert listing.status_code == 200 and f"#{sequence}" in listing.text
        assert "Replay these" not in listing.text
        page = await client.get(f"/quarantine/{sequence}")
        assert page.status_code == 200 and "read-only" in page.text
        token = token_of(page)  # the logout form's: rudi's session token
        refused = await _refused_changes(client, hub, sequence, {"csrf_token": token})
        assert "only operators" in refused.text


async def test_fix_the_route_and_replay_audited_with_the_user(hub: Hub, tmp_path: Path) -> None:
    case_id, uuid, sequence = await park_unroutable(hub, tmp_path)
    async with console(hub) as client:
        await log_in(client, "olga", PASSWORDS["olga"])
        listing = await client.get("/quarantine", params={"reason": "unroutable"})
        assert f'href="/console/quarantine/{sequence}"' in listing.text
        assert "xbau" in listing.text  # the standard, from the dedupe id
        other_channel = await client.get("/quarantine", params={"channel": "xta"})
        assert 'id="empty"' in other_channel.text
        other_standard = await client.get("/quarantine", params={"standard": "xdomea"})
        assert 'id="empty"' in other_standard.text
        page = await client.get(f"/quarantine/{sequence}")
        assert page.status_code == 200
        assert "unroutable" in page.text and "01003" in page.text
        assert "nachrichtenUUID" in page.text and uuid in page.text  # the raw message

        routing = await client.get("/routing")
        before = re.search(r'id="snapshot">([^<]+)<', routing.text)
        assert before
        added = await client.post(
            "/routing/rules",
            data={
                "ars": "010030000000",
                "standard": "xbau",
                "tenant": "luebeck",
                "backend": "bauakte",
                "revision": re.search(r'name="revision" value="(\d+)"', routing.text)[1],  # type: ignore[index]
                "csrf_token": token_of(routing),
            },
        )
        assert added.status_code == 200, added.text
        assert "ars=010030000000" in added.text and "luebeck/bauakte" in added.text
        assert "+ leistung=* ars=010030000000" in added.text  # the diff to the previous
        await eventually(lambda: hub.route_watcher.pointer.rules == 2)  # type: ignore[union-attr]

        confirm = await client.get("/quarantine/replay", params={"seq": str(sequence)})
        assert confirm.status_code == 200 and "Yes, replay 1" in confirm.text
        done = await client.post(
            "/quarantine/replay", data={"seq": str(sequence), "csrf_token": token_of(confirm)}
        )
        assert done.status_code == 200
        assert f"Replayed 1 record: #{sequence}" in done.text

        folder = next(w for w in hub.workers if w.backend.tenant == "luebeck").backend.folder  # type: ignore[attr-defined]
        await eventually(lambda: (folder / f"{case_id}.json").exists())
        entries = await eventually(
            lambda: _hops(hub, case_id, "delivered"),
        )
        [replayed] = [e for e in entries if e.hop == "replayed"]
        assert replayed.detail["by"] == "console:olga"
        assert (replayed.detail["stream"], replayed.detail["sequence"]) == ("QUARANTINE", sequence)

        trace = await client.get(f"/trace/{case_id}")
        assert "console:olga" in trace.text
        hops = re.findall(r'<span class="hop-name">([^<]+)</span>', trace.text)
        assert hops.index("quarantined") < hops.index("replayed") < hops.index("delivered")
        assert (await client.get(f"/quarantine/{sequence}")).status_code == 404


async def _hops(hub: Hub, case_id: str, wanted: str) -> list[AuditEntry] | None:
    entries = await AuditTrail(hub.js).read(case_id)
    return entries if any(e.hop == wanted for e in entries) else None


async def test_explain_names_the_winner_and_the_runners_up(hub: Hub, tmp_path: Path) -> None:
    await import_table(
        hub,
        tmp_path,
        """\
tenants:
  kiel: {backends: [bauakte]}
  land-sh: {backends: [poststelle]}
rules:
  - {ars: "010020000000", standard: xbau, tenant: kiel, backend: bauakte}
  - {ars: "01", tenant: land-sh, backend: poststelle}
""",
    )
    async with console(hub) as client:
        await log_in(client, "rudi", PASSWORDS["rudi"])
        # An AGS, as XBau messages carry it: the hub's own AGS -> ARS rule applies.
        answer = await client.get(
            "/routing",
            params={
                "explain": "1",
                "standard": "xbau",
                "message_type": "baugenehmigung.antrag.0200",
                "region": "01002000",
            },
        )
        assert answer.status_code == 200
        assert re.search(r'id="winner-target">kiel/bauakte<', answer.text)
        rule = re.search(r'id="winner-rule">([^<]+)<', answer.text)
        assert rule and "ars=010020000000" in rule[1] and "standard=xbau" in rule[1]
        assert "decided by ARS prefix length: 12 (Gemeinde) &gt; 2 (Land)" in answer.text
        candidates = answer.text.split('id="candidates"')[1].split("</table>")[0]
        assert candidates.count("<tr") == 3  # header, winner, the Land-wide runner-up
        assert "land-sh/poststelle" in candidates
        elsewhere = await client.get("/routing", params={"explain": "1", "region": "020000000000"})
        assert 'id="unroutable"' in elsewhere.text


async def test_trace_finds_a_case_by_each_of_its_ids(hub: Hub, tmp_path: Path) -> None:
    case_id, uuid, _ = await park_unroutable(hub, tmp_path)
    async with console(hub) as client:
        await log_in(client, "rudi", PASSWORDS["rudi"])
        for query in (case_id, uuid, "xta-msg-4711", vorgang_nummer(case_id).lower()):
            page = await client.get("/trace", params={"q": query})
            assert page.status_code == 200
            assert f'id="case-id">{case_id}<' in page.text, query
            assert "quarantined" in page.text
        missing = await client.get("/trace", params={"q": "no-such-id"})
        assert 'id="not-found"' in missing.text


async def test_a_schema_error_is_marked_at_its_line(
    hub_config: HubConfig, corpus_dir: Path
) -> None:
    config = console_config(hub_config)
    ContractRegistry.for_data_dir(config.data_dir).add_schema_set(corpus_dir / "xbau-2.6" / "xsd")
    invalid, _ = xbau_antrag()
    start = invalid.index(b"<referenzAntragsservice")
    end = invalid.index(b"</referenzAntragsservice>") + len(b"</referenzAntragsservice>")
    invalid = invalid[:start] + invalid[end:]
    async with Hub(config) as hub, console(hub) as client:
        async with httpx.AsyncClient(base_url=hub.http_url) as intake:
            await intake.post("/v1/submissions", content=invalid, headers=XML)
        [parked] = await eventually(lambda: list_quarantined(hub.js))
        await log_in(client, "rudi", PASSWORDS["rudi"])
        page = await client.get(f"/quarantine/{parked.sequence}")
    lines = {int(n) for n in re.findall(r"\bline (\d+)\b", parked.detail)}
    assert lines
    marked = {int(n) for n in re.findall(r'<span class="line marked" id="L(\d+)"', page.text)}
    assert marked == lines
    assert 'id="pretty"' in page.text  # well-formed: also pretty-printed


async def test_a_command_line_replay_is_audited_with_the_login_name(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id, _, sequence = await park_unroutable(hub, tmp_path)
    for variable in ("LOGNAME", "USER"):  # getpass.getuser asks LOGNAME first
        monkeypatch.setenv(variable, "root-on-the-host")
    common = ["--nats-url", hub.nats_url, "--data-dir", str(hub.config.data_dir)]
    command = ["quarantine", "replay", "--seq", str(sequence), *common]
    assert await asyncio.to_thread(poststelle, command) == 0
    entries = await eventually(lambda: _hops(hub, case_id, "replayed"))
    [replayed] = [e for e in entries if e.hop == "replayed"]
    assert replayed.detail["by"] == "cli:root-on-the-host"


async def test_a_dead_letter_is_listed_shown_and_replayed(hub: Hub) -> None:
    event = json.dumps({"id": "evt-1", "data": {"case_id": "case-dlq-1"}}).encode()
    await publish_dead_letter(
        hub.js,
        "case_crash_test",
        7,
        event,
        {H_CASE_ID: "case-dlq-1", H_ORIGINAL_SUBJECT: "case.crash.test.antrag"},
        reason="permanent",
        detail="webhook: HTTP 422: the back end refuses the event",
    )
    before = (await hub.js.stream_info(CASES)).state.messages
    async with console(hub) as client:
        await log_in(client, "olga", PASSWORDS["olga"])
        listing = await client.get("/dlq")
        assert "case_crash_test" in listing.text and "HTTP 422" in listing.text
        [sequence] = re.findall(r'href="/console/dlq/(\d+)"', listing.text)
        page = await client.get(f"/dlq/{sequence}")
        assert "HTTP 422" in page.text and "&#34;evt-1&#34;" in page.text  # pretty JSON
        confirm = await client.get("/dlq/replay", params={"consumer": "case_crash_test"})
        assert "Yes, replay 1" in confirm.text
        done = await client.post(
            "/dlq/replay", data={"seq": sequence, "csrf_token": token_of(confirm)}
        )
        assert f"Replayed 1 record: #{sequence}" in done.text
        assert "No dead letters." in (await client.get("/dlq")).text
    assert (await hub.js.stream_info(CASES)).state.messages == before + 1
    entries = await eventually(lambda: _hops(hub, "case-dlq-1", "replayed"))
    [replayed] = [e for e in entries if e.hop == "replayed"]
    assert (replayed.detail["by"], replayed.detail["to"]) == (
        "console:olga",
        "case.crash.test.antrag",
    )


async def test_a_filtered_set_is_replayed_after_its_confirmation(hub: Hub, tmp_path: Path) -> None:
    first, _, _ = await park_unroutable(hub, tmp_path)
    body, _ = xbau_antrag()
    async with httpx.AsyncClient(base_url=hub.http_url) as intake:
        second = await intake.post(
            "/v1/submissions",
            content=body.replace(b"<code>01002000</code>", b"<code>01003000</code>"),
            headers=XML,
        )
    await eventually(lambda: _count(hub, 2))
    async with console(hub) as client:
        await log_in(client, "olga", PASSWORDS["olga"])
        listing = await client.get("/quarantine", params={"reason": "unroutable"})
        link = re.search(r'id="replay-filtered" href="/console([^"]+)"', listing.text)
        assert link and "Replay these 2" in listing.text
        confirm = await client.get(link[1].replace("&amp;", "&"))
        assert "Yes, replay 2" in confirm.text
        assert first in confirm.text and second.json()["case_id"] in confirm.text
        chosen = re.findall(r'name="seq" value="(\d+)"', confirm.text)
        done = await client.post(
            "/quarantine/replay", data={"seq": chosen, "csrf_token": token_of(confirm)}
        )
        assert "Replayed 2 records" in done.text
    # Still no rule for Lübeck: both are parked again, under new sequence numbers.
    again = await eventually(lambda: _count(hub, 2))
    assert {item.case_id for item in again} == {first, second.json()["case_id"]}
    assert not {str(item.sequence) for item in again} & set(chosen)


async def _count(hub: Hub, wanted: int) -> list[QuarantinedMessage] | None:
    found = await list_quarantined(hub.js, reason="unroutable")
    return found if len(found) == wanted else None


async def test_the_overview_shows_a_federation_peer_that_is_not_there(
    hub_config: HubConfig,
) -> None:
    document = console_config(hub_config).model_dump(mode="json")
    document["console"] = {
        "accounts": {"rudi": {"password_hash": hash_password(PASSWORDS["rudi"])}}
    }
    document["federation"] = {"state": "sh", "peers": ["hh"]}
    async with Hub(HubConfig.model_validate(document)) as hub, console(hub) as client:
        report = (await hub.health())["federation"]
        assert report["state"] == "sh"
        assert report["peers"]["hh"]["ok"] is False  # no leaf link to Hamburg: never heard
        await log_in(client, "rudi", PASSWORDS["rudi"])
        overview = await client.get("/")
        row = overview.text.split("Federation peer hh")[1].split("</tr>")[0]
        assert "down" in row and "never" in row


async def test_the_overview_shows_the_delivered_and_forwarded_terms(
    hub: Hub, tmp_path: Path
) -> None:
    await import_table(hub, tmp_path, KIEL_ONLY)
    async with httpx.AsyncClient(base_url=hub.http_url) as intake:
        for _ in range(2):
            answer = await intake.post("/v1/submissions", content=xbau_antrag()[0], headers=XML)
            assert answer.status_code == 202, answer.text
    async with console(hub) as client:
        await log_in(client, "rudi", PASSWORDS["rudi"])

        async def settled() -> str | None:
            page = (await client.get("/overview/live", headers={"HX-Request": "true"})).text
            return page if '<b id="delivered">2</b>' in page else None

        page = await eventually(settled)
    assert '<b id="routed">2</b>' in page and '<b id="forwarded">0</b>' in page
    assert '<b id="delivering">0</b>' in page and '<b id="arrived-from-peers">0</b>' in page
    assert 'id="balance-state">balanced' in page
