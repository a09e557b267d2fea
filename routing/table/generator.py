"""A deterministic, realistic national routing table for benchmarks and demos.

The ARS structure is public fact: 16 Länder with their codes 01–16, Regierungsbezirke where a
Land still encodes them (Niedersachsen 1–4, Nordrhein-Westfalen 1/3/5/7/9, Hessen 4–6,
Rheinland-Pfalz 1–3, Baden-Württemberg 1–4, Bayern 1–7, Sachsen 5–7), kreisfreie Städte and
Landkreise in about the real numbers, Gemeindeverbände (Ämter, Verbandsgemeinden,
Verwaltungsgemeinschaften) and about 10,750 Gemeinden. Kreis codes follow the AGS habit
(kreisfreie Städte 01.., Landkreise 51..); a kreisfreie Stadt is its own Gemeinde
(``<Land><RB><Kreis>0000 0<Kreis>``, e.g. Kiel 010020000002) and a verbandsfreie Gemeinde
repeats its number as Gemeindeverband (``0<Gemeinde>``). Names and LeiKa keys are
illustrative, not an official catalogue. Nothing is downloaded; the same seed gives the same
table.

Rules: a Land catch-all, a Kreis catch-all, the Kreis-level Leistungen (Bauaufsicht) per
Kreis, and the Gemeinde-level Leistungen per Gemeinde; a few Gemeinden merge into a neighbour
on 2027-01-01 (dated rules). There is deliberately no Gemeinde catch-all: a longer ARS prefix
outranks a specific Leistung, so it would capture the Kreis-level Leistungen too.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from poststelle.routing.table.files import dump_csv
from poststelle.routing.table.rules import RouteTable, Rule, Tenant

__all__ = [
    "LAENDER",
    "LEISTUNGEN",
    "Land",
    "Leistung",
    "Municipality",
    "generate_municipalities",
    "generate_national_table",
    "write_national_table",
]


@dataclass(frozen=True, slots=True)
class Land:
    code: str
    name: str
    regierungsbezirke: tuple[int, ...]
    kreisfreie: int
    landkreise: int
    gemeinden: int
    verband_share: float  # share of Landkreis-Gemeinden organised in a Gemeindeverband


LAENDER: tuple[Land, ...] = (
    Land("01", "Schleswig-Holstein", (0,), 4, 11, 1104, 0.85),
    Land("02", "Hamburg", (0,), 1, 0, 1, 0.0),
    Land("03", "Niedersachsen", (1, 2, 3, 4), 8, 37, 941, 0.55),
    Land("04", "Bremen", (0,), 2, 0, 2, 0.0),
    Land("05", "Nordrhein-Westfalen", (1, 3, 5, 7, 9), 22, 31, 396, 0.0),
    Land("06", "Hessen", (4, 5, 6), 5, 21, 421, 0.0),
    Land("07", "Rheinland-Pfalz", (1, 2, 3), 12, 24, 2301, 0.97),
    Land("08", "Baden-Württemberg", (1, 2, 3, 4), 9, 35, 1101, 0.6),
    Land("09", "Bayern", (1, 2, 3, 4, 5, 6, 7), 25, 71, 2056, 0.47),
    Land("10", "Saarland", (0,), 0, 6, 52, 0.0),
    Land("11", "Berlin", (0,), 1, 0, 1, 0.0),
    Land("12", "Brandenburg", (0,), 4, 14, 413, 0.65),
    Land("13", "Mecklenburg-Vorpommern", (0,), 2, 6, 726, 0.9),
    Land("14", "Sachsen", (5, 6, 7), 3, 10, 418, 0.4),
    Land("15", "Sachsen-Anhalt", (0,), 3, 11, 218, 0.45),
    Land("16", "Thüringen", (0,), 5, 17, 605, 0.6),
)


@dataclass(frozen=True, slots=True)
class Leistung:
    key: str
    name: str
    kreis_level: bool


# Illustrative LeiKa-style keys: 8-digit Leistungsobjekt, 3-digit Verrichtung, 3-digit detail.
LEISTUNGEN: tuple[Leistung, ...] = (
    Leistung("99066005001000", "Baugenehmigung", True),
    Leistung("99066007012000", "Bauvoranfrage", True),
    Leistung("99050012104000", "Gewerbeanmeldung", False),
    Leistung("99050012105000", "Gewerbeummeldung", False),
    Leistung("99050012106000", "Gewerbeabmeldung", False),
    Leistung("99115005001000", "Anmeldung einer Wohnung", False),
    Leistung("99115005002000", "Abmeldung einer Wohnung", False),
    Leistung("99102013001000", "Hundesteuer Anmeldung", False),
    Leistung("99107004001000", "Erlaubnis Sondernutzung Straße", False),
    Leistung("99017003001000", "Fischereischein", False),
    Leistung("99134003001000", "Personalausweis beantragen", False),
    Leistung("99012007001000", "Reisepass beantragen", False),
    Leistung("99063002001000", "Führungszeugnis beantragen", False),
    Leistung("99088009001000", "Meldebescheinigung", False),
    Leistung("99051004001000", "Gaststättenerlaubnis", False),
    Leistung("99041008001000", "Kita-Platz beantragen", False),
    Leistung("99022001001000", "Baumfällgenehmigung", False),
    Leistung("99108020001000", "Parkausweis für Anwohner", False),
    Leistung("99014002001000", "Eheschließung anmelden", False),
    Leistung("99127001001000", "Veranstaltung anzeigen", False),
    Leistung("99031005001000", "Wohngeld beantragen", False),
)

MERGER_DATE = date(2027, 1, 1)


@dataclass(frozen=True, slots=True)
class Municipality:
    ars: str
    kreis: str  # the 5-digit Kreis prefix
    kreisfrei: bool


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` spread over ``parts`` buckets, each at least 1, unevenly like real Kreise."""
    weights = [rng.uniform(0.4, 1.6) for _ in range(parts)]
    scale = (total - parts) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]
    for index in range(total - sum(counts)):
        counts[index % parts] += 1
    return counts


