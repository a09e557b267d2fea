from __future__ import annotations

from pathlib import Path

import pytest

from poststelle.adapters.filedrop import FileDropBackend
from poststelle.adapters.registry import AdapterRegistry, UnknownAdapterError
from poststelle.routing.hub.config import ConfigError, load_config
from poststelle.routing.hub.runtime import Hub


def test_project_adapters_are_registered_by_entry_point() -> None:
    registry = AdapterRegistry()
    assert {"filedrop", "webhook", "portal"} <= set(registry.names())
    assert registry.get("filedrop") is FileDropBackend


def test_typo_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownAdapterError, match=r"did you mean 'webhook'\?") as raised:
        AdapterRegistry().get("webhok")
    assert raised.value.suggestions[0] == "webhook"


def test_nothing_close_lists_what_exists() -> None:
    with pytest.raises(UnknownAdapterError, match=r"registered: .*filedrop") as raised:
        AdapterRegistry().get("zzzzzz")
    assert raised.value.suggestions == []


def _config(tmp_path: Path, backend: str) -> Path:
    file = tmp_path / "hub.toml"
    file.write_text(f"[[backends]]\ntenant = 'stadt-kiel'\nname = 'akte'\n{backend}\n")
    return file


async def test_hub_refuses_a_misspelt_adapter_before_connecting(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "kind = 'filedorp'"), environ={})
    with pytest.raises(ConfigError, match=r"backends\[0\]\.kind: .*did you mean 'filedrop'"):
        await Hub(config).start()


async def test_hub_refuses_bad_adapter_settings_naming_the_key(tmp_path: Path) -> None:
    config = load_config(
        _config(tmp_path, "kind = 'webhook'\nsettings = { url = 'not a url', secret = 'x' }"),
        environ={},
    )
    with pytest.raises(ConfigError, match=r"backends\[0\]\.settings\.url"):
        await Hub(config).start()


async def test_inbound_adapter_cannot_serve_as_backend(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "kind = 'portal'"), environ={})
    with pytest.raises(ConfigError, match="does not deliver to back ends"):
        await Hub(config).start()
