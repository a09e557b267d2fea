"""API keys on every endpoint of a running hub: portals submit and read their own cases,
back ends reply to (and read) the cases routed to them; nothing answers without a key."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.adapters.portal import MAX_REPLY_BYTES
from poststelle.routing.hub.config import ConfigError, HubConfig, load_config
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from poststelle.routing.streams.topology import INBOX, REPLIES
from tests.integration.conftest import eventually
from tests.integration.test_ozg_intake import files_of
from tests.messages import xbau_antrag
from tests.test_readme import _block as readme_block

KIEL = {"X-API-Key": "portal-kiel-key-7f3a9c"}
SH = {"X-API-Key": "portal-sh-key-2b8e41"}
BAUAKTE = {"X-API-Key": "backend-bauakte-key-c05d"}
ANTRAEGE = {"X-API-Key": "backend-antraege-key-9e1f"}
NO_KEY: dict[str, str] = {}
WRONG = {"X-API-Key": "nobody-has-this-key"}
XML = {"Content-Type": "application/xml"}
JSON = {"Content-Type": "application/json"}
STATUS = {"kind": "status", "vorgang": "BA-2026-1", "antrag_vollstaendig": True}


def guarded_config(base: HubConfig) -> HubConfig:
    document = base.model_dump(mode="json")
    document["http"]["api_keys"] = {
        "portal-kiel": KIEL["X-API-Key"],
        "portal-sh": SH["X-API-Key"],
    }
    document["backends"] = [
        {
            "tenant": "stadt-kiel",
            "name": "bauakte",
            "kind": "filedrop",
            "api_key": BAUAKTE["X-API-Key"],
            "settings": {"reply_poll_interval": 0.05},
        },
        {
            "tenant": "stadt-kiel",
            "name": "antraege",
            "kind": "filedrop",
            "api_key": ANTRAEGE["X-API-Key"],
            "settings": {"reply_poll_interval": 0.05},
        },
    ]
    document["routes"] = [
        {"standard": "xbau", "tenant": "stadt-kiel", "backend": "bauakte"},
        {"standard": "ozg-portal", "tenant": "stadt-kiel", "backend": "antraege"},
    ]
    return HubConfig.model_validate(document)


@pytest.fixture
async def guarded(hub_config: HubConfig) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    async with (
        Hub(guarded_config(hub_config)) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http,
    ):
        yield hub, http


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = response.json()
    assert document["status"] == status
    assert document["title"] and document["detail"]
    return document


async def submitted_case(hub: Hub, http: httpx.AsyncClient) -> str:
    """A case portal-kiel submitted, routed to stadt-kiel/bauakte and registered."""
    body, _ = xbau_antrag()
    response = await http.post("/v1/submissions", content=body, headers={**XML, **KIEL})
    assert response.status_code == 202, response.text
    case_id: str = response.json()["case_id"]
    await eventually(lambda: hub.case_status(case_id))
    return case_id


async def test_submissions_want_a_portal_key(guarded: tuple[Hub, httpx.AsyncClient]) -> None:
    hub, http = guarded
    body, _ = xbau_antrag()
    for headers, status in [(NO_KEY, 401), (WRONG, 401), (BAUAKTE, 403)]:
        refused = await http.post("/v1/submissions", content=body, headers={**XML, **headers})
        assert_problem(refused, status)
    assert (await hub.js.stream_info(INBOX)).state.messages == 0, "nothing refused is stored"
    accepted = await http.post("/v1/submissions", content=body, headers={**XML, **SH})
    assert accepted.status_code == 202, accepted.text


async def test_antrag_wants_a_portal_key(guarded: tuple[Hub, httpx.AsyncClient]) -> None:
    hub, http = guarded
    for headers, status in [(NO_KEY, 401), (ANTRAEGE, 403)]:
        refused = await http.post("/antrag", files=files_of(str(uuid.uuid4())), headers=headers)
        assert_problem(refused, status)
    assert (await hub.js.stream_info(INBOX)).state.messages == 0
    accepted = await http.post("/antrag", files=files_of(str(uuid.uuid4())), headers=KIEL)
    assert accepted.status_code == 202, accepted.text
    case_id = accepted.json()["vorgang"]["vorgangId"]
    record = await eventually(lambda: hub.case_status(case_id))
    assert record["portal"] == "portal-kiel", "the registry remembers the submitting portal"
    assert (await http.get(f"/v1/cases/{case_id}", headers=KIEL)).status_code == 200
    assert_problem(await http.get(f"/v1/cases/{case_id}", headers=SH), 403)


async def test_case_status_only_for_its_portal_and_its_back_end(
    guarded: tuple[Hub, httpx.AsyncClient],
) -> None:
    hub, http = guarded
    case_id = await submitted_case(hub, http)
    for headers, status in [(NO_KEY, 401), (WRONG, 401), (SH, 403), (ANTRAEGE, 403)]:
        document = assert_problem(await http.get(f"/v1/cases/{case_id}", headers=headers), status)
        assert "routed" not in json.dumps(document), "a refusal reveals nothing of the case"
    for headers in (KIEL, BAUAKTE):
        response = await http.get(f"/v1/cases/{case_id}", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["case_id"] == case_id
    assert_problem(await http.get("/v1/cases/no-such-case", headers=KIEL), 404)


async def test_replies_only_from_the_case_s_back_end(
    guarded: tuple[Hub, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hub, http = guarded
    case_id = await submitted_case(hub, http)
    path = f"/v1/cases/{case_id}/events"
    for headers, status in [(NO_KEY, 401), (WRONG, 401), (KIEL, 403), (ANTRAEGE, 403)]:
        assert_problem(await http.post(path, json=STATUS, headers=headers), status)
    # The key is checked before the body is read: a large body without one is a 401.
    oversized = b" " * (MAX_REPLY_BYTES + 1)
    assert_problem(await http.post(path, content=oversized, headers=JSON), 401)
    assert (await hub.js.stream_info(REPLIES)).state.messages == 0, "no refused reply is stored"

    accepted = await http.post(path, json=STATUS, headers=BAUAKTE)
    assert accepted.status_code == 202, accepted.text
    assert hub.audit is not None
    trail = await hub.audit.read(case_id)
    [received] = [entry for entry in trail if entry.hop == "reply-received"]
    assert received.detail["via"] == "http:stadt-kiel/bauakte"
    await eventually(lambda: _has_hop(hub, case_id, "answer-queued"))
    status = (await http.get(f"/v1/cases/{case_id}", headers=KIEL)).json()
    assert status["last_reply"]["vorgang"] == "BA-2026-1"
    for key in (KIEL, SH, BAUAKTE, ANTRAEGE, WRONG):
        assert key["X-API-Key"] not in caplog.text, "keys are never logged"


async def _has_hop(hub: Hub, case_id: str, hop: str) -> bool:
    assert hub.audit is not None
    return any(entry.hop == hop for entry in await hub.audit.read(case_id))


async def test_reply_files_and_native_replies_only_for_the_own_back_end(
    guarded: tuple[Hub, httpx.AsyncClient],
) -> None:
    hub, http = guarded
    case_id = await submitted_case(hub, http)
    antraege = next(w.backend for w in hub.workers if w.backend.name == "antraege")
    inbox: Path = antraege.inbox  # type: ignore[attr-defined]
    (inbox / "fremd.json").write_text(json.dumps({"case_id": case_id, **STATUS}))
    reason = inbox / "rejected" / "fremd.json.reason.txt"
    await eventually(reason.exists)
    assert "not routed to stadt-kiel/antraege" in reason.read_text()
    # A native back end publishing on another back end's subject is parked, not answered.
    await hub.js.publish(
        "reply.stadt-kiel.antraege.status",
        json.dumps(STATUS).encode(),
        headers={"Poststelle-Case-Id": case_id},
    )
    [parked] = await eventually(lambda: list_quarantined(hub.js))
    assert (parked.step, parked.reason, parked.case_id) == ("reply", "foreign-case", case_id)
    record = await hub.case_status(case_id)
    assert record is not None and "last_reply" not in record, "no foreign reply was answered"


async def test_openapi_documents_the_scheme_on_every_guarded_operation(
    guarded: tuple[Hub, httpx.AsyncClient],
) -> None:
    _, http = guarded
    spec = (await http.get("/openapi.json")).json()
    operations = {
        ("/v1/submissions", "post"),
        ("/antrag", "post"),
        ("/v1/cases/{case_id}/events", "post"),
        ("/v1/cases/{case_id}", "get"),
    }
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert documented == operations | {("/healthz", "get")}
    for path, method in operations:
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"APIKeyHeader": []}], path
        for status in ("401", "403"):
            assert "application/problem+json" in operation["responses"][status]["content"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    for open_path in ("/healthz", "/docs", "/openapi.json"):
        assert (await http.get(open_path)).status_code == 200, open_path


async def test_only_portal_keys_still_close_the_reply_endpoint(hub_config: HubConfig) -> None:
    """Keys for portals alone: back ends without a key cannot post replies over HTTP."""
    document = hub_config.model_dump(mode="json")
    document["http"]["api_keys"] = {"portal-kiel": KIEL["X-API-Key"]}
    async with (
        Hub(HubConfig.model_validate(document)) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http,
    ):
        case_id = await submitted_case(hub, http)
        path = f"/v1/cases/{case_id}/events"
        assert_problem(await http.post(path, json=STATUS), 401)
        assert_problem(await http.post(path, json=STATUS, headers=KIEL), 403)


def test_one_key_for_two_holders_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text(
        '[http.api_keys]\nportal-kiel = "shared-key"\n\n'
        '[[backends]]\ntenant = "stadt-kiel"\nname = "bauakte"\napi_key = "shared-key"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"backends\[0\]\.api_key is the same key as"):
        load_config(file, environ={}, overrides={"data_dir": tmp_path})


def test_portal_names_are_slugs(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text('[http.api_keys]\n"Portal Kiel" = "k-1"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="portal name 'Portal Kiel' must be a slug"):
        load_config(file, environ={}, overrides={"data_dir": tmp_path})


def test_the_readme_s_api_key_example_loads(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text(readme_block("toml", "[http.api_keys]"), encoding="utf-8")
    config = load_config(file, environ={}, overrides={"data_dir": tmp_path})
    assert set(config.http.api_keys) == {"portal-kiel", "portal-sh"}
    [backend] = config.backends
    assert backend.api_key is not None and backend.api_key.get_secret_value()
    assert backend.api_key.get_secret_value() not in repr(config)
