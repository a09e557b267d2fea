"""The webhook's small HTTP/1.1 client against real loopback servers: keep-alive reuse, a
server that drops idle connections, chunked answers, HTTP/1.0, timeouts; and the fallback
to httpx when the environment names a proxy."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from poststelle.adapters._http1 import Http1Error, Http1Origin
from poststelle.adapters.base import AdapterContext
from poststelle.adapters.webhook import WebhookBackend, WebhookSettings
from tests.certificates import self_signed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Handler], Awaitable["Server"]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.bodies: list[bytes] = []
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        running = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        servers.append(running)
        server.url = f"http://127.0.0.1:{running.sockets[0].getsockname()[1]}/cases?x=1"
        return server

    yield start
    for running in servers:
        running.close()
        await running.wait_closed()


def _origin(url: str, timeout: float = 5.0) -> Http1Origin:
    return Http1Origin(url, timeout=timeout, max_connections=4, user_agent="test")


async def test_keep_alive_connection_is_reused(
    serve: Serve,
) -> None:
    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            server.bodies.append(await _read_request(reader))
            writer.write(OK)

    server = await serve(keep_alive)
    origin = _origin(server.url)
    for index in range(5):
        response = await origin.post([("X-N", str(index))], b"body-%d" % index)
        assert (response.status_code, response.content) == (200, b"{}")
    await origin.aclose()
    assert server.connections == 1
    assert server.bodies == [b"body-%d" % index for index in range(5)]


async def test_a_dropped_idle_connection_is_replaced_and_the_request_sent_once_more(
    serve: Serve,
) -> None:
    """The server answers, then closes the connection without saying so (keep-alive ran
    out): the next call finds it dead and still succeeds, on a new connection."""

    async def one_and_done(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.bodies.append(await _read_request(reader))
        writer.write(OK)
        await writer.drain()

    server = await serve(one_and_done)
    origin = _origin(server.url)
    assert (await origin.post([], b"first")).status_code == 200
    assert (await origin.post([], b"second")).status_code == 200
    await origin.aclose()
    assert server.bodies == [b"first", b"second"]
    assert server.connections == 2


async def test_chunked_and_http10_answers(serve: Serve) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nbusy \r\n4\r\nnow!\r\n0\r\n\r\n"
        )
        await _read_request(reader)
        writer.write(b"HTTP/1.0 201 Created\r\n\r\ndone")
        await writer.drain()

    server = await serve(chunked)
    origin = _origin(server.url)
    first = await origin.post([], b"a")
    second = await origin.post([], b"b")
    await origin.aclose()
    assert (first.status_code, first.content) == (503, b"busy now!")
    assert (second.status_code, second.content, second.is_success) == (201, b"done", True)


async def test_no_answer_in_time_is_an_error(serve: Serve) -> None:
    never = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await never.wait()

    server = await serve(silent)
    origin = _origin(server.url, timeout=0.2)
    with pytest.raises(Http1Error, match=r"no answer within 0\.2 s"):
        await origin.post([], b"x")
    never.set()
    await origin.aclose()


async def test_nothing_listening_is_an_error() -> None:
    origin = _origin("http://127.0.0.1:9/cases")
    with pytest.raises(Http1Error):
        await origin.post([], b"x")


def _backend(tmp_path: Path, url: str = "http://127.0.0.1:9/") -> WebhookBackend:
    return WebhookBackend(
        name="akte",
        tenant="stadt-kiel",
        settings=WebhookSettings.model_validate({"url": url, "secret": "s"}),
        context=AdapterContext(data_dir=tmp_path),
    )


def test_webhook_uses_httpx_for_a_proxy_or_credentials_in_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert _backend(tmp_path).client_kind == "http1"
    # Basic auth from the URL is httpx's to send.
    assert _backend(tmp_path, "https://user:pw@example.org/hook").client_kind == "httpx"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert _backend(tmp_path).client_kind == "httpx"


async def _serve_tls(cert: Path, key: Path) -> tuple[asyncio.Server, list[bytes]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    bodies: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                bodies.append(await _read_request(reader))
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context), bodies


async def test_https_origin_verifies_the_server_and_keeps_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    server, bodies = await _serve_tls(cert, key)
    port = server.sockets[0].getsockname()[1]
    # httpx's context (which the origin uses) trusts what SSL_CERT_FILE names.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    origin = Http1Origin(
        f"https://127.0.0.1:{port}/cases", timeout=5.0, max_connections=2, user_agent="test"
    )
    try:
        for index in range(3):
            response = await origin.post([("Content-Type", "application/json")], b"%d" % index)
            assert response.status_code == 200 and response.content == b"{}"
    finally:
        await origin.aclose()
        server.close()
        await server.wait_closed()
    assert bodies == [b"0", b"1", b"2"]


async def test_https_origin_refuses_a_certificate_it_does_not_trust(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server, bodies = await _serve_tls(cert, key)
    port = server.sockets[0].getsockname()[1]
    origin = Http1Origin(
        f"https://127.0.0.1:{port}/cases", timeout=5.0, max_connections=1, user_agent="test"
    )
    try:
        with pytest.raises(Http1Error, match="CERTIFICATE_VERIFY_FAILED"):
            await origin.post([], b"{}")
    finally:
        await origin.aclose()
        server.close()
        await server.wait_closed()
    assert bodies == []
