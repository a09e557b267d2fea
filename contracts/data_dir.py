"""The data folder: where the hub, the contract registry and local mappings keep their files.

It lives at the bottom of the house because ``poststelle contracts ...`` and the message
inspector find registered standards there without the hub's configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_DATA_DIR", "process_alive", "resolve_data_dir"]

DEFAULT_DATA_DIR = Path(".poststelle")


def resolve_data_dir(cli_value: str | Path | None = None) -> Path:
    """``--data-dir`` wins over ``POSTSTELLE_DATA_DIR``, which wins over ``./.poststelle``."""
    chosen = cli_value or os.environ.get("POSTSTELLE_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def process_alive(pid: int) -> bool:
    """Whether the process a file in the data folder is named after still runs (files named
    ``*_<pid>.*`` outlive a killed process: nats-server's ports file, prometheus' value files)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True
