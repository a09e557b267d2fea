"""Locate and load the XTA 2.1.1 WSDL and schema set offline.

The project ships only what it wrote (its WSDL and a SOAP 1.2 envelope schema); the official XSDs
live in a folder the operator configures. Every schema location is resolved to a file on disk:
nothing is ever fetched over the network while a WSDL or schema is read.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lxml import etree

__all__ = [
    "PROJECT_WSDL",
    "SOAP12_ENVELOPE_XSD",
    "XTA_SCHEMA_FILES",
    "SchemaLocationError",
    "XtaSchemaLocator",
    "XtaSchemaValidator",
]

logger = logging.getLogger(__name__)

_CONTRACTS = Path(str(resources.files("poststelle.contracts"))) / "xta"
PROJECT_WSDL = _CONTRACTS / "xta.wsdl"
SOAP12_ENVELOPE_XSD = _CONTRACTS / "soap12-envelope.xsd"

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"

# The broken import in OSCI2_02.xsd (`schemaLocation=".xsd"`) as a resolver sees it: a bare ".xsd"
# file name relative to whichever folder the importing schema lives in.
_BROKEN_SOAP12_NAME = ".xsd"

# Files the official set must contain for our WSDL to load (checked early for a clear error).
XTA_SCHEMA_FILES = (
    "OSCI2_02.xsd",
    "OSCI_MessageMetaData_V2.02.xsd",
    "XTA-Webservice-Datentypen.xsd",
    "XTA-Webservice-Exceptions.xsd",
    "XTA-Webservice-Globale-Elemente.xsd",
    "ws-addr.xsd",
    "xoev-basisdatentypen.xsd",
)


class SchemaLocationError(LookupError):
    """A WSDL or schema location could not be mapped to a local file."""


class XtaSchemaLocator:
    """Map schema locations (as zeep or lxml resolve them) to local files.

    Rules, in order: the broken SOAP 1.2 envelope import goes to our envelope schema; files that
    exist where the location points (our WSDL folder, the XSD folder, an official WSDL's folder)
    are used as they are; a bare file name of the official set is looked up in ``xsd_dir`` (this is
    how our WSDL, which lives apart from the XSDs, reaches them). Anything else, and every remote
    URL, is refused.
    """

    def __init__(self, xsd_dir: Path) -> None:
        xsd_dir = Path(xsd_dir)
        if not xsd_dir.is_dir():
            raise SchemaLocationError(f"XTA schema folder not found: {xsd_dir}")
        missing = [name for name in XTA_SCHEMA_FILES if not (xsd_dir / name).is_file()]
        if missing:
            raise SchemaLocationError(
                f"XTA schema folder {xsd_dir} lacks {', '.join(missing)}: "
                "point it at the official XTA 2.1.1 schema set"
            )
        self.xsd_dir = xsd_dir.resolve()

    def resolve(self, location: str) -> Path:
        parsed = urlparse(location)
        # A scheme of one letter is a Windows drive, not a URL.
        if parsed.scheme not in ("", "file") and len(parsed.scheme) != 1:
            raise SchemaLocationError(f"refusing to fetch remote schema {location!r}")
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(location)
        if path.name == _BROKEN_SOAP12_NAME:
            return SOAP12_ENVELOPE_XSD
        if path.is_file():
            return path
        candidate = self.xsd_dir / path.name
        if candidate.is_file():
            return candidate
        raise SchemaLocationError(f"schema {location!r} is neither local nor in {self.xsd_dir}")

    def read(self, location: str) -> bytes:
        path = self.resolve(location)
        logger.debug("xta schema resolved", extra={"location": location, "path": str(path)})
        return path.read_bytes()


class _LxmlResolver(etree.Resolver):  # type: ignore[misc]  # lxml ships no types
    def __init__(self, locator: XtaSchemaLocator) -> None:
        super().__init__()
        self._locator = locator

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        return self.resolve_filename(str(self._locator.resolve(system_url)), context)


class XtaSchemaValidator:
    """Validate SOAP envelopes against the official XTA schemas (and our SOAP 1.2 envelope schema).

    The envelope itself is checked against the envelope schema; every header block and every body
    child is then checked as its own document, so an element the XTA schemas do not declare is an
    error rather than something a lax wildcard lets through.
    """

    # Header blocks outside the XTA schema set (none are expected; kept as an explicit list).
    _HEADER_NAMESPACES_CHECKED = (
        "http://www.w3.org/2005/08/addressing",
        "http://www.osci.eu/ws/2014/10/transport",
        "http://www.osci.eu/ws/2008/05/transport",
        "http://xoev.de/transport/xta/211",
    )

    def __init__(self, xsd_dir: Path) -> None:
        self._locator = XtaSchemaLocator(xsd_dir)
        self._schema = self._compile()

    def _compile(self) -> etree.XMLSchema:
        d = self._locator.xsd_dir
        imports = {
            NS_SOAP12: SOAP12_ENVELOPE_XSD,
            "http://www.w3.org/2005/08/addressing": d / "ws-addr.xsd",
            "http://www.osci.eu/ws/2014/10/transport": d / "OSCI_MessageMetaData_V2.02.xsd",
            "http://www.osci.eu/ws/2008/05/transport": d / "OSCI2_02.xsd",
        }
        xs = "http://www.w3.org/2001/XMLSchema"
        root = etree.Element(
            f"{{{xs}}}schema",
            targetNamespace="http://xoev.de/transport/xta/211",
            elementFormDefault="qualified",
            nsmap={"xs": xs},
        )
        for namespace, path in imports.items():
            etree.SubElement(
                root, f"{{{xs}}}import", namespace=namespace, schemaLocation=path.as_uri()
            )
        for name in ("XTA-Webservice-Globale-Elemente.xsd", "XTA-Webservice-Exceptions.xsd"):
            etree.SubElement(root, f"{{{xs}}}include", schemaLocation=(d / name).as_uri())
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        parser.resolvers.add(_LxmlResolver(self._locator))
        # Base URL inside the XSD folder: relative locations resolve next to the official files.
        doc = etree.fromstring(etree.tostring(root), parser, base_url=(d / "_wrapper.xsd").as_uri())
        return etree.XMLSchema(doc)

    def errors(self, envelope: bytes) -> list[str]:
        """Return the schema violations of a SOAP 1.2 envelope (empty when it is valid)."""
        parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=False)
        try:
            doc = etree.fromstring(envelope, parser)
        except etree.XMLSyntaxError as exc:
            return [f"not well-formed XML: {exc}"]
        if doc.tag != f"{{{NS_SOAP12}}}Envelope":
            return [f"root is {doc.tag}, not a SOAP 1.2 Envelope"]
        problems = self._check(doc, "Envelope")
        for container in ("Header", "Body"):
            node = doc.find(f"{{{NS_SOAP12}}}{container}")
            if node is None:
                continue
            for child in node:
                if not isinstance(child.tag, str):
                    continue  # comments, processing instructions
                ns = etree.QName(child).namespace
                if container == "Header" and ns not in self._HEADER_NAMESPACES_CHECKED:
                    problems.append(f"unexpected header block {child.tag}")
                    continue
                if ns == NS_SOAP12 and etree.QName(child).localname == "Fault":
                    problems += self._check_fault(child)
                    continue
                problems += self._check(child, f"{container}/{etree.QName(child).localname}")
        return problems

    def _check_fault(self, fault: etree._Element) -> list[str]:
        problems = self._check(fault, "Body/Fault")
        detail = fault.find(f"{{{NS_SOAP12}}}Detail")
        if detail is not None:
            for child in detail:
                if isinstance(child.tag, str):
                    problems += self._check(child, f"Fault/Detail/{etree.QName(child).localname}")
        return problems

    def _check(self, element: etree._Element, where: str) -> list[str]:
        # A copy becomes its own document root; namespace declarations travel with it.
        standalone = etree.fromstring(etree.tostring(element))
        if self._schema.validate(standalone):
            return []
        return [f"{where}: {e.message} (line {e.line})" for e in self._schema.error_log]
