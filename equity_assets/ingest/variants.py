"""A labelled set of address variants: the same properties as different list vendors write them.

`write_variant_files(folder, entities, seed)` writes two CSVs for the same seed properties:

* ``propstream.csv`` — PropStream-style columns (Address, Unit #, City, State, Zip, owner first /
  last name), every property once, plus some repeats;
* ``vendor.csv`` — another vendor's columns (Property Address, City, State, Zip, Owner Name) with
  variants a human or another vendor produces: street type dropped / abbreviated / spelled out,
  directional spelled out, punctuation and case, ZIP missing / ZIP+4 / leading zero lost / the
  whole "street, city, ST ZIP" in the address cell, the unit written ``Apt 2`` / ``#2`` /
  ``Unit 2`` (in the line or in its own column), the owner as "LAST, FIRST".

Hard negatives are part of the seed set: different houses on the same street (numbers a few apart,
other units in the same building) and the same number and name with another street type in the
same ZIP (7946 S Ashland Ave vs 7946 S Ashland St), which makes a variant without its street type
ambiguous — it must then stay apart. `VariantTruth.entity_of` maps (file, row number) to the
true property, so pairwise precision and recall can be scored on the leads the rows became.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from .synthetic import _DIRECTIONALS, _FIRST_NAMES, _LAST_NAMES, _PLACES, _STREET_NAMES

SUFFIXES = (("Avenue", "Ave"), ("Street", "St"), ("Drive", "Dr"), ("Road", "Rd"), ("Lane", "Ln"),
            ("Court", "Ct"), ("Boulevard", "Blvd"), ("Place", "Pl"), ("Terrace", "Ter"), ("Circle", "Cir"))
PROPSTREAM_HEADER = ("Address", "Unit #", "City", "State", "Zip", "Owner 1 First Name", "Owner 1 Last Name")
VENDOR_HEADER = ("Property Address", "City", "State", "Zip", "Owner Name")


@dataclass(frozen=True)
class Property:
    house: int
    directional: int  # index into _DIRECTIONALS, -1 = none
    name: str
    suffix: int  # index into SUFFIXES
    unit: int  # 0 = none
    city: str
    state: str
    zip5: str
    first: str
    last: str


@dataclass
class VariantTruth:
    """(file name, 1-based data row) -> true property id, for both files."""

    entity_of: dict[tuple[str, int], int] = field(default_factory=dict)


def _properties(rng: random.Random, count: int) -> list[Property]:
    places = [(city, state, f"{first + i:05d}") for city, state, _county, first, n in _PLACES for i in range(n)]
    seen: set[tuple] = set()
    out: list[Property] = []
    while len(out) < count:
        city, state, zip5 = rng.choice(places[:60])  # a few ZIPs, so streets are shared
        name = rng.choice(_STREET_NAMES)
        directional = rng.randrange(len(_DIRECTIONALS)) if rng.random() < 0.25 else -1
        suffix = rng.randrange(len(SUFFIXES))
        house = rng.randrange(1, 9999)
        unit = rng.randrange(1, 40) if rng.random() < 0.1 else 0
        made = [(house, directional, name, suffix, unit)]
        roll = rng.random()
        if roll < 0.10:  # a neighbour: same street, a few numbers away
            made.append((house + rng.choice((2, 4, 6)), directional, name, suffix, unit))
        elif roll < 0.15:  # same building, another unit
            made.append((house, directional, name, suffix, (unit or 1) + rng.randrange(1, 9)))
        elif roll < 0.18:  # same number and name, another street type (makes a typeless line ambiguous)
            made.append((house, directional, name, (suffix + 1) % len(SUFFIXES), unit))
        elif roll < 0.25:  # same number on another street
            made.append((house, directional, rng.choice(_STREET_NAMES), suffix, unit))
        for key in made:
            if (zip5, *key) in seen or len(out) >= count:
                continue
            seen.add((zip5, *key))
            out.append(Property(*key, city, state, zip5, rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)))
    return out


def _line(p: Property, rng: random.Random, *, drop_type: bool = False, long_words: bool = False,
          unit_in_line: bool = True) -> str:
    parts = [str(p.house)]
    if p.directional >= 0:
        parts.append(_DIRECTIONALS[p.directional][0 if long_words else 1])
    parts.append(p.name)
    if not drop_type:
        long, short = SUFFIXES[p.suffix]
        parts.append(long if long_words else (short + "." if rng.random() < 0.2 else short))
    if p.unit and unit_in_line:
        parts.append(rng.choice((f"Apt {p.unit}", f"#{p.unit}", f"Unit {p.unit}", f"APT. {p.unit}")))
    return " ".join(parts)


def _case(text: str, rng: random.Random) -> str:
    return rng.choice((text, text.upper(), text.lower(), text.title()))


def _zip_text(p: Property, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return f"{p.zip5}-{rng.randrange(1000, 9999)}"
    if roll < 0.30 and p.zip5.startswith("0"):
        return p.zip5.lstrip("0")  # an Excel round-trip
    return p.zip5


def _propstream_row(p: Property, rng: random.Random) -> list[str]:
    in_line = rng.random() < 0.5
    unit = "" if in_line or not p.unit else rng.choice((str(p.unit), f"Apt {p.unit}", f"#{p.unit}"))
    return [_case(_line(p, rng, unit_in_line=in_line), rng), unit, p.city, p.state, _zip_text(p, rng),
            p.first, p.last]


def _vendor_row(p: Property, rng: random.Random) -> list[str]:
    line = _line(p, rng, drop_type=rng.random() < 0.12, long_words=rng.random() < 0.4)
    owner = f"{p.last.upper()}, {p.first.upper()}" if rng.random() < 0.5 else f"{p.first} {p.last}"
    roll = rng.random()
    if roll < 0.2:  # the whole address in one cell
        sep = rng.choice((", ", " ", "\n"))
        return [_case(f"{line}{sep}{p.city}, {p.state} {_zip_text(p, rng)}", rng), "", "", "", owner]
    if roll < 0.5:  # no ZIP: city and state only
        return [_case(line, rng), p.city, p.state, "", owner]
    return [_case(line, rng).replace("  ", " "), p.city.upper(), p.state, _zip_text(p, rng), owner]


def write_variant_files(folder: Path, entities: int = 3000, seed: int = 11) -> tuple[list[Path], VariantTruth]:
    """Write the two files (PropStream first) and return their paths and the truth."""
    rng = random.Random(seed)
    props = _properties(rng, entities)
    truth = VariantTruth()
    files = {"propstream.csv": (PROPSTREAM_HEADER, []), "vendor.csv": (VENDOR_HEADER, [])}
    for pid, p in enumerate(props):
        files["propstream.csv"][1].append((pid, _propstream_row(p, rng)))
        if rng.random() < 0.1:  # a repeat within the same vendor's list
            files["propstream.csv"][1].append((pid, _propstream_row(p, rng)))
        for _ in range(rng.choice((0, 1, 1, 2))):
            files["vendor.csv"][1].append((pid, _vendor_row(p, rng)))
    paths = []
    for name, (header, rows) in files.items():
        rng.shuffle(rows)
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for number, (pid, row) in enumerate(rows, start=1):
                writer.writerow(row)
                truth.entity_of[(name, number)] = pid
        paths.append(path)
    return paths, truth
