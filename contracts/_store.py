"""The schema store under ``<data-dir>/schemas/``: XSD sets an operator registered.

The project ships no third-party schema: operators download the official sets (XRepository,
the standard's own site) and run ``poststelle contracts add PATH``. Each registered set is
copied into its own folder with a manifest (``poststelle-set.yaml``) naming the standard
versions it serves and where their entry points lie.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from lxml import etree

from ._catalog import SchemaCatalog
from ._compile import SchemaUnusable, check_entry_points
from ._contract import Contract, ContractError, contract_from_mapping
from ._schematron import compile_schematron

__all__ = [
    "DESCRIPTOR_NAME",
    "MANIFEST_NAME",
    "SchemaSet",
    "SchemaStore",
    "ServedContract",
    "StepCallback",
    "served_catalog",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "poststelle-set.yaml"
# An operator adding a standard the project does not know puts this next to the XSDs.
DESCRIPTOR_NAME = "poststelle-contract.yaml"
_KEPT_SUFFIXES = (".xsd", ".xml", ".yaml", ".yml", ".sch", ".wsdl")
_MAX_ZIP_BYTES = 200 * 1024 * 1024
_XS = "{http://www.w3.org/2001/XMLSchema}"
# (step, done, total): how far ``add`` is, for the command line's progress bar.
StepCallback = Callable[[str, int, int], None]
_COPYING = "copying schema files"
_COMPILING = "compiling entry points"


def _no_progress(step: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class ServedContract:
    standard: str
    version: str
    entry_points: dict[str, str]  # entry file name -> path relative to the set folder
    # URL -> file from the set's own descriptor; the contract's catalog comes first at use
    catalog: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.standard}-{self.version}"


def served_catalog(folder: Path, contract: Contract, served: ServedContract) -> SchemaCatalog:
    """How a set resolves a contract's URL imports: the contract's ``catalog`` entries, then
    those of the set's own descriptor (it describes its own layout), then its catalog.xml."""
    return SchemaCatalog.for_set(folder, {**contract.catalog, **served.catalog})


@dataclass(frozen=True)
class SchemaSet:
    id: str
    folder: Path
    source: str
    added: str
    sha256: str
    serves: tuple[ServedContract, ...]
    contracts: tuple[Contract, ...]  # descriptors shipped with the set (standards we don't ship)
    replaced: tuple[str, ...] = ()  # ids of the sets this one replaced when it was added

    @property
    def keys(self) -> tuple[str, ...]:
        """The ``standard-version`` keys this set serves."""
        return tuple(s.key for s in self.serves)


def _schema_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _target_namespaces(folder: Path) -> dict[Path, str]:
    found: dict[Path, str] = {}
    for path in sorted(folder.rglob("*.xsd")):
        try:
            root = etree.parse(str(path), _schema_parser()).getroot()
        except etree.XMLSyntaxError as exc:
            raise ContractError(f"{path}: not a well-formed schema: {exc}") from exc
        if root.tag != f"{_XS}schema":
            continue
        found[path] = root.get("targetNamespace", "")
    return found


def _digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha.update(path.relative_to(folder).as_posix().encode() + b"\0")
        sha.update(path.read_bytes())
    return sha.hexdigest()


