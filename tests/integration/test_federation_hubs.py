"""Two state hubs (Schleswig-Holstein, Bayern) with their own NATS, joined by a leaf node:
a Bavarian building application submitted in Kiel is delivered by the Bavarian hub."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest

from poststelle.contracts.events import CaseEvent
from poststelle.routing.federation.isolation import HUB_USER, generate_auth_config, leaf_user
from poststelle.routing.hub.config import HubConfig, load_config
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.stats import collect_stats
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag, xbau_antrag_with_files
from tests.routing.helpers import table
from tests.routing.test_federation import free_port

XML = {"Content-Type": "application/xml"}


def _in_muenchen(body: bytes) -> bytes:
    return body.replace(b"<code>01002000</code>", b"<code>09162000</code>")


def _state_config(tmp_path: Path, state: str, peer: str, **nats: object) -> HubConfig:
    config = load_config(environ={}, overrides={"data_dir": tmp_path / state, "http.port": 0})
    document = config.model_dump(mode="json")
    document["nats"].update(nats)
    document["federation"] = {"state": state, "peers": [peer]}
    document["backends"] = [{"tenant": f"bauaufsicht-{state}", "name": "akte"}]
    document["routes"] = [{"standard": "xbau", "tenant": f"bauaufsicht-{state}", "backend": "akte"}]
    return HubConfig.model_validate(document)


@pytest.fixture
async def hubs(tmp_path: Path) -> AsyncIterator[tuple[Hub, Hub]]:
    leaf_port = free_port()
    sh = _state_config(tmp_path, "sh", "by", leaf_listen_port=leaf_port)
    by = _state_config(tmp_path, "by", "sh", leaf_remotes=[f"nats-leaf://127.0.0.1:{leaf_port}"])
    async with Hub(sh) as sh_hub, Hub(by) as by_hub:
        yield sh_hub, by_hub


def _delivered(hub: Hub) -> list[CaseEvent]:
    folder = hub.workers[0].backend.folder  # type: ignore[attr-defined]
    return [CaseEvent.model_validate_json(p.read_bytes()) for p in folder.glob("*.json")]


async def test_case_for_another_state_travels_to_its_hub(hubs: tuple[Hub, Hub]) -> None:
    sh, by = hubs
    local_body, _ = xbau_antrag()
    bavarian_body, nachrichten_uuid = xbau_antrag()
    async with httpx.AsyncClient(base_url=sh.http_url) as http:
        local = (await http.post("/v1/submissions", content=local_body, headers=XML)).json()
        remote = (
            await http.post("/v1/submissions", content=_in_muenchen(bavarian_body), headers=XML)
        ).json()

    [in_bayern] = await eventually(lambda: _delivered(by), within=30)
    [in_sh] = await eventually(lambda: _delivered(sh))
    assert in_bayern.data.case_id == remote["case_id"]
    assert in_bayern.data.nachrichten_uuid == nachrichten_uuid
    assert in_bayern.data.tenant == "bauaufsicht-by"
    assert in_bayern.data.region == "09162000"
    assert in_sh.data.case_id == local["case_id"]
    assert sh.audit is not None
    assert [e.hop for e in await sh.audit.read(remote["case_id"])] == ["received", "forwarded"]
    # The health report (and the console's overview) sees each peer through its table mirror.
    # Kiel's mirror was made before Bayern's hub existed: the server retries it with a
    # backoff of its own, which may take longer than a case does.
    for hub, peer in ((sh, "by"), (by, "sh")):
        report = await eventually(lambda h=hub, p=peer: _peer_health(h, p), within=120)
        assert report["lag"] == 0, report


async def _peer_health(hub: Hub, peer: str) -> dict[str, object] | None:
    report = (await hub.health())["federation"]["peers"][peer]
    return report if report["ok"] else None


async def _balance(hub: Hub, **expected: int) -> dict[str, object] | None:
    balance: dict[str, object] = (await collect_stats(hub.js))["conservation"]
    return balance if all(balance[key] == value for key, value in expected.items()) else None


async def test_each_hubs_balance_closes_with_forwarded_and_arrived_cases(
    hubs: tuple[Hub, Hub],
) -> None:
    """Kiel forwards N cases to Bayern: on Kiel's books they are forwarded (not in flight
    forever), on Bayern's they are arrivals from a peer and delivered."""
    sh, by = hubs
    cases = 4
    async with httpx.AsyncClient(base_url=sh.http_url) as http:
        for _ in range(cases):
            body, _ = xbau_antrag()
            answer = await http.post("/v1/submissions", content=_in_muenchen(body), headers=XML)
            assert answer.status_code == 202
    await eventually(lambda: len(_delivered(by)) == cases, within=30)
    kiel = await eventually(lambda: _balance(sh, forwarded=cases, in_flight=0))
    assert kiel is not None
    assert (kiel["received"], kiel["routed"], kiel["unaccounted"]) == (cases, 0, 0)
    assert kiel["forwarded_to"] == {"by": cases}
    assert (kiel["arrived_from_peers"], kiel["delivered"]) == (0, 0)
    bayern = await eventually(lambda: _balance(by, delivered=cases, delivering=0))
    assert bayern is not None
    assert (bayern["received"], bayern["arrived_from_peers"], bayern["routed"]) == (
        cases,
        cases,
        cases,
    )
    assert bayern["arrived_from"] == {"sh": cases}
    assert (bayern["forwarded"], bayern["in_flight"], bayern["unaccounted"]) == (0, 0, 0)


