"""What every ``poststelle`` command group shares: the connection options and a client of
the hub's NATS (joined or started for the command)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from poststelle.routing.hub.config import HubConfig, load_config

__all__ = [
    "HubUnavailableError",
    "add_common_options",
    "config_from",
    "hub_client",
    "with_hub_client",
]


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML or YAML config file ($POSTSTELLE_CONFIG)")
    parser.add_argument(
        "--data-dir", help="data folder ($POSTSTELLE_DATA_DIR, default ./.poststelle)"
    )
    parser.add_argument("--nats-url", help="external NATS ($POSTSTELLE_NATS_URL); default embedded")


def config_from(
    args: argparse.Namespace, *, demo: bool | None = None, **overrides: Any
) -> HubConfig:
    return load_config(
        args.config,
        overrides={"data_dir": args.data_dir, "nats.url": args.nats_url, **overrides},
        demo=demo,
    )


class HubUnavailableError(RuntimeError):
    pass


@contextlib.asynccontextmanager
async def hub_client(args: argparse.Namespace) -> AsyncIterator[Any]:
    """A client of the hub's NATS: the configured one, or the embedded server of the data
    folder (joined when a hub runs there, started for the command otherwise)."""
    from poststelle.routing.hub.runtime import Hub

    hub = Hub(config_from(args))
    try:
        await hub.start(http=False, workers=False)
    except Exception as exc:
        await hub.stop()
        where = hub.config.nats.url or f"the embedded server of {hub.config.data_dir}"
        raise HubUnavailableError(
            f"cannot reach NATS at {where}: {exc}\n"
            "  next: check --nats-url / --data-dir (the hub's), start the hub with "
            "`poststelle run`, or run `poststelle doctor` with the same options"
        ) from exc
    try:
        yield hub
    finally:
        await hub.stop()


async def with_hub_client(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    try:
        async with hub_client(args) as hub:
            return await work(hub)
    except HubUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
