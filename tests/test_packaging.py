"""One distribution, everything under ``poststelle.*``, data files inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("adapters", "routing", "mappings", "contracts")


@pytest.mark.parametrize("folder", FOLDERS)
def test_bare_import_is_refused_even_from_the_checkout(folder: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {folder}"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"poststelle.{folder}" in result.stderr


@pytest.mark.parametrize("folder", FOLDERS)
def test_namespaced_import_works_anywhere(folder: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import poststelle.{folder} as m; print(m.__name__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"poststelle.{folder}"


@pytest.mark.slow
def test_wheel_carries_code_and_data_under_the_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("poststelle-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("poststelle-")}
    assert top_level == {"poststelle"}, (
        f"only the poststelle namespace may be installed: {top_level}"
    )
    # Every module of every room: a subpackage missing from pyproject's list is left out.
    for folder in FOLDERS:
        for module in (ROOT / folder).rglob("*.py"):
            assert f"poststelle/{module.relative_to(ROOT).as_posix()}" in names
    assert "poststelle/contracts/case-event.schema.json" in names
    assert "poststelle/contracts/standards/xbau-2.6.yaml" in names
    assert "poststelle/contracts/xta/xta.wsdl" in names
    assert "poststelle/mappings/xbau-2.6/baugenehmigung.antrag.0200.yaml" in names
    assert "poststelle/mappings/_headers/xoev-g2g.yaml" in names
    assert "poststelle/mappings/_headers/xoev-g2g-qualified.yaml" in names
    # The console's pages and its vendored script, with the script's licence.
    for page in (ROOT / "routing" / "console" / "templates").glob("*.html"):
        assert f"poststelle/routing/console/templates/{page.name}" in names
    for static in ("htmx.min.js", "htmx.LICENSE", "console.css", "console.js"):
        assert f"poststelle/routing/console/static/{static}" in names
    assert not any(name.startswith("poststelle/tests") for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "poststelle = poststelle.routing.cli.main:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
