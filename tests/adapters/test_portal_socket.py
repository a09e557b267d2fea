"""The portal's connections send each answer at once (TCP_NODELAY): with Nagle's algorithm
on, an answer written in two parts waited for the client's delayed ACK, ~40 ms per request
on a keep-alive connection, which capped the bench's HTTP intake at ~340 requests/s."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.portal import PortalAdapter, PortalSettings
from poststelle.adapters.testing import RecordingPublisher
from tests.messages import xbau_antrag


async def test_accepted_connections_have_nodelay(tmp_path: Path) -> None:
    portal = PortalAdapter(
        name="http",
        settings=PortalSettings(port=0),
        context=AdapterContext(data_dir=tmp_path, publish=RecordingPublisher()),
    )
    await portal.start()
    try:
        async with httpx.AsyncClient(base_url=portal.url) as client:
            body, _ = xbau_antrag()
            response = await client.post(
                "/v1/submissions", content=body, headers={"Content-Type": "application/xml"}
            )
            assert response.status_code == 202, response.text
            assert portal._server is not None
            connections = list(portal._server.server_state.connections)
            assert connections, "the keep-alive connection is still open"
            for connection in connections:
                sock = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        await portal.stop()


def test_a_portal_without_the_hubs_publish_callable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the portal adapter needs the hub's publish callable"):
        PortalAdapter(
            name="http", settings=PortalSettings(port=0), context=AdapterContext(data_dir=tmp_path)
        )
