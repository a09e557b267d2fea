"""``python -m chaos [--short] [--only NAME ...] [--keep]``: run the fault scenarios one
after another, print one balance line each, exit 1 when a case was lost or a back end saw a
case nobody submitted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from chaos.scenarios import SCENARIOS, profile

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="small load, short faults (CI)")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run only this scenario"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scenarios' folders")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    setup = profile(args.short)
    names = args.only or list(SCENARIOS)
    root = Path(tempfile.mkdtemp(prefix="poststelle-chaos-"))
    failed = 0
    began = time.monotonic()
    print(f"chaos {'short' if args.short else 'full'}: {len(names)} scenarios in {root}")
    for name in names:
        try:
            balance = asyncio.run(SCENARIOS[name](root / name, setup))
        except Exception:
            failed += 1
            print(f"{name:<22} ERROR", flush=True)
            traceback.print_exc()
            continue
        print(balance.line(), flush=True)
        failed += 0 if balance.ok else 1
    print(f"chaos: {len(names) - failed}/{len(names)} passed in {time.monotonic() - began:.0f}s")
    if not args.keep and not failed:
        shutil.rmtree(root, ignore_errors=True)
    elif failed:
        print(f"folders kept for inspection: {root}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
