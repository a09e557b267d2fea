"""``POST /antrag``: OZG-Cloud multipart applications through a running hub over real HTTP."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.contracts.events import CaseEvent, deterministic_case_id
from poststelle.routing.hub.config import HubConfig, load_config
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.streams.topology import ATTACHMENTS_BUCKET, CASES, INBOX
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ozg-portal-submission.json"
PDF = b"%PDF-1.7\n1 0 obj <</Type/Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
API_KEY = "kiel-portal-key-0123456789"
TENANT, BACKEND = "stadt-kiel", "antraege"


def form(transaction_id: str | None = None) -> dict[str, Any]:
    """The example application's form, as a portal sends it (control beside the fields)."""
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))["formData"]
    document = copy.deepcopy(document)
    document.pop("anlagen")  # files travel as parts here, not base64 inside the JSON
    document["control"]["transactionId"] = transaction_id or str(uuid.uuid4())
    return dict(document)


def files_of(transaction_id: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        (
            "formData",
            ("formData.json", json.dumps(form(transaction_id)).encode(), "application/json"),
        ),
        ("representation", ("antrag.pdf", PDF, "application/pdf")),
        ("attachment", ("lageplan.pdf", PDF + b"% Lageplan\n", "application/pdf")),
        (
            "attachment",
            ("../../etc/ansicht.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png"),
        ),
    ]


def ozg_config(base: HubConfig, **http: Any) -> HubConfig:
    document = base.model_dump(mode="json")
    document["backends"] = [{"tenant": TENANT, "name": BACKEND, "kind": "filedrop"}]
    document["routes"] = [{"standard": "ozg-portal", "tenant": TENANT, "backend": BACKEND}]
    document["http"].update(http)
    return HubConfig.model_validate(document)


@pytest.fixture
async def ozg_hub(hub_config: HubConfig) -> AsyncIterator[Hub]:
    async with Hub(ozg_config(hub_config)) as running:
        yield running


@pytest.fixture
async def client(ozg_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ozg_hub.http_url, timeout=10.0) as http:
        yield http


def delivered(hub: Hub, case_id: str) -> Path:
    folder: Path = hub.workers[0].backend.folder  # type: ignore[attr-defined]
    return folder / f"{case_id}.json"


async def stored_objects(hub: Hub) -> int:
    return (await hub.js.stream_info(f"OBJ_{ATTACHMENTS_BUCKET}")).state.messages


async def idle(hub: Hub) -> bool:
    report = await hub.health()
    return all(
        c.get("pending") == 0 and c.get("ack_pending") == 0 for c in report["consumers"].values()
    )


async def test_application_with_files_is_delivered_with_claim_checked_refs(
    ozg_hub: Hub, client: httpx.AsyncClient
) -> None:
    transaction_id = str(uuid.uuid4())
    parts = files_of(transaction_id)
    response = await client.post("/antrag", files=parts)
    assert response.status_code == 202, response.text
    answer = response.json()
    case_id = deterministic_case_id("portal", transaction_id)
    assert answer["transactionId"] == transaction_id
    assert answer["vorgang"]["vorgangId"] == case_id
    assert answer["vorgang"]["status"] == "NEU"
    assert answer["vorgang"]["vorgangNummer"].startswith("PS-")
    assert answer["vorgang"]["statusSince"].endswith("+00:00")

    target = delivered(ozg_hub, case_id)
    await eventually(target.exists)
    event = CaseEvent.model_validate_json(target.read_bytes())
    assert (event.data.tenant, event.data.backend) == (TENANT, BACKEND)
    assert event.data.standard == "ozg-portal"
    assert event.data.nachrichten_uuid == transaction_id
    assert event.data.fields["form_id"] == "bauantrag-vereinfacht-sh"
    assert event.data.origin.source_message_id == transaction_id

    sent = [(name, content, media) for _, (name, content, media) in parts[1:]]
    refs = event.data.attachments
    assert [(r.name, r.media_type, r.kind) for r in refs] == [
        ("antrag.pdf", "application/pdf", "inline"),
        ("lageplan.pdf", "application/pdf", "inline"),
        ("ansicht.png", "image/png", "inline"),  # the sender's path is dropped
    ]
    store = await ozg_hub.js.object_store(ATTACHMENTS_BUCKET)
    for ref, (_, content, _) in zip(refs, sent, strict=True):
        assert ref.size == len(content)
        assert ref.sha256 == hashlib.sha256(content).hexdigest()
        assert ref.ref == f"attachments/{case_id}/{ref.sha256}"
        fetched = await store.get(ref.ref.removeprefix("attachments/"))
        assert fetched.data == content


