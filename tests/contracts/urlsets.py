"""Schema sets that import by absolute URL, built at test time from the corpus' XBau 2.6 set.

The published XBau set imports its base schemas by relative path; many XÖV sets (XWasser, ...)
import them by URL instead. Rewriting two of XBau's imports to URLs, and moving the files they
name into ``base/``, gives such a set without committing a copy of the corpus.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from poststelle.contracts.registry import BUILTIN_REGISTRY_DIR

from .conftest import EXAMPLE_0200

CODE_URL = "http://xoev.de/schemata/code/1_0/xoev-code.xsd"
XLINK_URL = "http://www.w3.org/1999/xlink.xsd"
# the URL -> file map `contracts init` writes into a descriptor
CATALOG = {CODE_URL: "base/xoev-code.xsd", XLINK_URL: "xlink.xsd"}

_OASIS_ROOT = """<?xml version="1.0"?>
<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">
  <uri name="{code}" uri="base/xoev-code.xsd"/>
  <nextCatalog catalog="base/catalog.xml"/>
</catalog>
"""
_OASIS_CHAINED = """<?xml version="1.0"?>
<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">
  <group>
    <rewriteURI uriStartString="http://www.w3.org/1999/" rewritePrefix="../"/>
  </group>
</catalog>
"""


def url_importing_xbau(corpus_dir: Path, target: Path) -> Path:
    """XBau 2.6 whose imports of xoev-code.xsd and xlink.xsd are by URL (xoev-code.xsd moved
    to ``base/``); no catalog yet."""
    shutil.copytree(corpus_dir / "xbau-2.6" / "xsd", target)
    for xsd in target.glob("*.xsd"):
        text = xsd.read_bytes()
        changed = text.replace(
            b'schemaLocation="xoev-code.xsd"', f'schemaLocation="{CODE_URL}"'.encode()
        ).replace(b'schemaLocation="xlink.xsd"', f'schemaLocation="{XLINK_URL}"'.encode())
        if changed != text:
            xsd.write_bytes(changed)
    (target / "base").mkdir()  # where a URL points need not be where a relative path would
    (target / "xoev-code.xsd").rename(target / "base" / "xoev-code.xsd")
    return target


def with_descriptor_catalog(folder: Path) -> Path:
    """The shipped XBau descriptor plus a ``catalog`` key, as ``contracts init`` writes it."""
    shipped = (BUILTIN_REGISTRY_DIR / "xbau-2.6.yaml").read_text(encoding="utf-8")
    lines = "".join(f'  "{url}": {path}\n' for url, path in CATALOG.items())
    (folder / "poststelle-contract.yaml").write_text(
        f"{shipped}\ncatalog:\n{lines}", encoding="utf-8"
    )
    return folder


def with_oasis_catalog(folder: Path) -> Path:
    """An OASIS catalog.xml at the root (uri + nextCatalog), a chained one in ``base/`` whose
    rewrite points back to the root."""
    (folder / "catalog.xml").write_text(_OASIS_ROOT.format(code=CODE_URL), encoding="utf-8")
    (folder / "base" / "catalog.xml").write_text(_OASIS_CHAINED, encoding="utf-8")
    return folder


def invalid_0200() -> bytes:
    """The example application without its mandatory referenzAntragsservice."""
    raw = EXAMPLE_0200.read_bytes()
    start = raw.index(b"<referenzAntragsservice")
    end = raw.index(b"</referenzAntragsservice>") + len(b"</referenzAntragsservice>")
    return raw[:start] + raw[end:]
