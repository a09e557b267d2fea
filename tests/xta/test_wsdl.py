"""The project's XTA WSDL against the published XTA 2.1.1 WSDL, and offline schema loading."""

# zeep is only partly typed; the calls below are checked at run time.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from lxml import etree

from poststelle.adapters.xta._schemas import (
    PROJECT_WSDL,
    SchemaLocationError,
    XtaSchemaLocator,
)
from poststelle.adapters.xta._transport import XtaTransport

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
WSAM = "http://www.w3.org/2007/05/addressing/metadata"


def _qname(element: etree._Element, prefixed: str) -> str:
    prefix, _, local = prefixed.rpartition(":")
    return f"{{{element.nsmap[prefix or None]}}}{local}"


def describe(wsdl_path: Path) -> dict[str, Any]:
    """Everything a client relies on, as plain data: services, ports, bindings, operations,
    actions, input/output/fault elements and SOAP headers."""
    root = etree.parse(str(wsdl_path)).getroot()
    ns = {"w": WSDL, "s": SOAP12}
    messages = {
        m.get("name"): [
            (p.get("name"), _qname(p, p.get("element"))) for p in m.findall("w:part", ns)
        ]
        for m in root.findall("w:message", ns)
    }

    def message(el: etree._Element) -> list[tuple[str, str]]:
        return messages[_qname(el, el.get("message")).split("}")[1]]

    port_types: dict[str, Any] = {}
    for pt in root.findall("w:portType", ns):
        ops: dict[str, Any] = {}
        for op in pt.findall("w:operation", ns):
            inp, out = op.find("w:input", ns), op.find("w:output", ns)
            ops[op.get("name")] = {
                "input": (message(inp), inp.get(f"{{{WSAM}}}Action")),
                "output": (message(out), out.get(f"{{{WSAM}}}Action")),
                "faults": sorted(
                    (f.get("name"), tuple(message(f)), f.get(f"{{{WSAM}}}Action"))
                    for f in op.findall("w:fault", ns)
                ),
            }
        port_types[pt.get("name")] = ops

    bindings: dict[str, Any] = {}
    for b in root.findall("w:binding", ns):
        assert b.find("s:binding", ns) is not None, "binding must be SOAP 1.2"
        ops = {}
        for op in b.findall("w:operation", ns):
            headers = {}
            for direction in ("input", "output"):
                d = op.find(f"w:{direction}", ns)
                headers[direction] = sorted(
                    (_qname(h, h.get("message")), h.get("part")) for h in d.findall("s:header", ns)
                )
            ops[op.get("name")] = {
                "soapAction": op.find("s:operation", ns).get("soapAction"),
                "headers": headers,
                "faults": sorted(f.get("name") for f in op.findall("w:fault", ns)),
            }
        bindings[b.get("name")] = {"type": _qname(b, b.get("type")), "operations": ops}

    services = {
        s.get("name"): {p.get("name"): _qname(p, p.get("binding")) for p in s.findall("w:port", ns)}
        for s in root.findall("w:service", ns)
    }
    return {
        "targetNamespace": root.get("targetNamespace"),
        "portTypes": port_types,
        "bindings": bindings,
        "services": services,
    }


@pytest.fixture(scope="module")
def xta_dir(corpus_dir: Path) -> Path:
    return corpus_dir / "xta-2.1.1"


def test_project_wsdl_matches_the_published_one(xta_dir: Path) -> None:
    ours, theirs = describe(PROJECT_WSDL), describe(xta_dir / "XTA.wsdl")
    assert ours["targetNamespace"] == "http://xoev.de/transport/xta/211"
    assert set(ours["services"]["XTAService"]) == {"ManagementPort", "SendXtaPort", "MsgBoxPort"}
    # Compared piece by piece so that a failure names the operation that differs.
    for name, ops in theirs["portTypes"].items():
        assert set(ours["portTypes"][name]) == set(ops), name
        for op, spec in ops.items():
            assert ours["portTypes"][name][op] == spec, f"{name}.{op}"
    for name, binding in theirs["bindings"].items():
        assert ours["bindings"][name]["type"] == binding["type"], name
        for op, spec in binding["operations"].items():
            assert ours["bindings"][name]["operations"][op] == spec, f"{name}.{op}"
    assert ours == theirs


def test_comparison_notices_a_changed_action(xta_dir: Path, tmp_path: Path) -> None:
    # The comparison must be able to fail: alter one action in a copy of our WSDL.
    changed = tmp_path / "xta.wsdl"
    text = PROJECT_WSDL.read_text(encoding="utf-8")
    changed.write_text(
        text.replace('soapAction="http://www.xta.de/XTA/CreateMessageID"', 'soapAction="urn:x"'),
        encoding="utf-8",
    )
    assert describe(changed) != describe(xta_dir / "XTA.wsdl")


@pytest.mark.parametrize("which", ["project", "official"])
def test_zeep_loads_wsdl_offline_with_soap12_bindings(xta_dir: Path, which: str) -> None:
    wsdl = PROJECT_WSDL if which == "project" else xta_dir / "XTA.wsdl"
    client = zeep.Client(
        str(wsdl), transport=XtaTransport(XtaSchemaLocator(xta_dir), requests.Session(), 5)
    )
    ports = client.wsdl.services["XTAService"].ports
    assert {p: type(ports[p].binding).__name__ for p in ports} == {
        "MsgBoxPort": "Soap12Binding",
        "SendXtaPort": "Soap12Binding",
        "ManagementPort": "Soap12Binding",
    }
    assert set(ports["MsgBoxPort"].binding._operations) == {
        "getMessage",
        "getStatusList",
        "getNextMessage",
        "getNextStatusList",
        "close",
    }


def test_official_set_does_not_load_without_the_envelope_fix(xta_dir: Path) -> None:
    # The defect our locator repairs: OSCI2_02.xsd imports the SOAP 1.2 envelope from ".xsd".
    with pytest.raises(Exception, match=r"\.xsd"):
        zeep.Client(str(xta_dir / "XTA.wsdl"), transport=zeep.Transport())
    locator = XtaSchemaLocator(xta_dir)
    assert locator.resolve(str(xta_dir / ".xsd")).name == "soap12-envelope.xsd"


def test_locator_refuses_remote_and_unknown_locations(xta_dir: Path, tmp_path: Path) -> None:
    locator = XtaSchemaLocator(xta_dir)
    with pytest.raises(SchemaLocationError, match="remote"):
        locator.resolve("https://example.org/ws-addr.xsd")
    with pytest.raises(SchemaLocationError, match="neither local"):
        locator.resolve(str(tmp_path / "unknown.xsd"))
    with pytest.raises(SchemaLocationError, match="lacks"):
        XtaSchemaLocator(tmp_path)
