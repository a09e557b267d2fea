"""CLI commands for message understanding, without NATS.

``register(subparsers)`` adds ``validate``, ``map`` and ``contracts add|init|list|remove`` to the
``poststelle`` command; ``main(argv)`` runs them stand-alone (tests, debugging). An error the
operator can fix (a bad schema set, descriptor or mapping file) is one line on stderr and
exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from poststelle.mappings.engine import MappingError

from ._compile import check_entry_points
from .data_dir import resolve_data_dir
from .events import AttachmentRef, CaseEvent, Origin
from .inspection import (
    InspectedMessage,
    MessageInspector,
    MessageRejected,
    attachment_object_name,
    attachment_refs,
)
from .message_identity import identify_message
from .progress import step_progress
from .registry import BUILTIN_REGISTRY_DIR, ContractError, ContractRegistry
from .validation import LEVELS

__all__ = ["PREVIEW_BACKEND", "PREVIEW_TENANT", "main", "register"]

# `poststelle map` runs without a routing table: tenant and back end say so explicitly.
PREVIEW_TENANT = "unrouted"
PREVIEW_BACKEND = "unrouted"


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(resolve_data_dir(getattr(args, "data_dir", None)))


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps a global --data-dir given before the subcommand from being overwritten.
    parser.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="hub data folder (default: $POSTSTELLE_DATA_DIR or ./.poststelle)",
    )


_Command = Callable[..., int]


def _one_line_errors(name: str) -> Callable[[_Command], _Command]:
    """Report a descriptor, schema-set or mapping error as ``poststelle NAME: reason``."""

    def decorate(command: _Command) -> _Command:
        @functools.wraps(command)
        def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
            try:
                return command(args, out)
            except (ContractError, MappingError) as exc:
                sys.stderr.write(f"poststelle {name}: {' '.join(str(exc).split())}\n")
                return 1

        return run

    return decorate


def _content_type(path: Path, given: str | None) -> str | None:
    if given:
        return given
    return "application/json" if path.suffix.lower() == ".json" else None


@_one_line_errors("validate")
def _cmd_validate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    inspector = MessageInspector(_data_dir(args))
    reports: list[dict[str, Any]] = []
    failed = False
    for name in args.files:
        path = Path(name)
        report: dict[str, Any] = {"file": str(path)}
        try:
            raw = path.read_bytes()
            result = inspector.inspect(
                raw,
                content_type=_content_type(path, args.content_type),
                strict=args.strict,
                require_valid=False,
                level=args.level,
            )
        except OSError as exc:
            report.update(status="error", step="read", reason="unreadable", detail=str(exc))
        except MessageRejected as exc:
            report.update(status="rejected", step=exc.step, reason=exc.reason, detail=exc.detail)
        else:
            report.update(
                standard=result.standard,
                version=result.version,
                message_type=result.message_type,
                **result.validation.as_dict(),
            )
        bad = report["status"] in {"invalid", "rejected", "error"}
        bad = bad or (args.require_schema and report["status"] == "not-performed")
        failed = failed or bad
        reports.append(report)
    if args.json:
        json.dump(reports, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        for report in reports:
            out.write(_human(report))
    return 1 if failed else 0


def _human(report: dict[str, Any]) -> str:
    status = report["status"]
    if status in {"rejected", "error"}:
        return (
            f"{report['file']}: REJECTED {report['step']}/{report['reason']}: {report['detail']}\n"
        )
    head = (
        f"{report['file']}: {status.upper()} "
        f"{report['standard']} {report['version']} {report['message_type']}"
    )
    if status == "not-performed":
        return f"{head} ({report['note']})\n"
    lines = [f"{head} [{report['mode']}: {report['schema']}]\n"]
    for error in report["errors"]:
        rule = f"[{error['id']}] " if error.get("id") else ""
        lines.append(f"  line {error['line']}: {error['path']}: {rule}{error['message']}\n")
    if report.get("note"):
        lines.append(f"  ({report['note']})\n")
    return "".join(lines)


def preview_event(result: InspectedMessage, raw: bytes, *, channel: str = "cli") -> CaseEvent:
    """A CaseEvent as the hub would publish it, with routing left as 'unrouted'."""
    digest = hashlib.sha256(raw).hexdigest()
    identity = identify_message(raw)
    source_id, case_id = identity.value, identity.case_id
    data = result.case_event_data(
        case_id=case_id,
        origin=Origin(channel=channel, adapter="poststelle-map", source_message_id=source_id),
        tenant=PREVIEW_TENANT,
        backend=PREVIEW_BACKEND,
        attachments=attachment_refs(case_id, result.attachments),
        original=AttachmentRef(
            name="original",
            media_type="application/json" if result.format == "json" else "application/xml",
            kind="original",
            size=len(raw),
            sha256=digest,
            ref=f"attachments/{attachment_object_name(case_id, digest)}",
        ),
    )
    return CaseEvent.received(data)


@_one_line_errors("map")
def _cmd_map(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    path = Path(args.file)
    try:
        raw = path.read_bytes()
        inspector = MessageInspector(_data_dir(args))
        result = inspector.inspect(
            raw, content_type=_content_type(path, args.content_type), strict=args.strict
        )
    except OSError as exc:
        sys.stderr.write(f"{path}: cannot read: {exc}\n")
        return 2
    except MessageRejected as exc:
        sys.stderr.write(f"{path}: REJECTED {exc.step}/{exc.reason}: {exc.detail}\n")
        for error in exc.errors:
            sys.stderr.write(f"  {error}\n")
        return 1
    event = preview_event(result, raw)
    out.write(event.model_dump_json(indent=2))
    out.write("\n")
    references = [a for a in result.attachments if a.kind == "reference"]
    if references:
        sys.stderr.write(f"{len(references)} referenced attachment(s) not carried inline:\n")
        for attachment in references:
            sys.stderr.write(f"  {attachment.name} -> {attachment.ref}\n")
    return 0


@_one_line_errors("contracts add")
def _cmd_contracts_add(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    registry = ContractRegistry.for_data_dir(_data_dir(args))
    with step_progress() as progress:
        added = registry.add_schema_set(
            Path(args.path),
            descriptor=Path(args.descriptor) if args.descriptor else None,
            replace=args.replace,
            progress=progress.report,
        )
    out.write(f"registered schema set {added.id} in {added.folder}\n")
    for old in added.replaced:
        out.write(f"  replaced schema set {old}\n")
    for served in added.serves:
        contract = registry.contract(served.standard, served.version)
        total = len(contract.entry_points) if contract else len(served.entry_points)
        out.write(
            f"  {served.standard} {served.version}: "
            f"{len(served.entry_points)}/{total} entry points found\n"
        )
    return 0


@_one_line_errors("contracts remove")
def _cmd_contracts_remove(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    registry = ContractRegistry.for_data_dir(_data_dir(args))
    for removed in registry.remove_schema_set(args.name):
        out.write(f"removed schema set {removed.id} ({', '.join(removed.keys)})\n")
    return 0


def _compiles(registry: ContractRegistry, contract: Any) -> tuple[str, list[str]]:
    """``ok``, ``broken`` (with the problems) or ``-`` when there is nothing to compile."""
    catalog = registry.catalog_for(contract)
    if catalog is None:
        return "-", []
    problems = check_entry_points(catalog.root, registry.entry_paths(contract), catalog)
    return ("broken" if problems else "ok"), problems


@_one_line_errors("contracts list")
def _cmd_contracts_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    registry = ContractRegistry.for_data_dir(_data_dir(args))
    rows: list[dict[str, Any]] = []
    serving = set()
    for contract in sorted(registry.contracts, key=lambda c: c.key):
        schema_set = registry.schema_set_for(contract)
        compiles, problems = _compiles(registry, contract)
        if schema_set:
            serving.add(schema_set.id)
        rows.append(
            {
                "standard": contract.standard,
                "version": contract.version,
                "title": contract.title,
                "format": contract.format,
                "namespaces": list(contract.namespaces),
                "message_types": len(contract.message_types),
                "schema_set": schema_set.id if schema_set else None,
                "compiles": compiles,
                "problems": problems,
                "source": "shipped"
                if contract.source.startswith(str(BUILTIN_REGISTRY_DIR))
                else "store",
            }
        )
    # Sets another set shadows (stores from before `add` refused a second set per version).
    unused = [s.id for s in registry.store.sets() if s.id not in serving]
    if args.json:
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    out.write(f"{'standard':<14}{'version':<9}{'types':>6}  {'compiles':<9}schemas\n")
    for row in rows:
        schemas = row["schema_set"] or (
            "none needed (JSON)" if row["format"] == "json" else "NOT REGISTERED"
        )
        out.write(
            f"{row['standard']:<14}{row['version']:<9}{row['message_types']:>6}  "
            f"{row['compiles']:<9}{schemas}\n"
        )
        for problem in row["problems"]:
            out.write(f"    {' '.join(problem.split())}\n")
    for set_id in unused:
        out.write(f"not in use (another set serves its versions): {set_id}\n")
    return 0


def _cmd_contracts_init(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ._init import generate_descriptors, load_overrides, render_descriptor

    out = out or sys.stdout
    root = Path(args.dir)
    try:
        found = generate_descriptors(root, progress=_init_progress)
        if args.version:
            found = [d for d in found if d.data["version"] == args.version]
        if not found:
            raise ContractError(f"{root}: no standard version {args.version} in this set")
        if args.output and len(found) > 1:
            raise ContractError(
                f"{root} holds {', '.join(d.key for d in found)}: choose one with --version"
            )
        target = Path(args.output) if args.output else None
        overrides = load_overrides(target) if target and target.exists() else {}
    except ContractError as exc:
        sys.stderr.write(f"contracts init: {exc}\n")
        return 1
    texts = [render_descriptor(d, overrides) for d in found]
    if target:
        target.write_text(texts[0], encoding="utf-8")
    else:
        out.write("---\n".join(texts))
    for descriptor in found:
        data = descriptor.data
        messages = sum(
            len(v["messages"] if isinstance(v, dict) else v) for v in data["entry_points"].values()
        )
        sys.stderr.write(
            f"{descriptor.key}: {messages} message types in {len(data['entry_points'])} "
            f"entry point(s), header {data['header']}, "
            f"{len(data.get('catalog', {}))} URL import(s) resolved in the set"
            + (f" -> {target}" if target else "")
            + "\n"
        )
        for warning in descriptor.warnings:
            sys.stderr.write(f"  warning: {warning}\n")
        if descriptor.unresolved:
            sys.stderr.write(f"  {len(descriptor.unresolved)} import(s) NOT found in the set:\n")
            for url, importer in descriptor.unresolved:
                sys.stderr.write(f"    {url}  (imported by {importer})\n")
    return 0


def _init_progress(done: int, total: int, name: str) -> None:
    # Large sets take a while: say how far the scan is, ten times over (small sets stay quiet).
    if total >= 100 and (done == total or done % max(1, total // 10) == 0):
        sys.stderr.write(f"  read {done}/{total} schema files ({name})\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the ``poststelle`` CLI."""
    validate = subparsers.add_parser(
        "validate", help="identify and validate XÖV messages (exit 1 if any is invalid)"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="machine-readable report")
    validate.add_argument(
        "--strict",
        action="store_true",
        help="validate with xmlschema (same verdicts; XSD 1.1 sets)",
    )
    validate.add_argument(
        "--level",
        choices=LEVELS,
        default=None,
        help="how far to check: well-formed, xsd, or xsd and then the standard's Schematron "
        "rules (default: the contract's level)",
    )
    validate.add_argument(
        "--require-schema",
        action="store_true",
        help="fail when a message's schema set is not registered",
    )
    validate.add_argument("--content-type", help="e.g. application/json (default: by suffix)")
    _add_data_dir(validate)
    validate.set_defaults(func=_cmd_validate)

    mapper = subparsers.add_parser(
        "map", help="print the CaseEvent a message becomes (routing left 'unrouted')"
    )
    mapper.add_argument("file", metavar="FILE")
    mapper.add_argument("--strict", action="store_true")
    mapper.add_argument("--content-type")
    _add_data_dir(mapper)
    mapper.set_defaults(func=_cmd_map)

    contracts = subparsers.add_parser("contracts", help="registered standards and schema sets")
    commands = contracts.add_subparsers(dest="contracts_command", required=True)
    add = commands.add_parser("add", help="register an XSD set (folder or zip)")
    add.add_argument("path", metavar="PATH")
    add.add_argument("--descriptor", help="contract YAML for a standard the project does not ship")
    add.add_argument(
        "--replace",
        action="store_true",
        help="take over the versions another registered set serves (that set is removed)",
    )
    _add_data_dir(add)
    add.set_defaults(func=_cmd_contracts_add)
    init = commands.add_parser(
        "init", help="write the contract descriptor of a published XSD set (review, then add)"
    )
    init.add_argument("dir", metavar="DIR", help="the unpacked schema set")
    init.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write here instead of stdout; an existing FILE's overrides section is kept",
    )
    init.add_argument("--version", help="the standard version to describe, when DIR holds several")
    init.set_defaults(func=_cmd_contracts_init)
    remove = commands.add_parser("remove", help="remove a schema set (its id or STANDARD-VERSION)")
    remove.add_argument("name", metavar="SET_ID|STANDARD-VERSION")
    _add_data_dir(remove)
    remove.set_defaults(func=_cmd_contracts_remove)
    listing = commands.add_parser(
        "list", help="known standards, the schema set serving each and whether it compiles"
    )
    listing.add_argument("--json", action="store_true")
    _add_data_dir(listing)
    listing.set_defaults(func=_cmd_contracts_list)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="poststelle")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
