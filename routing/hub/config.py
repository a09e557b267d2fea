"""Hub configuration: one TOML or YAML file plus ``POSTSTELLE_*`` environment variables.

Precedence, highest first: command-line flags, environment variables, the config file,
built-in defaults. A bad value stops start-up with a ``ConfigError`` naming the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    model_validator,
)

from poststelle.adapters._apikey import KEY_DIGEST_PREFIX, is_key_digest, key_digest
from poststelle.contracts.data_dir import DEFAULT_DATA_DIR, resolve_data_dir
from poststelle.contracts.intake import DEFAULT_MAX_ATTACHMENTS, DEFAULT_MAX_MESSAGE_BYTES
from poststelle.contracts.transient import RETRY_AFTER
from poststelle.routing.console import ConsoleConfig
from poststelle.routing.hub.intake import DEFAULT_MAX_BACKLOG, DEFAULT_MAX_IN_FLIGHT
from poststelle.routing.streams.claim_check import DEFAULT_CLAIM_CHECK_BYTES
from poststelle.routing.streams.topology import DELIVERED_TTL, STREAMS

__all__ = [
    "BackendConfig",
    "ConfigError",
    "FederationConfig",
    "HttpConfig",
    "HubConfig",
    "InboundConfig",
    "IntakeConfig",
    "NatsConfig",
    "StaticRoute",
    "TelemetryConfig",
    "config_file_given",
    "load_config",
]

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
# XTA's container limit; larger bodies are refused before anything is stored.
DEFAULT_MAX_BODY_BYTES = DEFAULT_MAX_MESSAGE_BYTES


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NatsConfig(_Section):
    url: str | None = Field(
        default=None, description="External NATS (comma-separated for a cluster); empty: embedded"
    )
    replicas: int = Field(default=1, ge=1, le=5, description="Stream replicas: 3 in a cluster")
    domain: str | None = Field(default=None, description="JetStream domain of this hub")
    credentials: Path | None = Field(
        default=None, description="A .creds file (user JWT and seed) of the operator/JWT mode"
    )
    nkey_seed: Path | None = Field(
        default=None,
        description="File with the hub user's nkey seed (nats-config writes <seeds>/hub.nk)",
    )
    connect_timeout: float = Field(default=5.0, gt=0)
    stream_max_bytes: dict[str, int] = Field(
        default_factory=dict,
        description="Stream name -> size limit in bytes (e.g. INBOX); a full stream refuses "
        "new messages (discard new) and the intake answers 503 with Retry-After",
    )
    delivered_ttl: float = Field(
        default=DELIVERED_TTL,
        gt=0,
        description="Seconds a delivered-ledger entry is kept: a repeat of an event within "
        "it is recognised and not delivered again (applies when the bucket is created)",
    )
    sync_interval: str | None = Field(
        default=None, description="Embedded server fsync interval, e.g. 'always' or '10s'"
    )
    leaf_listen_port: int | None = Field(
        default=None, ge=0, le=65535, description="Embedded server: accept peers' leaf nodes"
    )
    leaf_remotes: list[str] = Field(
        default_factory=list, description="Embedded server: peers' leaf URLs to connect to"
    )
    auth_file: Path | None = Field(
        default=None,
        description="Embedded server: the authorization block `poststelle nats-config` wrote "
        "(public keys only); clients, the hub (nkey_seed) and peers' leaf links then log in",
    )
    leaf_nkey_seed: Path | None = Field(
        default=None,
        description="Embedded server: file with the leaf-<state> seed the peer gave this hub; "
        "the leaf remotes sign with it (passed in the environment, never written to a file)",
    )

    @model_validator(mode="after")
    def _stream_limits_name_streams(self) -> NatsConfig:
        known = {spec.name for spec in STREAMS}
        for name, size in self.stream_max_bytes.items():
            if name not in known:
                raise ValueError(f"stream_max_bytes: no stream {name!r} (one of {sorted(known)})")
            if size < 1:
                raise ValueError(f"stream_max_bytes.{name}: give a positive size in bytes")
        return self

    @model_validator(mode="after")
    def _hub_can_log_in(self) -> NatsConfig:
        if self.auth_file is not None and self.nkey_seed is None and self.credentials is None:
            raise ValueError(
                "auth_file makes the embedded server ask every client to log in: set "
                "nkey_seed to the hub's seed (nats-config writes <seeds>/hub.nk)"
            )
        return self


class FederationConfig(_Section):
    """This hub's state and the peer states it exchanges cases with."""

    state: str | None = Field(default=None, description="State id, e.g. 'sh'; the JetStream domain")
    peers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_states(self) -> FederationConfig:
        from poststelle.routing.federation.states import STATE_PREFIXES

        for name in [self.state, *self.peers]:
            if name is not None and name not in STATE_PREFIXES:
                raise ValueError(f"unknown state {name!r}; use one of {sorted(STATE_PREFIXES)}")
        if self.peers and self.state is None:
            raise ValueError("peers need this hub's own state")
        return self


class HttpConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    max_attachments: int = Field(
        default=DEFAULT_MAX_ATTACHMENTS,
        ge=1,
        le=1000,
        description="Most file parts per POST /antrag (representation and attachments); "
        "their references travel in one NATS header",
    )
    callback_url: HttpUrl | None = Field(
        default=None, description="Portal status endpoint; case answers are POSTed there"
    )
    callback_secret: SecretStr | None = None
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Portal name -> API key (X-API-Key), best as its digest 'sha256:<hex>' "
        "(poststelle hash-key). Off by default; once any key is set (here or a back end's "
        "api_key), every endpoint but /healthz and the docs wants one",
    )
    tls_certfile: Path | None = Field(
        default=None, description="PEM certificate (chain) for HTTPS on the intake"
    )
    tls_keyfile: Path | None = Field(default=None, description="PEM private key for HTTPS")

    @model_validator(mode="after")
    def _tls_is_cert_and_key(self) -> HttpConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _portal_names_are_slugs(self) -> HttpConfig:
        # The name travels with each submission (a header) and into the case registry.
        for name in self.api_keys:
            if not re.fullmatch(SLUG, name):
                raise ValueError(
                    f"api_keys: portal name {name!r} must be a slug like 'portal-kiel'"
                )
        return self


class IntakeConfig(_Section):
    """Limits every inbound channel shares (HTTP, OZG-Cloud, XTA mailboxes)."""

    max_message_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        gt=0,
        description="Largest message taken; HTTP answers 413 above it, XTA quarantines",
    )
    claim_check_bytes: int = Field(
        default=DEFAULT_CLAIM_CHECK_BYTES,
        gt=0,
        description="Bodies above this go to the attachments object store; INBOX carries "
        "the reference (NATS' default max_payload is 1 MiB)",
    )
    max_in_flight: int = Field(
        default=DEFAULT_MAX_IN_FLIGHT,
        ge=1,
        description="Most HTTP intake requests read or stored at once; more are answered "
        "429 with Retry-After before their body is read (memory: at most this many bodies)",
    )
    max_backlog: int = Field(
        default=DEFAULT_MAX_BACKLOG,
        ge=1,
        description="Most arrivals waiting for the routing core (its INBOX consumer's "
        "pending count, sampled every 0.5 s); above it the intake answers 503 with "
        "Retry-After and XTA mailboxes are not fetched",
    )
    retry_after: int = Field(
        default=RETRY_AFTER,
        ge=1,
        le=3600,
        description="Seconds named in Retry-After when the intake refuses for load",
    )


class BackendConfig(_Section):
    """One back end of one tenant, served by the outbound adapter named ``kind``."""

    tenant: str = Field(pattern=SLUG)
    name: str = Field(pattern=SLUG)
    kind: str = Field(default="filedrop", description="Adapter name (entry point)")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Validated by the adapter's own settings model"
    )
    max_deliver: int = Field(default=10, ge=1)
    api_key: SecretStr | None = Field(
        default=None,
        description="The back end's key (X-API-Key) for replies to, and the state of, its "
        "cases; best as its digest 'sha256:<hex>' (poststelle hash-key)",
    )


class InboundConfig(_Section):
    """A source the hub reads from (an XTA mailbox, a spool folder, ...)."""

    name: str = Field(pattern=SLUG)
    kind: str = Field(description="Adapter name (entry point)")
    settings: dict[str, Any] = Field(default_factory=dict)


class StaticRoute(_Section):
    """A routing rule in its simplest form; the routing table supersedes it."""

    standard: str | None = None
    message_type: str | None = None
    tenant: str = Field(pattern=SLUG)
    backend: str = Field(pattern=SLUG)


class TelemetryConfig(_Section):
    """Traces (docs/observability.md). Without an endpoint the hub records none."""

    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces",
    )
    service_name: str = Field(default="poststelle", min_length=1)


