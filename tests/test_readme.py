"""The README's examples are valid: its configuration loads, its routing table imports."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from poststelle.routing.config import load_config
from poststelle.routing.resolver import RouteQuery, compile_table
from poststelle.routing.table_io import load_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _block(language: str, starting: str) -> str:
    for body in re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL):
        if body.startswith(starting):
            return str(body)
    raise AssertionError(f"no ```{language} block starting with {starting!r} in the README")


def test_configuration_example_loads(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text(_block("toml", "[nats]"))
    config = load_config(file, environ={})
    assert config.federation.state == "sh"
    assert [b.kind for b in config.backends] == ["filedrop"]
    assert config.inbound[0].kind == "xta"


def test_routing_table_example_imports(tmp_path: Path) -> None:
    file = tmp_path / "routes.yaml"
    file.write_text(_block("yaml", "tenants:"))
    resolver = compile_table(load_table(file))
    antrag = RouteQuery(
        ars="010020000000",
        standard="xbau",
        message_type="baugenehmigung.antrag.0200",
        at=date(2027, 2, 1),
    )
    assert (resolver.resolve(antrag).tenant, resolver.resolve(antrag).backend) == ("kiel", "dms")
    leistung = RouteQuery(ars="010020000000", leistung="99066005001000", at=date(2026, 12, 1))
    assert resolver.resolve(leistung).backend == "bauamt"
    elsewhere = resolver.resolve(RouteQuery(ars="010550000000", at=date(2026, 12, 1)))
    assert (elsewhere.tenant, elsewhere.backend) == ("land-sh", "poststelle")
    not_yet = RouteQuery(
        ars="010020000000",
        standard="xbau",
        message_type="baugenehmigung.antrag.0200",
        at=date(2026, 12, 1),
    )
    assert resolver.resolve(not_yet).tenant == "land-sh"
