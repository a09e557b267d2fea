"""The contract registry: which standard, version and message type a message is, and its schema.

Contracts come from two places: the descriptors the project ships (``contracts/standards/*.yaml``)
and descriptors registered with a schema set in the store (standards the project does not ship).
Schemas come only from the store. Each entry point is compiled on first use and then kept, so
a hub with many registered standards starts without compiling anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from ._catalog import SchemaCatalog
from ._compile import SchemaUnusable, compile_lxml, compile_strict
from ._contract import Contract, ContractError, contract_from_mapping
from ._errors import MessageRejected
from ._fixed import FixedValues, compile_fixed_values
from ._identity import IdentityRules, compile_identity_rules
from ._schematron import CompiledSchematron, check_schematron, compile_schematron
from ._store import SchemaSet, SchemaStore, ServedContract, StepCallback, served_catalog
from .validation import Level, SchemaError, ValidationOutcome

__all__ = [
    "BUILTIN_REGISTRY_DIR",
    "Contract",
    "ContractError",
    "ContractRegistry",
    "Identification",
    "SchemaSet",
    "SchemaStore",
]

log = logging.getLogger(__name__)

BUILTIN_REGISTRY_DIR = Path(__file__).with_name("standards")
_MAX_ERRORS = 50


@dataclass(frozen=True)
class Identification:
    contract: Contract
    message_type: str
    namespace: str

    @property
    def standard(self) -> str:
        return self.contract.standard

    @property
    def version(self) -> str:
        return self.contract.version


def _no_catalog(path: Path) -> SchemaCatalog:
    # Rooted at the file system's root: nothing relative is outside it, no URL is in it.
    return SchemaCatalog(Path(path.resolve().anchor))


def _builtin_contracts() -> list[Contract]:
    contracts = []
    for path in sorted(BUILTIN_REGISTRY_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        contracts.append(contract_from_mapping(data, str(path)))
    return contracts


class ContractRegistry:
    """Identification and validation against the contracts known to one hub."""

    def __init__(self, store: SchemaStore, contracts: list[Contract] | None = None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._lxml: dict[Path, etree.XMLSchema] = {}
        self._strict: dict[Path, Any] = {}
        # A schema that failed to compile fails the same way until the set changes: remember
        # why, instead of compiling it again for every message.
        self._unusable: dict[tuple[str, Path], SchemaUnusable] = {}
        self._identity: dict[Path, tuple[IdentityRules, FixedValues]] = {}
        self._by_qname: dict[tuple[str, str], tuple[Contract, str]] = {}
        self._by_namespace: dict[str, Contract] = {}
        self._by_localname: dict[str, list[Contract]] = defaultdict(list)
        self._contracts: dict[str, Contract] = {}
        self._schemas: dict[str, tuple[SchemaSet, ServedContract]] = {}
        self._paths: dict[tuple[str, str], tuple[Path, SchemaCatalog] | None] = {}
        # contract key -> its Schematron files in the schema set, or why there are none
        self._schematron: dict[str, tuple[Path, ...] | str] = {}
        self._sch_compiled: dict[Path, CompiledSchematron] = {}
        sets = store.sets()
        for contract in [
            *(contracts or _builtin_contracts()),
            *(c for s in sets for c in s.contracts),
        ]:
            self._add_contract(contract)
        for schema_set in sets:  # sorted by folder name; later sets win for the same contract
            for served in schema_set.serves:
                self._schemas[served.key] = (schema_set, served)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ContractRegistry:
        return cls(SchemaStore(data_dir / "schemas"))

    def _add_contract(self, contract: Contract) -> None:
        if contract.key in self._contracts:
            return  # the shipped descriptor wins over a copy stored with a schema set
        self._contracts[contract.key] = contract
        for namespace in contract.namespaces:
            self._by_namespace.setdefault(namespace, contract)
        for message in contract.message_types:
            for namespace in contract.namespaces_of(message):
                self._by_qname[(namespace, message)] = (contract, message)
        for message in contract.message_types:
            self._by_localname[message].append(contract)

    @property
    def contracts(self) -> list[Contract]:
        return list(self._contracts.values())

    def known_message_types(self) -> dict[str, dict[str, frozenset[str]]]:
        """standard -> version -> message types, for refusing mappings of unknown ones."""
        known: dict[str, dict[str, frozenset[str]]] = defaultdict(dict)
        for contract in self._contracts.values():
            known[contract.standard][contract.version] = frozenset(contract.message_types)
        return dict(known)

    def contract(self, standard: str, version: str) -> Contract | None:
        return self._contracts.get(f"{standard}-{version}")

    def schema_set_for(self, contract: Contract) -> SchemaSet | None:
        found = self._schemas.get(contract.key)
        return found[0] if found else None

    def add_schema_set(
        self,
        path: Path,
        *,
        descriptor: Path | None = None,
        replace: bool = False,
        progress: StepCallback | None = None,
    ) -> SchemaSet:
        """``poststelle contracts add``: register a folder or zip and use it from now on."""
        added = self.store.add(
            path, self.contracts, descriptor=descriptor, replace=replace, progress=progress
        )
        for contract in added.contracts:
            self._add_contract(contract)
        for served in added.serves:
            self._schemas[served.key] = (added, served)
        self._forget_compiled()
        return added

    def remove_schema_set(self, name: str) -> list[SchemaSet]:
        """``poststelle contracts remove``: a set id, or the ``standard-version`` it serves."""
        removed = self.store.remove(name)
        ids = {s.id for s in removed}
        self._schemas = {k: v for k, v in self._schemas.items() if v[0].id not in ids}
        self._forget_compiled()
        return removed

    def _forget_compiled(self) -> None:
        self._paths.clear()
        self._schematron.clear()
        self._sch_compiled.clear()
        self._unusable.clear()
        self._identity.clear()

    def catalog_for(self, contract: Contract) -> SchemaCatalog | None:
        """The catalog a contract's schema set resolves its URL imports with."""
        found = self._schemas.get(contract.key)
        return served_catalog(found[0].folder, contract, found[1]) if found else None

    def entry_paths(self, contract: Contract) -> dict[str, str]:
        """Entry point name -> path relative to its set, for the contract's schema set."""
        found = self._schemas.get(contract.key)
        return dict(found[1].entry_points) if found else {}

    # -- identification -------------------------------------------------------------------

    def identify(self, root: etree._Element) -> Identification:
        qname = etree.QName(root)
        namespace = qname.namespace or ""
        name = qname.localname
        hit = self._by_qname.get((namespace, name))
        if hit is not None:
            return Identification(hit[0], hit[1], namespace)
        known = self._by_namespace.get(namespace)
        if known is not None:
            raise MessageRejected(
                "identify",
                "unknown-message-type",
                f"{known.title} ({namespace}) has no message type '{name}'",
            )
        for contract in self._contracts.values():
            version = contract.version_from_namespace(namespace)
            if version is not None:
                registered = sorted(
                    c.version for c in self._contracts.values() if c.standard == contract.standard
                )
                raise MessageRejected(
                    "identify",
                    "unknown-version",
                    f"{contract.standard} version {version} ({namespace}) is not registered; "
                    f"known versions: {', '.join(registered)}",
                )
        homes = self._by_localname.get(name)
        if homes:
            expected = ", ".join(sorted({ns for c in homes for ns in c.namespaces}))
            raise MessageRejected(
                "identify",
                "wrong-namespace",
                f"root '{name}' is in namespace '{namespace or '(none)'}', expected {expected}",
            )
        raise MessageRejected(
            "identify",
            "unknown-namespace",
            f"no contract for root {{{namespace}}}{name}",
        )

    def identify_json(self, document: Any) -> Identification:
        """A JSON submission is identified by its top-level key (e.g. ``formData``)."""
        if isinstance(document, dict):
            for contract in self._contracts.values():
                for root in contract.json_roots:
                    if root in document:
                        return Identification(contract, root, "")
        keys = sorted(document)[:5] if isinstance(document, dict) else type(document).__name__
        raise MessageRejected(
            "identify", "unknown-json", f"no JSON contract matches a document with keys {keys}"
        )

    # -- validation -----------------------------------------------------------------------

    def _schema_path(self, ident: Identification) -> tuple[Path, SchemaCatalog] | None:
        # Hot path: one dict lookup per message once the entry point has been resolved.
        key = (ident.contract.key, ident.message_type)
        if key in self._paths:
            return self._paths[key]
        path = self._resolve_schema_path(ident)
        self._paths[key] = path
        return path

    def _resolve_schema_path(self, ident: Identification) -> tuple[Path, SchemaCatalog] | None:
        found = self._schemas.get(ident.contract.key)
        entry = ident.contract.entry_point_for(ident.message_type)
        if found is None or entry is None or entry not in found[1].entry_points:
            return None
        schema_set, served = found
        catalog = served_catalog(schema_set.folder, ident.contract, served)
        return schema_set.folder / served.entry_points[entry], catalog

    def _compiled(
        self, cache: dict[Path, Any], engine: str, path: Path, build: Callable[[], Any]
    ) -> Any:
        schema = cache.get(path)
        if schema is None:
            with self._lock:
                schema = cache.get(path)
                if schema is None:
                    failed = self._unusable.get((engine, path))
                    if failed is not None:
                        raise failed
                    started = time.perf_counter()
                    try:
                        schema = build()
                    except SchemaUnusable as exc:
                        self._unusable[(engine, path)] = exc
                        log.warning("schema unusable engine=%s entry=%s: %s", engine, path, exc)
                        raise
                    cache[path] = schema
                    log.info(
                        "schema compiled engine=%s entry=%s ms=%.0f",
                        engine,
                        path.name,
                        (time.perf_counter() - started) * 1000,
                    )
        return schema

    def lxml_schema(self, path: Path, catalog: SchemaCatalog) -> etree.XMLSchema:
        """The compiled lxml schema of an entry point; raises ``SchemaUnusable``."""
        schema: etree.XMLSchema = self._compiled(
            self._lxml, "lxml", path, lambda: compile_lxml(path, catalog)
        )
        return schema

    def _strict_schema(self, path: Path, catalog: SchemaCatalog, xsd_version: str) -> Any:
        return self._compiled(
            self._strict, "strict", path, lambda: compile_strict(path, catalog, xsd_version)
        )

    def validate(
        self,
        root: etree._Element,
        ident: Identification,
        *,
        strict: bool = False,
        level: Level | None = None,
    ) -> ValidationOutcome:
        """Validate against the message type's entry point and, at level ``schematron``, then
        against the contract's Schematron rules; ``level`` defaults to the contract's. A schema
        or rule file that cannot be compiled is ``MessageRejected("validate",
        "schema-unusable")``, not a crash."""
        chosen = level or ident.contract.validation_level
        if chosen == "well-formed":
            return ValidationOutcome(status="not-performed", note="validation level well-formed")
        outcome = self._validate_xsd(root, ident, strict=strict)
        if chosen != "schematron" or outcome.status != "valid":
            # Business rules presuppose the structure: a schema-invalid message is reported
            # with its schema errors, a message without a registered set is not checked.
            return outcome
        return self._validate_schematron(root, ident, outcome)

    def schematron_rules(self, contract: Contract) -> list[CompiledSchematron]:
        """The contract's Schematron files compiled (once per process and content); empty
        when its schema set does not hold them. Raises ``SchemaUnusable``."""
        found = self._schematron_files(contract)
        if isinstance(found, str):
            return []
        return [self._compiled_rules(path) for path in found]

    def _compiled_rules(self, path: Path) -> CompiledSchematron:
        # Hot path: one dict lookup; compile_schematron reads and hashes the file.
        compiled = self._sch_compiled.get(path)
        if compiled is not None:
            return compiled
        failed = self._unusable.get(("schematron", path))
        if failed is not None:
            raise failed
        try:
            compiled = compile_schematron(path)
        except SchemaUnusable as exc:
            with self._lock:
                self._unusable[("schematron", path)] = exc
            log.warning("schematron unusable file=%s: %s", path, exc)
            raise
        self._sch_compiled[path] = compiled
        return compiled

    def _schematron_files(self, contract: Contract) -> tuple[Path, ...] | str:
        found = self._schematron.get(contract.key)
        if found is None:
            found = self._find_schematron(contract)
            self._schematron[contract.key] = found
        return found

    def _find_schematron(self, contract: Contract) -> tuple[Path, ...] | str:
        """The set's files for the contract's ``schematron`` names, or why not."""
        if not contract.schematron:
            return f"{contract.key} declares no Schematron rules"
        served = self._schemas.get(contract.key)
        if served is None:
            return f"no schema set registered for {contract.key}"
        folder = served[0].folder
        files = []
        for name in contract.schematron:
            hits = sorted(
                p
                for p in folder.rglob("*.sch")
                if f"/{p.relative_to(folder).as_posix()}".endswith(f"/{name}")
            )
            if len(hits) != 1:
                reason = (
                    f"schema set {served[0].id} holds {len(hits)} files named {name} "
                    f"(register the release folder that has the XSDs and the rules)"
                )
                log.warning("schematron not performed contract=%s: %s", contract.key, reason)
                return reason
            files.append(hits[0])
        return tuple(files)

    def _validate_schematron(
        self, root: etree._Element, ident: Identification, xsd: ValidationOutcome
    ) -> ValidationOutcome:
        found = self._schematron_files(ident.contract)
        if isinstance(found, str):
            note = f"Schematron not performed: {found}"
            return ValidationOutcome(
                status=xsd.status, mode=xsd.mode, schema=xsd.schema, errors=xsd.errors, note=note
            )
        try:
            rules = [self._compiled_rules(path) for path in found]
        except SchemaUnusable as exc:
            raise MessageRejected(
                "validate", "schema-unusable", f"{ident.contract.key}: {exc}"
            ) from exc
        errors = check_schematron(rules, root)[:_MAX_ERRORS]
        schema = f"{xsd.schema} + {' + '.join(p.name for p in found)}"
        return ValidationOutcome(
            status="invalid" if errors else "valid",
            mode="schematron",
            schema=schema,
            errors=tuple(errors),
        )

    def _validate_xsd(
        self, root: etree._Element, ident: Identification, *, strict: bool
    ) -> ValidationOutcome:
        found = self._schema_path(ident)
        if found is None:
            return ValidationOutcome(
                status="not-performed",
                note=f"no schema set registered for {ident.contract.key} "
                f"(poststelle contracts add PATH)",
            )
        path, catalog = found
        return self.validate_with(
            root,
            path,
            strict=strict,
            xsd_version=ident.contract.strict_xsd_version,
            schema_name=f"{ident.contract.key}/{path.name}",
            catalog=catalog,
        )

    def validate_with(
        self,
        root: etree._Element,
        path: Path,
        *,
        strict: bool = False,
        xsd_version: str = "1.0",
        schema_name: str | None = None,
        catalog: SchemaCatalog | None = None,
    ) -> ValidationOutcome:
        """Validate against the entry point ``path`` with the lxml (default) or strict engine.

        The lxml verdict adds what libxml2 leaves out (``docs/xsd-conformance.md``): ID
        uniqueness and IDREF resolution, and compares fixed element values as values, so
        both modes give the verdict XSD 1.0 gives. ``catalog`` resolves URL imports; without
        one (a schema outside any registered set) relative locations resolve as they stand
        and URLs not at all. A schema that cannot be compiled is
        ``MessageRejected("validate", "schema-unusable")``.
        """
        schema_name = schema_name or path.name
        catalog = catalog or _no_catalog(path)
        try:
            if strict:
                return self._validate_strict(root, path, catalog, xsd_version, schema_name)
            rules, fixed = self._fast_path_rules(path, catalog, xsd_version)
            if not rules.exact:  # declarations the by-name rules cannot tell apart: ask xmlschema
                outcome = self._validate_strict(root, path, catalog, xsd_version, schema_name)
                return ValidationOutcome(
                    status=outcome.status, mode="lxml", schema=schema_name, errors=outcome.errors
                )
            schema = self.lxml_schema(path, catalog)
        except SchemaUnusable as exc:
            raise MessageRejected("validate", "schema-unusable", f"{schema_name}: {exc}") from exc
        valid = schema.validate(root)
        errors = [
            SchemaError(line=e.line or None, path=e.path or None, message=e.message)
            for e in list(schema.error_log)[:_MAX_ERRORS]
        ]
        if not valid:
            errors = fixed.withdraw(root, errors)
        errors.extend(rules.check(root)[: _MAX_ERRORS - len(errors)])
        if not errors:
            return ValidationOutcome(status="valid", mode="lxml", schema=schema_name)
        return ValidationOutcome(
            status="invalid", mode="lxml", schema=schema_name, errors=tuple(errors)
        )

    def identity_rules(
        self, path: Path, xsd_version: str = "1.0", catalog: SchemaCatalog | None = None
    ) -> IdentityRules:
        """Which elements and attributes of the set are ID/IDREF(S)-typed, compiled once."""
        catalog = catalog or _no_catalog(path)
        return self._fast_path_rules(path, catalog, xsd_version)[0]

    def _fast_path_rules(
        self, path: Path, catalog: SchemaCatalog, xsd_version: str
    ) -> tuple[IdentityRules, FixedValues]:
        # Derived from the strict engine's components, which resolve includes, imports,
        # redefines and chameleons as XSD says; compiled once per entry point. libxml2
        # compiles some schemas XSD 1.0 says are in error (an illegal restriction of a
        # content model, for one): the strict engine refuses those, and a verdict against
        # them would be a guess, so they are unusable in both modes.
        rules = self._identity.get(path)
        if rules is None:
            started = time.perf_counter()
            components = self._strict_schema(path, catalog, xsd_version)
            rules = (compile_identity_rules(components), compile_fixed_values(components))
            with self._lock:
                self._identity[path] = rules
            log.info(
                "fast-path rules ready entry=%s ms=%.0f",
                path.name,
                (time.perf_counter() - started) * 1000,
            )
        return rules

    def _validate_strict(
        self,
        root: etree._Element,
        path: Path,
        catalog: SchemaCatalog,
        xsd_version: str,
        schema_name: str,
    ) -> ValidationOutcome:
        import xmlschema

        schema = self._strict_schema(path, catalog, xsd_version)
        errors = []
        try:
            for error in schema.iter_errors(root):
                errors.append(
                    SchemaError(
                        line=getattr(error, "sourceline", None),
                        path=getattr(error, "path", None),
                        message=str(error.reason or error.message),
                    )
                )
                if len(errors) >= _MAX_ERRORS:
                    break
        except xmlschema.XMLSchemaException as exc:
            # xmlschema raises instead of reporting for some bad input (an xsi:type naming no
            # type): that is an invalid message, not a crash of the hub.
            errors.append(SchemaError(line=None, path=None, message=f"not assessable: {exc}"))
        return ValidationOutcome(
            status="invalid" if errors else "valid",
            mode="strict",
            schema=schema_name,
            errors=tuple(errors),
        )