def _kreise(land: Land) -> Iterator[tuple[str, bool]]:
    """(5-digit Kreis prefix, kreisfrei) for every Kreis of ``land``."""
    if land.kreisfreie + land.landkreise == 1:
        yield f"{land.code}000", True
        return
    rbs = land.regierungsbezirke
    for n in range(land.kreisfreie):
        yield f"{land.code}{rbs[n % len(rbs)]}{n // len(rbs) + 1:02d}", True
    for n in range(land.landkreise):
        yield f"{land.code}{rbs[n % len(rbs)]}{n // len(rbs) + 51:02d}", False


def _landkreis_gemeinden(kreis: str, count: int, share: float, rng: random.Random) -> list[str]:
    ars: list[str] = []
    number = 0
    in_verband = round(count * share)
    verband = 5000
    while number < in_verband:
        verband += 1
        size = min(in_verband - number, rng.randint(3, 15))
        for _ in range(size):
            number += 1
            ars.append(f"{kreis}{verband:04d}{number:03d}")
    while number < count:
        number += 1
        ars.append(f"{kreis}0{number:03d}{number:03d}")
    return ars


def generate_municipalities(seed: int = 2024) -> list[Municipality]:
    rng = random.Random(seed)
    out: list[Municipality] = []
    for land in LAENDER:
        kreise = list(_kreise(land))
        landkreise = [k for k, frei in kreise if not frei]
        for kreis, frei in kreise:
            if frei:
                city = "000" if kreis.endswith("000") else f"0{kreis[-2:]}"
                out.append(Municipality(f"{kreis}0000{city}", kreis, True))
        if landkreise:
            counts = _split(land.gemeinden - land.kreisfreie, len(landkreise), rng)
            for kreis, count in zip(landkreise, counts, strict=True):
                out.extend(
                    Municipality(ars, kreis, False)
                    for ars in _landkreis_gemeinden(kreis, count, land.verband_share, rng)
                )
    return out