class HubConfig(_Section):
    data_dir: Path = DEFAULT_DATA_DIR
    nats: NatsConfig = Field(default_factory=NatsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    intake: IntakeConfig = Field(default_factory=IntakeConfig)
    federation: FederationConfig = Field(default_factory=FederationConfig)
    # The web console at /console (docs/console.md): its accounts and session settings.
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    backends: list[BackendConfig] = Field(default_factory=list)
    inbound: list[InboundConfig] = Field(default_factory=list)
    routes: list[StaticRoute] = Field(default_factory=list)
    router_batch_size: int = Field(default=256, ge=1, le=10_000)

    @model_validator(mode="after")
    def _routes_name_declared_backends(self) -> HubConfig:
        declared = {(b.tenant, b.name) for b in self.backends}
        for index, route in enumerate(self.routes):
            if (route.tenant, route.backend) not in declared:
                raise ValueError(
                    f"routes[{index}] names back end {route.tenant}/{route.backend}, "
                    f"which is not declared under [[backends]]"
                )
        return self

    @model_validator(mode="after")
    def _api_keys_are_distinct(self) -> HubConfig:
        # A key names its holder; one key for two holders would make one the other.
        holders: dict[bytes, str] = {}
        named = [(f"http.api_keys.{n}", k) for n, k in self.http.api_keys.items()] + [
            (f"backends[{i}].api_key", b.api_key)
            for i, b in enumerate(self.backends)
            if b.api_key is not None
        ]
        for key_name, key in named:
            configured = key.get_secret_value()
            if configured.startswith(KEY_DIGEST_PREFIX) and not is_key_digest(configured):
                raise ValueError(
                    f"{key_name}: a digest is '{KEY_DIGEST_PREFIX}' and 64 lower-case hex "
                    "digits (poststelle hash-key prints one)"
                )
            if not configured:
                raise ValueError(f"{key_name} is empty")
            # By digest: the same key in clear text and as a digest is still one key.
            other = holders.setdefault(key_digest(configured), key_name)
            if other != key_name:
                raise ValueError(f"{key_name} is the same key as {other}; give each its own")
        return self

    def with_demo(self) -> HubConfig:
        """This configuration plus the demo layer (``HubConfig.demo``'s back end and
        routes), without repeating what it already declares."""
        demo = HubConfig.demo(self.data_dir)
        declared = {(b.tenant, b.name) for b in self.backends}
        backends = [b for b in demo.backends if (b.tenant, b.name) not in declared]
        routes = [r for r in demo.routes if r not in self.routes]
        # model_copy, not a dump and re-validation: a JSON dump masks the secrets.
        return self.model_copy(
            update={"backends": [*self.backends, *backends], "routes": [*self.routes, *routes]}
        )

    @classmethod
    def demo(cls, data_dir: Path) -> HubConfig:
        """What ``make run`` starts: every XBau 2.6 building application and every
        OZG-Cloud portal application (``POST /antrag``) to one authority."""
        return cls(
            data_dir=data_dir,
            backends=[BackendConfig(tenant="bauaufsicht-demo", name="filedrop")],
            routes=[
                StaticRoute(
                    standard="xbau",
                    message_type="baugenehmigung.antrag.0200",
                    tenant="bauaufsicht-demo",
                    backend="filedrop",
                ),
                StaticRoute(standard="ozg-portal", tenant="bauaufsicht-demo", backend="filedrop"),
            ],
        )


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:]}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a table of settings")
    return data


_ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "POSTSTELLE_NATS_URL": ("nats", "url"),
    "POSTSTELLE_NATS_REPLICAS": ("nats", "replicas"),
    "POSTSTELLE_NATS_CREDENTIALS": ("nats", "credentials"),
    "POSTSTELLE_NATS_NKEY_SEED": ("nats", "nkey_seed"),
    "POSTSTELLE_HTTP_HOST": ("http", "host"),
    "POSTSTELLE_HTTP_PORT": ("http", "port"),
    "POSTSTELLE_MAX_BODY_BYTES": ("http", "max_body_bytes"),
    "POSTSTELLE_MAX_ATTACHMENTS": ("http", "max_attachments"),
    "POSTSTELLE_HTTP_TLS_CERTFILE": ("http", "tls_certfile"),
    "POSTSTELLE_HTTP_TLS_KEYFILE": ("http", "tls_keyfile"),
    "POSTSTELLE_MAX_MESSAGE_BYTES": ("intake", "max_message_bytes"),
    "POSTSTELLE_MAX_IN_FLIGHT": ("intake", "max_in_flight"),
    "POSTSTELLE_MAX_BACKLOG": ("intake", "max_backlog"),
    "POSTSTELLE_OTLP_ENDPOINT": ("telemetry", "otlp_endpoint"),
}


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: expected a table of settings, got {type(node).__name__}")
        tree = node
    tree[path[-1]] = value


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {key}: {item['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    demo: bool | None = None,
) -> HubConfig:
    """Build the configuration. ``demo`` adds the demo layer of ``make run`` (back end and
    routes, ``HubConfig.with_demo``); by default it is on only when no file is given.

    ``overrides`` are dotted keys from command-line flags (``{"http.port": 9000}``).
    """
    env = os.environ if environ is None else environ
    file_path = path or (Path(env["POSTSTELLE_CONFIG"]) if env.get("POSTSTELLE_CONFIG") else None)
    raw: dict[str, Any] = _read_file(file_path) if file_path else {}
    for variable, key_path in _ENVIRONMENT.items():
        if env.get(variable):
            _set(raw, key_path, env[variable])
    data_dir_flag = (overrides or {}).get("data_dir")
    raw["data_dir"] = resolve_data_dir(
        data_dir_flag or env.get("POSTSTELLE_DATA_DIR") or raw.get("data_dir")
    )
    for dotted, value in (overrides or {}).items():
        if value is not None and dotted != "data_dir":
            _set(raw, tuple(dotted.split(".")), value)
    try:
        config = HubConfig.model_validate(raw)
    except ValidationError as exc:
        source = f" (from {file_path})" if file_path else ""
        raise ConfigError(_describe(exc) + source) from exc
    with_demo = not config_file_given(path, env) if demo is None else demo
    return config.with_demo() if with_demo else config


def config_file_given(path: Path | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a config file is in use (``--config`` or ``$POSTSTELLE_CONFIG``): the demo
    layer's default is its opposite."""
    env = os.environ if environ is None else environ
    return path is not None or bool(env.get("POSTSTELLE_CONFIG"))
