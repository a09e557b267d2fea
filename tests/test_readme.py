"""The README's examples are valid: its configuration loads, its XTA mailbox settings
validate, its routing table imports."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from poststelle.adapters.xta._config import XtaConnectionSettings
from poststelle.adapters.xta.adapter import XtaMailboxSettings
from poststelle.routing.hub.config import load_config
from poststelle.routing.table.files import load_table
from poststelle.routing.table.resolver import RouteQuery, compile_table

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


def test_xta_mailbox_example_is_valid_and_complete(tmp_path: Path, corpus_dir: Path) -> None:
    block = _block("toml", '[[inbound]]\nname = "xta-land"')
    # Every connection and mailbox setting the adapter knows is documented in the example.
    documented = set(re.findall(r"^(\w+) = ", block, re.MULTILINE))
    known = set(XtaConnectionSettings.model_fields) | set(XtaMailboxSettings.model_fields)
    assert known - {"connection"} <= documented, "README lacks XTA settings"
    # The example's files, made to exist here: the official WSDL from the corpus, a
    # certificate, key and CA bundle of our own.
    for name in ("xta.crt", "xta.key", "xta-ca.pem"):
        (tmp_path / name).write_text("placeholder\n")
    file = tmp_path / "hub.toml"
    file.write_text(
        block.replace("/srv/xta-2.1.1", str(corpus_dir / "xta-2.1.1")).replace(
            "/etc/poststelle", str(tmp_path)
        )
    )
    [entry] = load_config(file, environ={}).inbound
    assert entry.kind == "xta"
    settings = XtaMailboxSettings.model_validate(entry.settings)
    connection = settings.connection
    assert connection.url_for("MsgBoxPort") == "https://xta.example.de/msgbox"
    assert connection.url_for("SendXtaPort") == "https://xta.example.de/send"
    assert connection.url_for("ManagementPort") == "https://xta.example.de/mgmt"
    assert connection.wsdl.name == "XTA.wsdl"
    assert [r.identifier for r in settings.readers] == ["dvdv:010020000000", "dvdv:010020000001"]


def test_readme_says_to_register_schema_sets_for_a_config_file() -> None:
    assert re.search(r"With `--config`.*?`contracts add` first", README, re.DOTALL)
