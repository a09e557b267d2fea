"""Minimal HTTP/1.1 over asyncio streams for the hub bench: a keep-alive client pool and a
webhook receiver.

httpx costs about a millisecond of CPU per request; on a 2-core machine the load generator
would then measure itself. These few lines cost a fraction of that, so the figures are the
hub's. They speak only what uvicorn and httpx send: ``Content-Length`` bodies, no chunking.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["ConnectionPool", "Receiver", "Response", "read_message"]

_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One request or response: its first line, its headers (lower-case names), its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEAD:
        raise ValueError("HTTP head too large")
    first, *lines = head[:-4].split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise ValueError("chunked bodies are not spoken here")
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return first, headers, body


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, content_type: str) -> Response:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode("latin-1") + body)
        try:
            first, headers, answer = await read_message(self._reader)
        except BaseException:
            # A half-read answer leaves the stream unusable: start afresh next time.
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status=int(first.split(b" ", 2)[1]), body=answer, headers=headers)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class ConnectionPool:
    """Keep-alive connections to one or more servers, handed out round-robin."""

    def __init__(self, urls: list[str], size_per_server: int) -> None:
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._all: list[_Connection] = []
        # Interleaved, so consecutive requests go to different servers.
        for _ in range(size_per_server):
            for url in urls:
                host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
                connection = _Connection(host, int(port))
                self._all.append(connection)
                self._idle.put_nowait(connection)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        connection = await self._idle.get()
        try:
            yield connection
        finally:
            self._idle.put_nowait(connection)

    async def post(self, path: str, body: bytes, content_type: str) -> Response:
        async with self._connection() as connection:
            return await connection.post(path, body, content_type)

    def close(self) -> None:
        for connection in self._all:
            connection.close()


@dataclass
class Receiver:
    """A webhook back end that answers every POST with 200 and counts them."""

    received: int = 0
    port: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)

    async def start(self, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._serve, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        try:
            while True:
                await read_message(reader)
                self.received += 1
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
