"""Run one command family of the ``poststelle`` CLI in-process, as ``main`` would."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["parse", "run"]

Register = Callable[[Any], None]


def parse(register: Register, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by a ``poststelle`` parser that knows only what ``register`` adds."""
    parser = argparse.ArgumentParser(prog="poststelle")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def run(register: Register, argv: list[str]) -> int:
    """The exit code of the command ``argv`` names."""
    args = parse(register, argv)
    result: int = args.func(args)
    return result
