from __future__ import annotations

from pathlib import Path

import nats
import pytest

from poststelle.routing.hub.embedded import EmbeddedNatsServer, NatsServerError


async def test_session_server_has_jetstream(nats_server: EmbeddedNatsServer) -> None:
    nc = await nats.connect(nats_server.client_url)
    try:
        info = await nc.jetstream().account_info()
        assert info.limits is not None
        assert nats_server.client_url.startswith("nats://127.0.0.1:")
    finally:
        await nc.close()


async def test_restart_keeps_port_and_data(tmp_path: Path) -> None:
    server = EmbeddedNatsServer(store_dir=tmp_path).start()
    try:
        url = server.client_url
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        await js.publish("keep.one", b"x")
        await nc.close()
        server.stop()
        server.start()
        assert server.client_url == url
        nc = await nats.connect(url)
        info = await nc.jetstream().stream_info("KEEP")
        assert info.state.messages == 1
        await nc.close()
    finally:
        server.stop()


def test_startup_failure_is_reported(tmp_path: Path) -> None:
    server = EmbeddedNatsServer(store_dir=tmp_path, extra_config="this is { not valid")
    with pytest.raises(NatsServerError, match="exited"):
        server.start()
