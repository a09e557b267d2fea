"""The worked example of "Write an adapter": a separate distribution, found by entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.testing import InboundAdapterContract, RecordingPublisher

EXAMPLE = Path(__file__).resolve().parents[1] / "example_adapter"
sys.path.insert(0, str(EXAMPLE))
from poststelle_spool import SpoolInbound, SpoolSettings  # noqa: E402


class TestSpoolAdapter(InboundAdapterContract):
    @pytest.fixture
    async def adapter(
        self, publisher: RecordingPublisher, tmp_path: Path
    ) -> AsyncIterator[SpoolInbound]:
        spool = SpoolInbound(
            name="altverfahren",
            settings=SpoolSettings(folder=tmp_path / "spool", poll_interval=0.02),
            context=AdapterContext(data_dir=tmp_path, publish=publisher),
        )
        await spool.start()
        yield spool
        await spool.stop()

    async def put(self, adapter: Any, raw: bytes) -> str:
        name = f"{len(list(adapter.settings.folder.iterdir()))}-{abs(hash(raw))}.xml"
        temporary = adapter.settings.folder / f".{name}.part"
        temporary.write_bytes(raw)
        temporary.rename(adapter.settings.folder / name)
        return name

    async def still_at_source(self, adapter: Any) -> set[str]:
        return {path.name for path in adapter.settings.folder.glob("*.xml")}


@pytest.mark.slow
def test_installed_package_registers_through_its_entry_point(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    probe = textwrap.dedent(
        """
        from poststelle.adapters.registry import AdapterRegistry, UnknownAdapterError
        registry = AdapterRegistry()
        print(registry.get("spool").__name__)
        try:
            registry.get("spoll")
        except UnknownAdapterError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "SpoolInbound"
    assert "did you mean 'spool'?" in lines[1]