async def test_cases_wait_out_an_outage_of_the_peer(tmp_path: Path) -> None:
    leaf_port = free_port()
    sh_config = _state_config(tmp_path, "sh", "by", leaf_listen_port=leaf_port)
    by_config = _state_config(
        tmp_path, "by", "sh", leaf_remotes=[f"nats-leaf://127.0.0.1:{leaf_port}"]
    )
    async with Hub(sh_config) as sh:
        by = await Hub(by_config).start()
        await by.stop()  # Bayern is down: its server and its hub
        case_ids = set()
        async with httpx.AsyncClient(base_url=sh.http_url) as http:
            for _ in range(5):
                body, _ = xbau_antrag()
                answer = await http.post("/v1/submissions", content=_in_muenchen(body), headers=XML)
                assert answer.status_code == 202
                case_ids.add(answer.json()["case_id"])
        await eventually(lambda: sh.counters.get("core.forwarded") == 5)
        async with Hub(by_config) as by_again:
            await eventually(lambda: len(_delivered(by_again)) == 5, within=30)
            # Nothing more arrives: each case exactly once.
            assert (await by_again.js.stream_info("INBOX")).state.messages == 5
        assert {event.data.case_id for event in _delivered(by_again)} == case_ids


async def test_claim_checked_case_for_another_state_is_read_from_the_origin(
    hubs: tuple[Hub, Hub],
) -> None:
    """A body too large for a stream message stays in the origin's object store; the target
    hub reads it from there across the link, with its files byte for byte."""
    sh, by = hubs
    plans = [("lageplan.pdf", os.urandom(700_000))]
    body, nachrichten_uuid = xbau_antrag_with_files(plans)
    assert len(body) > sh.config.intake.claim_check_bytes
    async with httpx.AsyncClient(base_url=sh.http_url) as http:
        answer = await http.post("/v1/submissions", content=_in_muenchen(body), headers=XML)
    assert answer.status_code == 202, answer.text

    [in_bayern] = await eventually(lambda: _delivered(by), within=20)
    assert in_bayern.data.nachrichten_uuid == nachrichten_uuid
    assert in_bayern.data.tenant == "bauaufsicht-by"
    folder = by.workers[0].backend.folder  # type: ignore[attr-defined]
    assert (folder / f"{in_bayern.data.case_id}.files" / "lageplan.pdf").read_bytes() == plans[0][1]


async def test_an_authenticated_federation_delivers_and_refuses_a_stranger(
    tmp_path: Path,
) -> None:
    """SH's embedded server with the nkey users of `nats-config --peer by`: the hub logs in
    with its seed, Bayern's leaf link with leaf-by's, and the case crosses; a client without
    credentials is refused (leaf links without the seed: test_federation_leaf_auth.py)."""
    auth = generate_auth_config(table(), own_state="sh", leaf_peers=["by"])
    auth_file, hub_seed, leaf_seed = tmp_path / "auth.conf", tmp_path / "hub.nk", tmp_path / "by.nk"
    auth_file.write_text(auth.text, encoding="utf-8")
    hub_seed.write_text(auth.seeds[HUB_USER] + "\n", encoding="utf-8")
    leaf_seed.write_text(auth.seeds[leaf_user("by")] + "\n", encoding="utf-8")
    leaf_port = free_port()
    sh_config = _state_config(
        tmp_path, "sh", "by", leaf_listen_port=leaf_port, auth_file=auth_file, nkey_seed=hub_seed
    )
    by_config = _state_config(
        tmp_path,
        "by",
        "sh",
        leaf_remotes=[f"nats-leaf://127.0.0.1:{leaf_port}"],
        leaf_nkey_seed=leaf_seed,
    )
    async with Hub(sh_config) as sh, Hub(by_config) as by:
        assert by.embedded is not None
        written = (by.embedded.store_dir / "run" / "nats-server.conf").read_text(encoding="utf-8")
        assert auth.seeds[leaf_user("by")] not in written
        body, _ = xbau_antrag()
        async with httpx.AsyncClient(base_url=sh.http_url) as http:
            answer = await http.post("/v1/submissions", content=_in_muenchen(body), headers=XML)
        assert answer.status_code == 202
        [in_bayern] = await eventually(lambda: _delivered(by), within=30)
        assert in_bayern.data.case_id == answer.json()["case_id"]
        # Without credentials, SH's server takes neither a client nor a leaf link.
        assert sh.embedded is not None
        with pytest.raises(nats.errors.NoServersError):
            await nats.connect(
                sh.embedded.client_url, max_reconnect_attempts=1, reconnect_time_wait=0.1
            )
