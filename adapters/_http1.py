"""A small HTTP/1.1 client for one origin: POST a body, read the status and the answer.

The webhook back end's hot path. httpx builds a request and a response object per call and
its connection pool checks every pooled connection for each request: 650 µs to 1.9 ms of CPU
per call on this machine. Here h11 (httpx's own HTTP/1.1 state machine, so the wire format
is as correct as httpx's) runs on asyncio streams with a stack of idle keep-alive
connections: ~100–150 µs per call. TLS uses the context httpx would use
(``httpx.create_ssl_context``: certifi's roots, ``SSL_CERT_FILE``); proxies are not spoken
here — the webhook falls back to httpx when the environment names one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import httpx

__all__ = ["Http1Error", "Http1Origin", "Http1Response"]

_READ_CHUNK = 64 * 1024
# An answer larger than this is cut: the webhook keeps only an excerpt of it.
_MAX_ANSWER = 1024 * 1024


class Http1Error(Exception):
    """The request did not get an answer: connect, send or read failed, or timed out."""


@dataclass(frozen=True, slots=True)
class Http1Response:
    status_code: int
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    def usable(self) -> bool:
        """Still open and silent: a server that closed an idle connection has left EOF."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class Http1Origin:
    """Keep-alive connections to the one origin of ``url``; at most ``max_connections``
    requests in flight."""

    def __init__(self, url: str, *, timeout: float, max_connections: int, user_agent: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl: ssl.SSLContext | None = (
            httpx.create_ssl_context() if parts.scheme == "https" else None
        )
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._base_headers = [
            ("Host", parts.netloc.rpartition("@")[2]),
            ("User-Agent", user_agent),
        ]

    async def post(self, headers: list[tuple[str, str]], body: bytes) -> Http1Response:
        request = h11.Request(
            method="POST",
            target=self._target,
            headers=[*self._base_headers, *headers, ("Content-Length", str(len(body)))],
        )
        async with self._slots:
            try:
                async with asyncio.timeout(self._timeout):
                    connection = self._reuse()
                    if connection is not None:
                        try:
                            return await self._exchange(connection, request, body)
                        except _NothingReceived:
                            # The server closed the idle connection as we used it (its
                            # keep-alive ran out): once more on a fresh one. Harmless even
                            # had it arrived: a webhook call is idempotent by its key.
                            pass
                    return await self._exchange(await self._connect(), request, body)
            except TimeoutError as exc:
                raise Http1Error(f"no answer within {self._timeout:g} s") from exc
            except _NothingReceived as exc:
                raise Http1Error(str(exc.__cause__ or "connection closed")) from exc
            except (OSError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
                raise Http1Error(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        for connection in idle:
            with contextlib.suppress(Exception):
                await connection.writer.wait_closed()

    def _reuse(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                connection.h11.start_next_cycle()
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None,
            limit=_READ_CHUNK,
        )
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, request: h11.Request, body: bytes
    ) -> Http1Response:
        machine = connection.h11
        received = False
        try:
            connection.writer.write(
                machine.send(request)
                + machine.send(h11.Data(data=body))
                + machine.send(h11.EndOfMessage())
            )
            await connection.writer.drain()
            status = 0
            chunks: list[bytes] = []
            size = 0
            while True:
                event = machine.next_event()
                if event is h11.NEED_DATA:
                    data = await connection.reader.read(_READ_CHUNK)
                    if not data and not received:
                        raise _NothingReceived("connection closed before an answer")
                    received = received or bool(data)
                    machine.receive_data(data)
                    continue
                received = True
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data) and size < _MAX_ANSWER:
                    chunks.append(event.data)
                    size += len(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("connection closed mid-answer")
        except BaseException as exc:
            connection.close()
            if not received and isinstance(exc, (OSError, h11.ProtocolError)):
                raise _NothingReceived(str(exc)) from exc
            raise
        if machine.our_state is h11.DONE and machine.their_state is h11.DONE:
            self._idle.append(connection)
        else:  # the server asked to close, or answered without keep-alive (HTTP/1.0)
            connection.close()
        return Http1Response(status_code=status, content=b"".join(chunks))


class _NothingReceived(Exception):
    """The connection failed before a byte of the answer came back."""