async def test_same_transaction_twice_is_one_case_and_one_delivery(
    ozg_hub: Hub, client: httpx.AsyncClient
) -> None:
    transaction_id = str(uuid.uuid4())
    # Once as a plain form field, once as a JSON file part: portals do both.
    first = await client.post(
        "/antrag",
        data={"formData": json.dumps(form(transaction_id))},
        files=[("representation", ("antrag.pdf", PDF, "application/pdf"))],
    )
    second = await client.post("/antrag", files=files_of(transaction_id)[:2])
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["vorgang"]["vorgangId"] == second.json()["vorgang"]["vorgangId"]
    assert first.json()["vorgang"]["vorgangNummer"] == second.json()["vorgang"]["vorgangNummer"]
    # The re-send is the same vorgang, NEU since the first acceptance.
    assert first.json()["vorgang"]["statusSince"] == second.json()["vorgang"]["statusSince"]

    await eventually(lambda: ozg_hub.counters.get("delivery.delivered") >= 1)
    await eventually(lambda: idle(ozg_hub))
    assert ozg_hub.counters.get("delivery.delivered") == 1
    assert ozg_hub.counters.get("intake.duplicate") == 1
    assert (await ozg_hub.js.stream_info(INBOX)).state.messages == 1
    assert (await ozg_hub.js.stream_info(CASES)).state.messages == 1


async def test_form_already_wrapped_in_formdata_is_taken_as_sent(
    ozg_hub: Hub, client: httpx.AsyncClient
) -> None:
    transaction_id = str(uuid.uuid4())
    wrapped = json.dumps({"formData": form(transaction_id)}).encode()
    response = await client.post(
        "/antrag", files={"formData": ("f.json", wrapped, "application/json")}
    )
    assert response.status_code == 202, response.text
    target = delivered(ozg_hub, deterministic_case_id("portal", transaction_id))
    await eventually(target.exists)
    event = CaseEvent.model_validate_json(target.read_bytes())
    assert event.data.attachments == []
    assert event.data.original is not None
    assert event.data.original.size == len(wrapped)  # byte for byte, not re-encoded


