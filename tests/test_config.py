from __future__ import annotations

from pathlib import Path

import pytest

from poststelle.routing.hub.config import ConfigError, load_config


def test_defaults_are_the_demo(tmp_path: Path) -> None:
    config = load_config(environ={"POSTSTELLE_DATA_DIR": str(tmp_path)})
    assert config.data_dir == tmp_path.resolve()
    assert config.nats.url is None
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8080)
    assert config.http.max_body_bytes == 40 * 1024 * 1024
    assert [(b.tenant, b.name) for b in config.backends] == [("bauaufsicht-demo", "filedrop")]


def test_environment_overrides_file_and_flag_overrides_environment(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text('[nats]\nurl = "nats://file:4222"\n[http]\nport = 9000\n')
    env = {"POSTSTELLE_NATS_URL": "nats://env:4222", "POSTSTELLE_HTTP_PORT": "9100"}
    config = load_config(file, environ=env, overrides={"http.port": 9200, "data_dir": tmp_path})
    assert config.nats.url == "nats://env:4222"
    assert config.http.port == 9200


def test_yaml_file_is_read(tmp_path: Path) -> None:
    file = tmp_path / "hub.yaml"
    file.write_text(
        "backends:\n  - {tenant: stadt-kiel, name: akte}\n"
        "routes:\n  - {standard: xbau, tenant: stadt-kiel, backend: akte}\n"
    )
    config = load_config(file, environ={})
    assert config.routes[0].tenant == "stadt-kiel"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("[http]\nport = 70000\n", "http.port"),
        ("[http]\nprot = 1\n", "http.prot"),
        ("[nats]\nreplicas = 0\n", "nats.replicas"),
        ("[[backends]]\ntenant = 'Stadt Kiel'\nname = 'x'\n", "backends.0.tenant"),
        (
            "[[backends]]\ntenant = 'a'\nname = 'b'\n[[routes]]\ntenant = 'a'\nbackend = 'zzz'\n",
            "routes[0] names back end a/zzz",
        ),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, content: str, named: str) -> None:
    file = tmp_path / "hub.toml"
    file.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_config(file, environ={})
    assert named in str(raised.value)
    assert str(file) in str(raised.value)


def test_unparseable_file_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text("[http\n")
    with pytest.raises(ConfigError, match="not valid toml"):
        load_config(file, environ={})


def _file_with_backend(tmp_path: Path) -> Path:
    file = tmp_path / "hub.toml"
    file.write_text(
        "[http.api_keys]\nportal-kiel = 'a-long-random-key'\n"
        "[[backends]]\ntenant = 'stadt-kiel'\nname = 'akte'\n"
        "[[routes]]\nstandard = 'xdomea'\ntenant = 'stadt-kiel'\nbackend = 'akte'\n"
    )
    return file


def test_a_config_file_has_no_demo_unless_asked(tmp_path: Path) -> None:
    file = _file_with_backend(tmp_path)
    plain = load_config(file, environ={})
    assert [(b.tenant, b.name) for b in plain.backends] == [("stadt-kiel", "akte")]
    assert [r.standard for r in plain.routes] == ["xdomea"]

    layered = load_config(file, environ={}, demo=True)
    assert [(b.tenant, b.name) for b in layered.backends] == [
        ("stadt-kiel", "akte"),
        ("bauaufsicht-demo", "filedrop"),
    ]
    assert [r.standard for r in layered.routes] == ["xdomea", "xbau", "ozg-portal"]
    # The layer is added without a round trip through JSON, which would mask secrets.
    assert layered.http.api_keys["portal-kiel"].get_secret_value() == "a-long-random-key"
    assert layered.with_demo() == layered


def test_the_demo_can_be_turned_off_without_a_config_file(tmp_path: Path) -> None:
    config = load_config(environ={"POSTSTELLE_DATA_DIR": str(tmp_path)}, demo=False)
    assert (config.backends, config.routes) == ([], [])