def _extract_zip(archive: Path, target: Path, progress: StepCallback = _no_progress) -> None:
    with zipfile.ZipFile(archive) as zf:
        total = 0
        members = zf.infolist()
        for done, info in enumerate(members, 1):
            progress(_COPYING, done, len(members))
            name = PurePosixPath(info.filename)
            if info.is_dir() or not name.name.lower().endswith(_KEPT_SUFFIXES):
                continue
            # Refuse zip-slip: absolute names and '..' would write outside the store.
            if name.is_absolute() or ".." in name.parts:
                raise ContractError(f"{archive}: unsafe member name {info.filename!r}")
            total += info.file_size
            if total > _MAX_ZIP_BYTES:
                raise ContractError(f"{archive}: more than {_MAX_ZIP_BYTES} bytes of schemas")
            destination = target.joinpath(*name.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, destination.open("wb") as dst:
                shutil.copyfileobj(src, dst)


def _copy_tree(
    source: Path, target: Path, skip: Path, progress: StepCallback = _no_progress
) -> None:
    paths = list(source.rglob("*"))
    for done, path in enumerate(paths, 1):
        progress(_COPYING, done, len(paths))
        if path.is_relative_to(skip):  # the store itself may lie inside the folder added
            continue
        if path.is_file() and path.name.lower().endswith(_KEPT_SUFFIXES):
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc


class SchemaStore:
    """Registered XSD sets under one folder (normally ``<data-dir>/schemas``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def sets(self) -> list[SchemaSet]:
        if not self.root.is_dir():
            return []
        found = []
        for manifest in sorted(self.root.glob(f"*/{MANIFEST_NAME}")):
            found.append(self._read_manifest(manifest))
        return found

    def _read_manifest(self, manifest: Path) -> SchemaSet:
        data = _load_yaml(manifest) or {}
        folder = manifest.parent
        contracts = tuple(
            contract_from_mapping(entry, f"{manifest}#contracts[{i}]")
            for i, entry in enumerate(data.get("contracts") or [])
        )
        serves = tuple(
            ServedContract(
                str(s["standard"]),
                str(s["version"]),
                dict(s["entry_points"]),
                dict(s.get("catalog") or {}),
            )
            for s in data.get("serves") or []
        )
        return SchemaSet(
            id=folder.name,
            folder=folder,
            source=str(data.get("source", "")),
            added=str(data.get("added", "")),
            sha256=str(data.get("sha256", "")),
            serves=serves,
            contracts=contracts,
        )

    def add(
        self,
        path: Path,
        known: Sequence[Contract],
        *,
        descriptor: Path | None = None,
        replace: bool = False,
        progress: StepCallback | None = None,
    ) -> SchemaSet:
        """Copy a folder or zip of XSDs into the store and record which contracts it serves.

        The set serves every known contract one of whose namespaces some schema in it targets;
        a descriptor (``--descriptor`` or ``poststelle-contract.yaml`` in the set) declares a
        contract the project does not ship. Every entry point must compile (imports by URL
        resolved through the catalog), and a version another set already serves is only
        taken over with ``replace``.
        """
        path = path.expanduser().resolve()
        if not path.exists():
            raise ContractError(f"{path}: no such file or folder")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".adding-", dir=self.root))
        try:
            report = progress or _no_progress
            if path.is_dir():
                _copy_tree(path, staging, self.root.resolve(), report)
            elif zipfile.is_zipfile(path):
                _extract_zip(path, staging, report)
            else:
                raise ContractError(f"{path}: neither a folder nor a zip archive")
            descriptors = self._descriptors(staging, descriptor)
            namespaces = _target_namespaces(staging)
            if not namespaces:
                raise ContractError(f"{path}: contains no XML Schema (.xsd) file")
            candidates = [*known, *descriptors]
            serves = self._match(staging, namespaces, candidates, descriptors)
            if not serves:
                seen = sorted({ns for ns in namespaces.values() if ns})
                raise ContractError(
                    f"{path}: no registered standard uses any of the target namespaces "
                    f"{seen}; add a descriptor ({DESCRIPTOR_NAME}) for a new standard"
                )
            _check_compiles(path, staging, serves, candidates, report)
            digest = _digest(staging)
            set_id = f"{serves[0].standard}-{serves[0].version}-{digest[:10]}"
            replaced = self._replaced(set_id, serves, replace=replace)
            manifest = {
                "source": str(path),
                "added": datetime.now(UTC).isoformat(timespec="seconds"),
                "sha256": digest,
                "serves": [
                    {
                        "standard": s.standard,
                        "version": s.version,
                        "entry_points": s.entry_points,
                        **({"catalog": s.catalog} if s.catalog else {}),
                    }
                    for s in serves
                ],
                "contracts": [_descriptor_dict(d) for d in descriptors],
            }
            (staging / MANIFEST_NAME).write_text(
                yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
            final = self.root / set_id
            if final.exists():  # the same content again: replace, stay idempotent
                shutil.rmtree(final)
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        for old in replaced:
            shutil.rmtree(old.folder)
        log.info(
            "schema set added id=%s source=%s serves=%s replaced=%s",
            set_id,
            path,
            ",".join(s.key for s in serves),
            ",".join(old.id for old in replaced) or "-",
        )
        added = self._read_manifest(final / MANIFEST_NAME)
        return dataclasses.replace(added, replaced=tuple(old.id for old in replaced))

    def _replaced(
        self, set_id: str, serves: Sequence[ServedContract], *, replace: bool
    ) -> list[SchemaSet]:
        """The sets a new one takes over from; refuses a silent second set for a version."""
        keys = {s.key for s in serves}
        clashing = [old for old in self.sets() if old.id != set_id and keys & set(old.keys)]
        for old in clashing:
            overlap = ", ".join(sorted(keys & set(old.keys)))
            if not replace:
                raise ContractError(
                    f"{overlap} is already served by schema set {old.id} (from {old.source}); "
                    f"add with --replace to use the new set instead"
                )
            uncovered = sorted(set(old.keys) - keys)
            if uncovered:
                raise ContractError(
                    f"cannot replace schema set {old.id}: it also serves "
                    f"{', '.join(uncovered)}, which the new set does not; "
                    f"remove it first (poststelle contracts remove {old.id})"
                )
        return clashing

    def remove(self, name: str) -> list[SchemaSet]:
        """Remove the set with this id, or the one(s) serving this ``standard-version`` key."""
        sets = self.sets()
        chosen = [s for s in sets if s.id == name] or [s for s in sets if name in s.keys]
        if not chosen:
            known = [s.id for s in sets] + [k for s in sets for k in s.keys]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listed = ", ".join(known) or "none"
            raise ContractError(f"no schema set {name!r} (registered: {listed}){hint}")
        for schema_set in chosen:
            shutil.rmtree(schema_set.folder)
            log.info("schema set removed id=%s serves=%s", schema_set.id, ",".join(schema_set.keys))
        return chosen

    def _descriptors(self, staging: Path, descriptor: Path | None) -> list[Contract]:
        files = [descriptor] if descriptor else sorted(staging.rglob(DESCRIPTOR_NAME))
        contracts = []
        for file in files:
            contracts.append(contract_from_mapping(_load_yaml(file), str(file)))
        return contracts

    @staticmethod
    def _match(
        staging: Path,
        namespaces: dict[Path, str],
        candidates: Iterable[Contract],
        descriptors: Sequence[Contract],
    ) -> list[ServedContract]:
        own_catalogs = {d.key: dict(d.catalog) for d in descriptors if d.catalog}
        served = []
        seen: set[str] = set()
        for contract in candidates:
            if contract.key in seen or not set(contract.namespaces) & set(namespaces.values()):
                continue
            entries: dict[str, str] = {}
            for entry in contract.entry_points:
                hits = [
                    p
                    for p, ns in namespaces.items()
                    if p.name == entry and ns in contract.namespaces
                ]
                if len(hits) == 1:
                    entries[entry] = hits[0].relative_to(staging).as_posix()
                elif len(hits) > 1:
                    raise ContractError(
                        f"{contract.key}: entry point {entry} found {len(hits)} times"
                    )
            if entries:
                seen.add(contract.key)
                missing = sorted(set(contract.entry_points) - set(entries))
                if missing:
                    log.warning(
                        "schema set lacks entry points contract=%s missing=%s",
                        contract.key,
                        ",".join(missing),
                    )
                served.append(
                    ServedContract(
                        contract.standard,
                        contract.version,
                        entries,
                        own_catalogs.get(contract.key, {}),
                    )
                )
        return served


def _check_compiles(
    source: Path,
    staging: Path,
    serves: Sequence[ServedContract],
    candidates: Sequence[Contract],
    progress: StepCallback = _no_progress,
) -> None:
    """Refuse a set any of whose entry points does not compile, naming every cause at once."""
    contracts: dict[str, Contract] = {}
    for contract in candidates:  # the first one wins, as in _match
        contracts.setdefault(contract.key, contract)
    problems = []
    for done, served in enumerate(serves):
        progress(_COMPILING, done, len(serves))
        contract = contracts[served.key]
        catalog = served_catalog(staging, contract, served)
        for problem in check_entry_points(staging, served.entry_points, catalog):
            problems.append(f"{contract.key}: {problem}")
        problems.extend(f"{contract.key}: {p}" for p in _schematron_problems(staging, contract))
    progress(_COMPILING, len(serves), len(serves))
    if problems:
        # Messages name files in the staging folder; the operator knows the folder added.
        text = "; ".join(problems).replace(str(staging.resolve()), str(source))
        raise ContractError(f"{source}: refused, its schemas are not usable: {text}")


def _schematron_problems(staging: Path, contract: Contract) -> list[str]:
    """Why the contract's Schematron files in the set do not compile (a set without them is
    fine: its messages are checked up to the XSD)."""
    problems = []
    for name in contract.schematron:
        for path in sorted(staging.rglob("*.sch")):
            if f"/{path.relative_to(staging).as_posix()}".endswith(f"/{name}"):
                try:
                    compile_schematron(path)
                except SchemaUnusable as exc:
                    problems.append(str(exc))
    return problems


def _descriptor_dict(contract: Contract) -> dict[str, Any]:
    return {
        "standard": contract.standard,
        "version": contract.version,
        "title": contract.title,
        "namespaces": list(contract.namespaces),
        "namespace_pattern": contract.namespace_pattern.pattern
        if contract.namespace_pattern
        else None,
        "header": contract.header,
        "strict": {"xsd_version": contract.strict_xsd_version},
        "entry_points": {
            k: {"namespace": contract.entry_namespaces[k], "messages": list(v)}
            if k in contract.entry_namespaces
            else list(v)
            for k, v in contract.entry_points.items()
        },
        **({"catalog": dict(contract.catalog)} if contract.catalog else {}),
        **({"schematron": list(contract.schematron)} if contract.schematron else {}),
        **({"validation": contract.validation_level} if contract.validation_level != "xsd" else {}),
    }
