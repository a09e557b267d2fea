"""A real HTTP webhook receiver on loopback, scriptable to fail, for back-end tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from poststelle.adapters.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class Receiver:
    secret: bytes
    url: str = ""
    statuses: list[int] = field(default_factory=list)  # scripted answers, then 200
    received: list[tuple[str, bytes]] = field(default_factory=list)  # (idempotency key, body)
    bad_signatures: int = 0
    calls: int = 0
    call_times: list[float] = field(default_factory=list)  # time.monotonic() of each POST
    delay: float = 0.0  # seconds each POST takes before the receiver takes it
    traceparents: list[str] = field(default_factory=list)  # W3C trace context, when sent
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted_keys(self) -> list[str]:
        with self.lock:
            return [key for key, _ in self.received]

    def backend(self, tenant: str, name: str) -> dict[str, Any]:
        """This receiver as a hub configuration's back end: a webhook signed with its secret."""
        return {
            "tenant": tenant,
            "name": name,
            "kind": "webhook",
            "settings": {"url": self.url, "secret": self.secret.decode()},
        }


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if receiver.delay:
                time.sleep(receiver.delay)
            with receiver.lock:
                receiver.calls += 1
                if self.headers.get("traceparent"):
                    receiver.traceparents.append(self.headers["traceparent"])
                receiver.call_times.append(time.monotonic())
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                signed = verify(
                    receiver.secret,
                    self.headers.get(TIMESTAMP_HEADER, ""),
                    body,
                    self.headers.get(SIGNATURE_HEADER, ""),
                )
                if not signed:
                    receiver.bad_signatures += 1
                    status = 401
                if status < 300:
                    receiver.received.append((self.headers.get("Idempotency-Key", ""), body))
            payload = b'{"error": "scripted failure"}' if status >= 300 else b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@contextmanager
def webhook_receiver(secret: bytes = b"s3cret") -> Iterator[Receiver]:
    receiver = Receiver(secret=secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/cases"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
