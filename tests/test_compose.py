"""compose.yaml cannot run here (no Docker engine); its wiring is checked by parsing it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from poststelle.routing.hub.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_nats_cluster_routes_are_consistent() -> None:
    services = _compose()["services"]
    nodes = {name: s for name, s in services.items() if name.startswith("nats-")}
    assert len(nodes) == 3
    cluster_names = set()
    for name, service in nodes.items():
        command = service["command"]
        assert "--js" in command
        assert _flag(command, "--name") == name
        cluster_names.add(_flag(command, "--cluster_name"))
        cluster_port = _flag(command, "--cluster").rsplit(":", 1)[1]
        routes = _flag(command, "--routes").split(",")
        peers = {re.match(r"nats://([^:]+):(\d+)", r).group(1) for r in routes}  # type: ignore[union-attr]
        assert peers == set(nodes) - {name}, f"{name} must route to every other node"
        assert all(r.endswith(f":{cluster_port}") for r in routes)
        assert any(v.endswith(":/data") for v in service["volumes"])
        assert _flag(command, "--sd") == "/data"
    assert len(cluster_names) == 1


def test_hubs_point_at_every_cluster_node_with_r3() -> None:
    compose = _compose()
    services = compose["services"]
    nodes = {name for name in services if name.startswith("nats-")}
    hubs = {name: s for name, s in services.items() if name.startswith("hub-")}
    assert hubs
    for name, hub in hubs.items():
        environment = hub["environment"]
        urls = environment["POSTSTELLE_NATS_URL"].split(",")
        assert {re.match(r"nats://([^:]+):4222$", u).group(1) for u in urls} == nodes, name  # type: ignore[union-attr]
        assert environment["POSTSTELLE_NATS_REPLICAS"] == "3"
        assert set(hub["depends_on"]) == nodes
        assert any(v.startswith("filedrop:") for v in hub["volumes"])
    assert "filedrop" in compose["volumes"]


def test_hub_config_of_the_deployment_is_valid() -> None:
    services = _compose()["services"]
    config = load_config(ROOT / "deploy" / "hub.toml", environ=services["hub-1"]["environment"])
    assert config.nats.replicas == 3
    assert config.nats.url is not None and config.nats.url.count("nats://") == 3
    mount = next(v for v in services["hub-1"]["volumes"] if v.startswith("filedrop:"))
    assert config.backends[0].settings["directory"] == mount.split(":", 1)[1]