@pytest.mark.parametrize(
    ("form_data", "status", "title"),
    [
        (b"{not json", 400, "formData is not JSON"),
        (b"   ", 400, "Empty formData"),
        (b"[1, 2]", 422, "Invalid formData"),
        (b'{"antragsteller": {}}', 422, "Invalid formData"),
        (b'{"control": {"formId": "x"}}', 422, "Invalid formData"),
        (b'{"control": {"transactionId": "with space"}}', 422, "Invalid formData"),
        (b'{"control": {"transactionId": 42}}', 422, "Invalid formData"),
        (b"[" * 100_000, 400, "formData is not JSON"),
    ],
)
async def test_bad_formdata_is_refused_and_nothing_is_stored(
    ozg_hub: Hub, client: httpx.AsyncClient, form_data: bytes, status: int, title: str
) -> None:
    response = await client.post(
        "/antrag",
        files=[
            ("formData", ("f.json", form_data, "application/json")),
            ("attachment", ("a.pdf", PDF, "application/pdf")),
        ],
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == title
    assert response.json()["status"] == status
    assert (await ozg_hub.js.stream_info(INBOX)).state.messages == 0
    assert await stored_objects(ozg_hub) == 0


@pytest.mark.parametrize(
    ("request_kwargs", "status", "detail_part"),
    [
        ({"files": [("representation", ("a.pdf", PDF, "application/pdf"))]}, 400, "exactly one"),
        (
            {"files": [("formData", ("f", b"{}", "application/json"))] * 2},
            400,
            "exactly one",
        ),
        ({"files": [("formData", (None, b"{}")), ("other", (None, b"x"))]}, 400, "fields"),
        (
            {"files": [("formData", ("f", b"{}", "a/b")), ("extra", ("x", b"x", "a/b"))]},
            400,
            "extra",
        ),
        (
            {"files": [("formData", ("f", b"{}", "a/b")), ("representation", (None, b"x"))]},
            400,
            "file upload",
        ),
        ({"json": form()}, 415, "multipart/form-data"),
    ],
)
async def test_malformed_multipart_is_refused(
    ozg_hub: Hub,
    client: httpx.AsyncClient,
    request_kwargs: dict[str, Any],
    status: int,
    detail_part: str,
) -> None:
    response = await client.post("/antrag", **request_kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail_part in response.json()["detail"]
    assert (await ozg_hub.js.stream_info(INBOX)).state.messages == 0


async def test_over_the_size_limit_gets_413_whether_declared_or_streamed(
    hub_config: HubConfig,
) -> None:
    limit = 64 * 1024
    async with (
        Hub(ozg_config(hub_config, max_body_bytes=limit)) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http,
    ):
        big = [*files_of(str(uuid.uuid4()))[:1], ("attachment", ("big.bin", b"x" * limit, "a/b"))]
        declared = await http.post("/antrag", files=big)
        assert declared.status_code == 413, declared.text
        assert declared.headers["content-type"] == "application/problem+json"
        assert declared.json()["limit"] == limit

        # Without Content-Length the limit must hold while the body streams in.
        prepared = httpx.Request("POST", hub.http_url, files=big)
        body = prepared.read()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        streamed = await http.post(
            "/antrag",
            content=chunks(),
            headers={"content-type": prepared.headers["content-type"]},
        )
        assert streamed.status_code == 413, streamed.text
        assert (await hub.js.stream_info(INBOX)).state.messages == 0
        assert await stored_objects(hub) == 0

        small = await http.post("/antrag", files=files_of(str(uuid.uuid4()))[:2])
        assert small.status_code == 202, "a submission under the limit still goes through"


def attachments(count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("attachment", (f"nachweis-{n}.pdf", PDF + f"% {n}\n".encode(), "application/pdf"))
        for n in range(count)
    ]


async def test_more_than_a_hundred_attachments_go_through(
    ozg_hub: Hub, client: httpx.AsyncClient
) -> None:
    transaction_id = str(uuid.uuid4())
    response = await client.post(
        "/antrag", files=[*files_of(transaction_id)[:2], *attachments(150)]
    )
    assert response.status_code == 202, response.text
    target = delivered(ozg_hub, deterministic_case_id("portal", transaction_id))
    await eventually(target.exists)
    assert len(CaseEvent.model_validate_json(target.read_bytes()).data.attachments) == 151


async def test_over_the_attachment_limit_gets_413_naming_it(hub_config: HubConfig) -> None:
    async with (
        Hub(ozg_config(hub_config, max_attachments=3)) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http,
    ):
        head = files_of(str(uuid.uuid4()))[:2]  # formData and the representation
        # 1 + 3 files: over the limit after parsing; 1 + 5: the parser itself stops.
        for extra in (3, 5):
            refused = await http.post("/antrag", files=[*head, *attachments(extra)])
            assert refused.status_code == 413, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["limit"] == 3
            assert "at most 3" in refused.json()["detail"]
            assert "http.max_attachments" in refused.json()["detail"]
        assert (await hub.js.stream_info(INBOX)).state.messages == 0
        assert await stored_objects(hub) == 0
        accepted = await http.post("/antrag", files=[*head, *attachments(2)])
        assert accepted.status_code == 202, accepted.text


async def test_api_keys_guard_both_intake_routes(hub_config: HubConfig) -> None:
    config = ozg_config(hub_config, api_keys={"portal-kiel": API_KEY, "portal-sh": "other-key-9"})
    async with (
        Hub(config) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http,
    ):
        xml, _ = xbau_antrag()
        for headers, expected in [({}, 401), ({"X-API-Key": "wrong"}, 401)]:
            antrag = await http.post("/antrag", files=files_of(str(uuid.uuid4())), headers=headers)
            raw = await http.post(
                "/v1/submissions",
                content=xml,
                headers={"Content-Type": "application/xml", **headers},
            )
            for response in (antrag, raw):
                assert response.status_code == expected, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert "X-API-Key" in response.json()["detail"]
        assert (await hub.js.stream_info(INBOX)).state.messages == 0
        assert await stored_objects(hub) == 0

        good = {"X-API-Key": API_KEY}
        antrag = await http.post("/antrag", files=files_of(str(uuid.uuid4())), headers=good)
        assert antrag.status_code == 202, antrag.text
        other = {"X-API-Key": "other-key-9"}
        raw = await http.post(
            "/v1/submissions", content=xml, headers={"Content-Type": "application/xml", **other}
        )
        assert raw.status_code == 202, raw.text
        assert (await hub.js.stream_info(INBOX)).state.messages == 2

        spec = (await http.get("/openapi.json")).json()
        assert spec["paths"]["/antrag"]["post"]["security"] == [{"APIKeyHeader": []}]
        assert spec["paths"]["/v1/submissions"]["post"]["security"] == [{"APIKeyHeader": []}]
        assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
        assert (await http.get("/healthz")).status_code == 200, "health stays open"


async def test_without_api_keys_configured_no_key_is_needed(
    ozg_hub: Hub, client: httpx.AsyncClient
) -> None:
    response = await client.post("/antrag", files=files_of(str(uuid.uuid4()))[:1])
    assert response.status_code == 202, response.text
    spec = (await client.get("/openapi.json")).json()
    assert "security" not in spec["paths"]["/antrag"]["post"]


async def test_openapi_documents_the_multipart_parts(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    operation = response.json()["paths"]["/antrag"]["post"]
    body = operation["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["formData"]
    parts = body["schema"]["properties"]
    assert set(parts) == {"formData", "representation", "attachment"}
    assert parts["attachment"]["items"]["format"] == "binary"
    assert parts["representation"]["items"]["format"] == "binary"
    assert body["encoding"]["formData"]["contentType"] == "application/json"
    answer = operation["responses"]["202"]["content"]["application/json"]["schema"]
    assert answer["$ref"].endswith("/AntragAccepted")
    for status in ("400", "413", "415", "422"):
        assert "application/problem+json" in operation["responses"][status]["content"]
    assert (await client.get("/docs")).status_code == 200


async def test_demo_configuration_routes_portal_applications(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    """What the README's curl example does against ``make run``."""
    transaction_id = str(uuid.uuid4())
    response = await http.post("/antrag", files=files_of(transaction_id)[:2])
    assert response.status_code == 202, response.text
    target = delivered(hub, response.json()["vorgang"]["vorgangId"])
    await eventually(target.exists)
    event = CaseEvent.model_validate_json(target.read_bytes())
    assert (event.data.tenant, event.data.backend) == ("bauaufsicht-demo", "filedrop")
    assert [ref.name for ref in event.data.attachments] == ["antrag.pdf"]


def test_api_keys_load_from_the_config_file_as_the_readme_shows(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text('[http.api_keys]\nportal-kiel = "a-long-random-key"\n', encoding="utf-8")
    config = load_config(file, environ={}, overrides={"data_dir": tmp_path})
    assert config.http.api_keys["portal-kiel"].get_secret_value() == "a-long-random-key"
    assert "a-long-random-key" not in repr(config), "keys never show in logs or reprs"