def generate_national_table(
    *, max_rules: int = 200_000, leistungen: int = len(LEISTUNGEN), seed: int = 2024
) -> RouteTable:
    if not 1 <= leistungen <= len(LEISTUNGEN):
        raise ValueError(f"leistungen must be between 1 and {len(LEISTUNGEN)}")
    if max_rules < 1:
        raise ValueError("max_rules must be positive")
    chosen = LEISTUNGEN[:leistungen]
    municipalities = generate_municipalities(seed)
    rng = random.Random(seed + 1)
    tenants: dict[str, Tenant] = {}
    rules: list[Rule] = []

    def tenant(tenant_id: str, name: str, backends: tuple[str, ...]) -> str:
        tenants[tenant_id] = Tenant(id=tenant_id, name=name, backends=backends)
        return tenant_id

    def rule(**fields: Any) -> None:
        rules.append(Rule(**fields))

    for land in LAENDER:
        land_id = tenant(f"land-{land.code}", land.name, ("poststelle",))
        rule(ars=land.code, tenant=land_id, backend="poststelle")
    kreise = sorted({m.kreis for m in municipalities})
    for kreis in kreise:
        kreis_id = tenant(f"k-{kreis}", f"Kreis {kreis}", ("fachverfahren", "bauaufsicht"))
        rule(ars=kreis, tenant=kreis_id, backend="fachverfahren")
        for leistung in chosen:
            if leistung.kreis_level:
                rule(ars=kreis, leistung=leistung.key, tenant=kreis_id, backend="bauaufsicht")
    successor: dict[str, str] = {}
    previous: str | None = None
    for municipality in municipalities:
        gemeinde_id = tenant(f"g-{municipality.ars}", f"Gemeinde {municipality.ars}", ("fv",))
        if previous is not None and rng.random() < 0.002:
            successor[municipality.ars] = previous
        previous = gemeinde_id
    for leistung in chosen:
        if leistung.kreis_level:
            continue
        for municipality in municipalities:
            own = f"g-{municipality.ars}"
            merged_into = successor.get(municipality.ars)
            if merged_into is None:
                rule(ars=municipality.ars, leistung=leistung.key, tenant=own, backend="fv")
                continue
            rule(
                ars=municipality.ars,
                leistung=leistung.key,
                tenant=own,
                backend="fv",
                valid_until=MERGER_DATE,
            )
            rule(
                ars=municipality.ars,
                leistung=leistung.key,
                tenant=merged_into,
                backend="fv",
                valid_from=MERGER_DATE,
            )
    return RouteTable(tenants=tenants, rules=tuple(rules[:max_rules]))


def write_national_table(
    folder: Path, *, max_rules: int = 200_000, leistungen: int = len(LEISTUNGEN), seed: int = 2024
) -> list[Path]:
    """Write ``national.yaml`` (tenants, pointing at the CSV) and ``national-rules.csv``."""
    import yaml

    table = generate_national_table(max_rules=max_rules, leistungen=leistungen, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "national-rules.csv"
    csv_path.write_text(dump_csv(table), encoding="utf-8")
    yaml_path = folder / "national.yaml"
    document = {
        "tenants": {
            t.id: {"name": t.name, "backends": list(t.backends)} for t in table.tenants.values()
        },
        "rules_csv": csv_path.name,
    }
    yaml_path.write_text(
        "# generated by 'poststelle routes generate'\n"
        + yaml.safe_dump(document, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return [yaml_path, csv_path]


if __name__ == "__main__":
    # python -m poststelle.routing.table.generator [FOLDER [MAX_RULES]]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("national")
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    for written in write_national_table(target, max_rules=limit):
        print(written)
