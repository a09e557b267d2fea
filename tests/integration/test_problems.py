"""Every error of the HTTP app is an RFC 9457 problem document, over real HTTP: FastAPI's own
validation errors, unknown routes and methods, and unexpected exceptions included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.portal import MAX_REPLY_BYTES, PortalAdapter, PortalSettings
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.streams.topology import REPLIES

XML = {"Content-Type": "application/xml"}
JSON = {"Content-Type": "application/json"}
STATUS = {"kind": "status", "antrag_vollstaendig": True}

# (what, method, path, request arguments, status)
ERROR_PATHS: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("unknown route", "GET", "/v1/nothing-here", {}, 404),
    ("wrong method", "DELETE", "/v1/submissions", {}, 405),
    ("wrong method on a case", "PUT", "/v1/cases/c-1", {}, 405),
    (
        "reply of an unknown kind",
        "POST",
        "/v1/cases/c-1/events",
        {"json": {"kind": "verdict"}},
        422,
    ),
    (
        "reply with an unknown field",
        "POST",
        "/v1/cases/c-1/events",
        {"json": {**STATUS, "gebuehr": 12}},
        422,
    ),
    (
        "reply that is not JSON",
        "POST",
        "/v1/cases/c-1/events",
        {"content": b"{not json", "headers": JSON},
        422,
    ),
    ("reply for an unknown case", "POST", "/v1/cases/c-1/events", {"json": STATUS}, 404),
    (
        "reply over its size limit",
        "POST",
        "/v1/cases/c-1/events",
        {"content": b" " * (MAX_REPLY_BYTES + 1), "headers": JSON},
        413,
    ),
    ("state of an unknown case", "GET", "/v1/cases/c-1", {}, 404),
    ("submission as JSON", "POST", "/v1/submissions", {"content": b"{}", "headers": JSON}, 415),
    ("empty submission", "POST", "/v1/submissions", {"content": b"  ", "headers": XML}, 400),
    ("antrag not multipart", "POST", "/antrag", {"content": b"{}", "headers": JSON}, 415),
    ("antrag formData not JSON", "POST", "/antrag", {"files": {"formData": (None, "{x")}}, 400),
    (
        "antrag without transactionId",
        "POST",
        "/antrag",
        {"files": {"formData": (None, json.dumps({"control": {}}))}},
        422,
    ),
]


def assert_problem(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/problem+json", what
    document: dict[str, Any] = response.json()
    assert document["type"] == "about:blank", what
    assert document["status"] == status, what
    assert isinstance(document["title"], str) and document["title"], what
    assert isinstance(document["detail"], str) and document["detail"], what
    return document


async def test_every_error_path_answers_problem_json(hub: Hub, http: httpx.AsyncClient) -> None:
    for what, method, path, arguments, status in ERROR_PATHS:
        response = await http.request(method, path, **arguments)
        assert_problem(response, status, what)
    assert (await hub.js.stream_info(REPLIES)).state.messages == 0


async def test_validation_errors_name_the_field_without_echoing_the_input(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/v1/cases/c-1/events", json={"kind": "verdict", "note": 7})
    document = assert_problem(response, 422, "invalid reply")
    locations = {error["loc"] for error in document["errors"]}
    assert locations == {"body.kind", "body.note"}
    assert "body.kind" in document["detail"]
    assert all(set(error) == {"loc", "msg", "type"} for error in document["errors"])
    assert "verdict" not in response.text


async def test_wrong_method_names_the_allowed_ones(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/submissions")
    assert_problem(response, 405, "GET on the intake")
    assert response.headers["allow"] == "POST"


async def test_openapi_documents_every_error_as_problem_json(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    errors = [
        (path, method, status, list(answer.get("content", {})))
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        for status, answer in operation["responses"].items()
        if int(status) >= 400
    ]
    assert ("/v1/cases/{case_id}/events", "post", "422", ["application/problem+json"]) in errors
    assert all(content == ["application/problem+json"] for *_, content in errors), errors
    body = spec["paths"]["/v1/cases/{case_id}/events"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/CaseReply")
    assert "AnlageRef" in spec["components"]["schemas"]


async def test_an_unexpected_exception_is_a_500_problem_without_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_health() -> dict[str, Any]:
        raise RuntimeError("secret internal state 0xdeadbeef")

    async def publish(raw: bytes, **kwargs: Any) -> Any:
        raise AssertionError("not called")

    portal = PortalAdapter(
        name="http",
        settings=PortalSettings(port=0),
        context=AdapterContext(
            data_dir=tmp_path, publish=publish, extras={"health": broken_health}
        ),
    )
    await portal.start()
    try:
        async with httpx.AsyncClient(base_url=portal.url, timeout=10.0) as http:
            response = await http.get("/healthz")
            still_serving = await http.get("/v1/nothing-here")
    finally:
        await portal.stop()
    document = assert_problem(response, 500, "unexpected exception")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert document["title"] == "Internal Server Error"
    assert still_serving.status_code == 404
    [logged] = [r for r in caplog.records if r.exc_info and "request failed" in r.getMessage()]
    assert "/healthz" in logged.getMessage(), "the traceback goes to the log, once"
