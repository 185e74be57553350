"""Deterministic synthetic PropStream exports with known duplicate truth, for tests and benchmarks.

`write_propstream_csv(path, rows)` writes a CSV with the 42 PropStream headers and real-looking
values: company owners (`… Llc`) with no first name, APNs with spaces and colons
(`DERB M:11 B:4 L:45`), ZIPs that lost their leading zero in an Excel round-trip (`6418`),
`MM/DD/YYYY` list dates, quoted property types with commas, CRLF line ends.

About `dup_rate` of the rows repeat an earlier *entity* (a distinct property), either exactly or
as a variant a human or another list vendor would produce: different case, punctuation
(`St.`, commas), spelled-out suffixes and directionals (`Street`/`St`, `North`/`N`), another unit
designator or the unit moved into the address line (`Apt 4`/`#4`/`Unit 4`), doubled spaces, a
ZIP that lost (or kept) its leading zero or gained a +4. `SyntheticTruth.entity_ids` gives the
true entity of every data row so a benchmark can score pairwise dedupe precision and recall.

Entities are distinct by construction: no two share (ZIP, directional, street, suffix, house
number, unit), so no two normalize to the same address. Everything is vectorized with numpy so
a million rows take seconds; the same `(rows, dup_rate, seed)` always writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import Final

import numpy as np
import pandas as pd

from equity_assets.ingest.columns import PROPSTREAM_HEADERS

# --- vocabularies -------------------------------------------------------------------------------
# (city, state, county, first ZIP, number of ZIPs). New England and New Jersey ZIPs start with 0,
# which is what an Excel round-trip strips.
_PLACES: Final = (
    ("Derby", "CT", "New Haven", 6418, 1), ("Ansonia", "CT", "New Haven", 6401, 1),
    ("Shelton", "CT", "Fairfield", 6484, 1), ("Waterbury", "CT", "New Haven", 6702, 7),
    ("Bridgeport", "CT", "Fairfield", 6604, 5), ("New Britain", "CT", "Hartford", 6051, 3),
    ("Springfield", "MA", "Hampden", 1103, 7), ("Worcester", "MA", "Worcester", 1602, 9),
    ("Lowell", "MA", "Middlesex", 1850, 5), ("Brockton", "MA", "Plymouth", 2301, 2),
    ("Newark", "NJ", "Essex", 7102, 7), ("Paterson", "NJ", "Passaic", 7501, 5),
    ("Trenton", "NJ", "Mercer", 8608, 4), ("Camden", "NJ", "Camden", 8102, 4),
    ("Manchester", "NH", "Hillsborough", 3101, 4), ("Nashua", "NH", "Hillsborough", 3060, 5),
    ("Portland", "ME", "Cumberland", 4101, 3), ("Providence", "RI", "Providence", 2903, 7),
    ("Burlington", "VT", "Chittenden", 5401, 1), ("Yonkers", "NY", "Westchester", 10701, 5),
    ("Buffalo", "NY", "Erie", 14201, 16), ("Allentown", "PA", "Lehigh", 18101, 4),
    ("Erie", "PA", "Erie", 16501, 11), ("Tampa", "FL", "Hillsborough", 33602, 18),
    ("Orlando", "FL", "Orange", 32801, 12), ("Jacksonville", "FL", "Duval", 32202, 10),
    ("Ocala", "FL", "Marion", 34470, 13), ("Houston", "TX", "Harris", 77002, 40),
    ("San Antonio", "TX", "Bexar", 78201, 30), ("El Paso", "TX", "El Paso", 79901, 12),
    ("Phoenix", "AZ", "Maricopa", 85003, 40), ("Tucson", "AZ", "Pima", 85701, 19),
    ("Sacramento", "CA", "Sacramento", 95811, 28), ("Fresno", "CA", "Fresno", 93701, 28),
    ("Riverside", "CA", "Riverside", 92501, 9), ("Akron", "OH", "Summit", 44301, 20),
    ("Toledo", "OH", "Lucas", 43604, 12), ("Macon", "GA", "Bibb", 31201, 17),
    ("Savannah", "GA", "Chatham", 31401, 19), ("Greensboro", "NC", "Guilford", 27401, 10),
    ("Flint", "MI", "Genesee", 48502, 6), ("Henderson", "NV", "Clark", 89002, 12),
    ("Pueblo", "CO", "Pueblo", 81001, 8), ("Knoxville", "TN", "Knox", 37902, 20),
    ("Peoria", "IL", "Peoria", 61602, 14), ("Spokane", "WA", "Spokane", 99201, 24),
)
# Street names avoid words that are themselves suffixes or directionals (Park, Hill, North…),
# so distinct streets stay distinct after normalization.
_STREET_NAMES: Final = (
    "Main", "Oak", "Maple", "Cedar", "Elm", "Pine", "Walnut", "Chestnut", "Birch", "Spruce",
    "Willow", "Hickory", "Sycamore", "Magnolia", "Dogwood", "Poplar", "Aspen", "Juniper",
    "Washington", "Lincoln", "Jefferson", "Madison", "Monroe", "Jackson", "Adams", "Franklin",
    "Hamilton", "Grant", "Wilson", "Roosevelt", "Kennedy", "Cleveland", "Harrison", "Tyler",
    "Church", "School", "Academy", "Liberty", "Union", "Prospect", "Pleasant", "Highland",
    "Sunset", "Sunrise", "Riverside", "Lakeview", "Fairview", "Bellevue", "Grandview",
    "Hillcrest", "Woodland", "Meadowbrook", "Brookside", "Stonegate", "Foxhall", "Kingsley",
    "Ashford", "Bradford", "Carlisle", "Danbury", "Easton", "Fairfield", "Glendale", "Hartwell",
    "Irving", "Jasper", "Kendall", "Lafayette", "Marion", "Newton", "Oxford", "Pemberton",
    "Quincy", "Radcliffe", "Sheffield", "Thornton", "Upton", "Vernon", "Whitney", "Yardley",
    "Amherst", "Berkshire", "Chatham", "Dorchester", "Essex", "Granby", "Hampton", "Ingram",
    "Kirkwood", "Lexington", "Middlesex", "Norfolk", "Orchard", "Pinecrest", "Rosewood",
    "Sherwood", "Tremont", "Valley View", "Westfield", "Wexford", "Old Farm", "Cherry Blossom",
    "Martin Luther King", "Red Oak", "Silver Birch", "Indian Trail", "Deer Run", "Quail Hollow",
    "Copper Beech", "Fox Chase", "Mill Pond", "Saint Andrews", "Twin Oaks", "Apple Blossom",
    "Heritage", "Colonial", "Revere", "Putnam", "Hancock", "Sumner", "Winthrop", "Endicott",
)
# (full, abbreviation) pairs: the USPS spellings both sides of a duplicate may use.
_SUFFIXES: Final = (
    ("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Drive", "Dr"), ("Lane", "Ln"),
    ("Court", "Ct"), ("Boulevard", "Blvd"), ("Place", "Pl"), ("Terrace", "Ter"),
    ("Circle", "Cir"), ("Parkway", "Pkwy"), ("Trail", "Trl"), ("Highway", "Hwy"),
    ("Way", "Way"),
)
_DIRECTIONALS: Final = (("North", "N"), ("South", "S"), ("East", "E"), ("West", "W"))
_UNIT_STYLES: Final = ("{u}", "Apt {u}", "Unit {u}", "#{u}", "Ste {u}", "APT. {u}", "# {u}")
_FIRST_NAMES: Final = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Karen", "Charles", "Sarah", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Sandra",
    "Anthony", "Betty", "Mark", "Ashley", "Donald", "Emily", "Steven", "Kimberly", "Paul",
    "Margaret", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda",
    "Brian", "Dorothy", "George", "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie",
    "Edward", "Rebecca", "Jason", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Gary",
    "Kathleen", "Nicholas", "Amy", "Eric", "Angela", "Jonathan", "Shirley", "Larry", "Brenda",
    "José", "María", "Luis", "Rosa", "Nguyen", "Mei", "Raj", "Priya", "Jean-Paul", "Zoë",
)
_LAST_NAMES: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "O'Brien",
    "McDonald", "Peña", "Núñez", "D'Angelo", "St. Pierre", "Van Der Berg", "Kowalski",
)
_COMPANY_WORDS: Final = (
    "Holdings", "Properties", "Investments", "Capital", "Realty", "Ventures", "Homes",
    "Property Group", "Real Estate", "Asset Management", "Family",
)
_COMPANY_FORMS: Final = ("Llc", "LLC", "Inc", "Trust", "LP", "Llc", "Living Trust")
_PROPERTY_TYPES: Final = (
    ("Single Family Residential", 0.74), ("Townhouse", 0.07),
    ("Duplex (2 units, any combination)", 0.06), ("Triplex (3 units, any combination)", 0.02),
    ("Quadruplex (4 units, any combination)", 0.01), ("Mobile/Manufactured Home", 0.05),
    ("Residential-Vacant Land", 0.03), ("Multi-Family Dwellings (Generic, any combination 5+)", 0.02),
)
_MLS_STATUSES: Final = ("Active", "Pending", "Sold", "Expired", "Cancelled", "Withdrawn")
_MARKETING_LISTS: Final = (
    "High Equity", "Absentee Owner", "Senior Owners", "Free And Clear", "Tired Landlords",
    "Pre-Foreclosure", "Vacant", "Long Term Owners", "Cash Buyers",
)
_METHODS_OF_ADD: Final = ("Saved Search", "Manual", "Import", "Auto-Saved")

_QUOTABLE_POSITIONS: Final = tuple(
    PROPSTREAM_HEADERS.index(h)
    for h in ("Address", "Unit #", "Owner 1 Last Name", "Owner 2 Last Name", "Company Name",
              "Mailing Care of Name", "Mailing Address", "Property Type", "Marketing Lists")
)

# Variant flags of a duplicate row (0 = exact repeat).
CASE, PUNCT, SPELLING, UNIT, SPACES, ZIP = 1, 2, 4, 8, 16, 32
_VARIANT_FLAGS: Final = (CASE, PUNCT, SPELLING, UNIT, SPACES, ZIP)


@dataclass(frozen=True)
class PairwiseScores:
    """Pairwise dedupe quality: a pair of rows is 'predicted' when both got the same cluster."""

    precision: float
    recall: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int


@dataclass(frozen=True)
class SyntheticTruth:
    """Ground truth of a synthetic export.

    `entity_ids[i]` is the entity of data row i (row_number i + 1), numbered 0.. in order of first
    appearance; `variants[i]` is the bit set of variant flags used (0 for originals and exact
    repeats); `is_duplicate[i]` is true for every row after the first of its entity.
    """

    entity_ids: np.ndarray
    variants: np.ndarray
    is_duplicate: np.ndarray

    @property
    def rows(self) -> int:
        """Number of data rows in the file."""
        return int(self.entity_ids.size)

    @property
    def n_entities(self) -> int:
        """Number of distinct properties."""
        return int(self.entity_ids.max()) + 1 if self.entity_ids.size else 0

    def true_pairs(self) -> int:
        """Number of unordered row pairs that are the same entity."""
        return _pair_count(np.bincount(self.entity_ids))

    def pairwise_scores(self, predicted_cluster_ids: np.ndarray | pd.Series) -> PairwiseScores:
        """Score a dedupe result given one cluster id per data row (any hashable ids)."""
        predicted = pd.factorize(pd.Series(np.asarray(predicted_cluster_ids)), use_na_sentinel=False)[0]
        if predicted.size != self.rows:
            raise ValueError(f"need {self.rows} cluster ids, got {predicted.size}")
        joint = predicted.astype(np.int64) * (self.n_entities + 1) + self.entity_ids
        correct = _pair_count(np.unique(joint, return_counts=True)[1])
        predicted_pairs = _pair_count(np.bincount(predicted))
        true_pairs = self.true_pairs()
        return PairwiseScores(
            precision=correct / predicted_pairs if predicted_pairs else 1.0,
            recall=correct / true_pairs if true_pairs else 1.0,
            true_pairs=true_pairs,
            predicted_pairs=predicted_pairs,
            correct_pairs=correct,
        )


def _pair_count(group_sizes: np.ndarray) -> int:
    """Sum of n·(n-1)/2 over group sizes."""
    sizes = group_sizes.astype(np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


# --- entities -----------------------------------------------------------------------------------
@dataclass
class _Entities:
    """Column arrays describing each distinct property (one element per entity)."""

    zip_idx: np.ndarray
    street_idx: np.ndarray
    house: np.ndarray
    unit: np.ndarray  # 0 = no unit


def _zip_table() -> pd.DataFrame:
    """One row per ZIP: city, state, county and the 5-digit ZIP text."""
    records = [
        (city, state, county, f"{first + offset:05d}")
        for city, state, county, first, count in _PLACES
        for offset in range(count)
    ]
    return pd.DataFrame(records, columns=["city", "state", "county", "zip5"])


def _street_table() -> pd.DataFrame:
    """Every (directional, name, suffix) combination; index = street id."""
    directional = np.arange(len(_DIRECTIONALS) + 1)  # last value = no directional
    names = np.arange(len(_STREET_NAMES))
    suffixes = np.arange(len(_SUFFIXES))
    d, n, s = (a.ravel() for a in np.meshgrid(directional, names, suffixes, indexing="ij"))
    return pd.DataFrame({"dir": d, "name": n, "suffix": s})


def _draw_entities(rng: np.random.Generator, count: int, n_zips: int, n_streets: int) -> _Entities:
    """Draw `count` entities with pairwise-distinct address keys (oversample, keep first of each)."""
    draw = count + count // 20 + 64
    while True:
        zip_idx = rng.integers(0, n_zips, draw)
        # Street ids are dir * per_dir + (name, suffix); most streets have no directional.
        per_dir = n_streets // (len(_DIRECTIONALS) + 1)
        p_dir = [0.06] * len(_DIRECTIONALS) + [1 - 0.06 * len(_DIRECTIONALS)]
        street_dir = rng.choice(len(_DIRECTIONALS) + 1, draw, p=p_dir)
        street_idx = street_dir * per_dir + rng.integers(0, per_dir, draw)
        house = rng.integers(1, 9_999, draw)
        has_unit = rng.random(draw) < 0.12
        unit = np.where(has_unit, rng.integers(1, 60, draw), 0)
        # Units cluster into few buildings per street, like real condo blocks.
        house = np.where(has_unit, (house % 40) * 10 + 5, house)
        key = ((zip_idx.astype(np.int64) * n_streets + street_idx) * 10_000 + house) * 64 + unit
        _, first = np.unique(key, return_index=True)
        if first.size >= count:
            keep = np.sort(first)[:count]  # keep the random draw order
            return _Entities(zip_idx[keep], street_idx[keep], house[keep], unit[keep])
        draw *= 2


# --- rendering helpers --------------------------------------------------------------------------
def _take(vocab: tuple[str, ...] | list[str] | np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Vocabulary strings at `idx`, as an object array."""
    return np.asarray(vocab, dtype=object)[idx]


def _ints(values: np.ndarray) -> np.ndarray:
    """Integers as decimal text (object array)."""
    return np.asarray(values.astype(np.int64).astype(str), dtype=object)


def _padded(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers below 10**width as zero-padded text, via a lookup table."""
    table = np.asarray([f"{i:0{width}d}" for i in range(10**width)], dtype=object)
    return table[values]


def _blank_where(text: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`text` with '' where `mask` is set."""
    return np.where(mask, "", text).astype(object)


def _date_text(day_offsets: np.ndarray, start: str, fmt: str) -> np.ndarray:
    """Dates `start + day_offsets` formatted with `fmt`, via a lookup table of the range used."""
    span = int(day_offsets.max()) + 1 if day_offsets.size else 1
    table = pd.date_range(start, periods=span, freq="D").strftime(fmt).to_numpy(dtype=object)
    return table[day_offsets]


def _csv_field(text: np.ndarray) -> np.ndarray:
    """Quote the values that need it under RFC 4180 (comma, quote, CR or LF inside)."""
    return np.asarray([_quote(value) for value in text], dtype=object)


def _quote(value: str) -> str:
    """One RFC 4180 field."""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _apply(text: np.ndarray, mask: np.ndarray, func) -> np.ndarray:
    """Apply a str -> str function to the masked elements only."""
    out = text.copy()
    idx = np.flatnonzero(mask)
    out[idx] = [func(value) for value in text[idx]]
    return out


def _spread_spaces(value: str) -> str:
    """Double the inner spaces and pad both ends, like a sloppy hand edit."""
    return " " + value.replace(" ", "  ") + " "


# --- the generator ------------------------------------------------------------------------------
def write_propstream_csv(
    path: str | PathLike[str], rows: int, *, dup_rate: float = 0.15, seed: int = 0
) -> SyntheticTruth:
    """Write a synthetic PropStream export of `rows` data rows to `path`; return its truth.

    About `dup_rate` of the rows repeat an earlier entity (exactly or as a variant); the rest are
    distinct properties. Deterministic in `(rows, dup_rate, seed)`.
    """
    if rows < 0 or not 0.0 <= dup_rate < 1.0:
        raise ValueError("rows must be >= 0 and 0 <= dup_rate < 1")
    rng = np.random.default_rng(seed)
    n_dups = int(round(rows * dup_rate))
    n_entities = rows - n_dups
    if n_entities == 0 and rows > 0:
        n_entities, n_dups = 1, rows - 1

    zips = _zip_table()
    streets = _street_table()
    entities = _draw_entities(rng, n_entities, len(zips), len(streets))
    entity_ids, is_dup = _row_order(rng, n_entities, n_dups)
    variants = _variant_flags(rng, is_dup)

    columns = _render_rows(rng, entities, entity_ids, variants, zips, streets)
    _write_csv(path, columns)
    return SyntheticTruth(entity_ids=entity_ids, variants=variants, is_duplicate=is_dup)


def _row_order(rng: np.random.Generator, n_entities: int, n_dups: int) -> tuple[np.ndarray, np.ndarray]:
    """Entity of each row, duplicates placed somewhere after their entity's first row."""
    dup_of = rng.integers(0, max(n_entities, 1), n_dups)
    # Sort keys: an original sits at key e, a duplicate of e somewhere in (e + 0.5, n_entities).
    dup_keys = dup_of + 0.5 + rng.random(n_dups) * (n_entities - dup_of - 0.5)
    keys = np.concatenate([np.arange(n_entities, dtype=np.float64), dup_keys])
    order = np.argsort(keys, kind="stable")
    entity_ids = np.concatenate([np.arange(n_entities), dup_of]).astype(np.int64)[order]
    is_dup = np.concatenate([np.zeros(n_entities, bool), np.ones(n_dups, bool)])[order]
    return entity_ids, is_dup


def _variant_flags(rng: np.random.Generator, is_dup: np.ndarray) -> np.ndarray:
    """Variant bit set per row: a quarter of duplicates are exact, the rest get 1-3 variants."""
    n = is_dup.size
    flags = np.zeros(n, dtype=np.int64)
    for bit in _VARIANT_FLAGS:
        flags |= np.where(rng.random(n) < 0.3, bit, 0)
    exact = rng.random(n) < 0.25
    return np.where(is_dup & ~exact, flags, 0).astype(np.int64)


def _render_rows(
    rng: np.random.Generator,
    ent: _Entities,
    entity_ids: np.ndarray,
    variants: np.ndarray,
    zips: pd.DataFrame,
    streets: pd.DataFrame,
) -> list[np.ndarray]:
    """All 42 columns as arrays of CSV-ready field text, in PropStream header order."""
    n_ent = ent.zip_idx.size
    n = entity_ids.size
    e = entity_ids
    has = lambda flag: (variants & flag) != 0  # noqa: E731 - tiny local predicate

    # Per-entity base style: how the "first" source spelled this property.
    base_full_suffix = rng.random(n_ent) < 0.08
    base_unit_style = rng.choice(4, n_ent, p=[0.55, 0.2, 0.15, 0.1])  # "4", "Apt 4", "Unit 4", "#4"
    base_lost_zero = rng.random(n_ent) < 0.5

    zip_row = ent.zip_idx[e]
    street = streets.iloc[ent.street_idx[e]]
    dir_idx = street["dir"].to_numpy()
    has_dir = dir_idx < len(_DIRECTIONALS)
    full_spelling = base_full_suffix[e] ^ has(SPELLING)
    punct = has(PUNCT)

    dir_full = _take([d[0] for d in _DIRECTIONALS] + [""], dir_idx)
    dir_abbr = _take([d[1] for d in _DIRECTIONALS] + [""], dir_idx)
    dir_abbr = np.where(punct & has_dir, dir_abbr + ".", dir_abbr)
    directional = np.where(full_spelling, dir_full, dir_abbr)
    suffix_idx = street["suffix"].to_numpy()
    suffix_abbr = _take([s[1] for s in _SUFFIXES], suffix_idx)
    suffix_abbr = np.where(punct, suffix_abbr + ".", suffix_abbr)
    suffix = np.where(full_spelling, _take([s[0] for s in _SUFFIXES], suffix_idx), suffix_abbr)
    name = _take(_STREET_NAMES, street["name"].to_numpy())
    house = _ints(ent.house[e])

    address = house + " " + np.where(has_dir, directional + " ", "") + name + " " + suffix

    # Units: the original keeps the unit in "Unit #"; a UNIT variant re-spells it and may move it
    # into the address line.
    unit_num = ent.unit[e]
    has_unit = unit_num > 0
    unit_style = np.where(has(UNIT), rng.integers(0, len(_UNIT_STYLES), n), base_unit_style[e])
    inline = has(UNIT) & (rng.random(n) < 0.5) & has_unit
    # "1200 Heritage Hwy 31" / "County Rd 5" read as route numbers: inline units there need a
    # designator (normalize treats a bare trailing number as a unit only after other suffixes).
    route = np.isin(suffix_idx, [[s[0] for s in _SUFFIXES].index(word) for word in ("Highway", "Road")])
    unit_style = np.where(inline & route & (unit_style == 0), 1, unit_style)
    unit_text = np.asarray(
        [_UNIT_STYLES[s].format(u=u) if u else "" for s, u in zip(unit_style.tolist(), unit_num.tolist())],
        dtype=object,
    )
    separator = np.where(punct, ", ", " ")
    address = np.where(inline, address + separator + unit_text, address).astype(object)
    unit_column = np.where(inline, "", unit_text).astype(object)

    upper = has(CASE) & (rng.random(n) < 0.5)
    lower = has(CASE) & ~upper
    address = _apply(address, upper, str.upper)
    address = _apply(address, lower, str.lower)
    unit_column = _apply(unit_column, has(CASE), str.lower)
    address = _apply(address, has(SPACES), _spread_spaces)

    city = _take(zips["city"].to_numpy(), zip_row)
    city = _apply(city, upper, str.upper)
    state = _take(zips["state"].to_numpy(), zip_row)
    county = _take(zips["county"].to_numpy(), zip_row)
    zip5 = _take(zips["zip5"].to_numpy(), zip_row)
    zip_text = _zip_spellings(rng, zip5, base_lost_zero[e], has(ZIP))

    apn = _apn_text(ent, zips)[e]
    apn = _apply(apn, has(CASE), str.lower)
    apn = _apply(apn, has(SPACES), lambda v: v.replace(" ", "  "))

    owner = _owner_columns(rng, n_ent)
    owner_row = {key: values[e] for key, values in owner.items()}
    occupied = owner_row["occupied"]
    mailing = _mailing_columns(rng, n_ent, zips, streets)
    mailing_row = {key: values[e] for key, values in mailing.items()}
    for key, value in (("address", address), ("unit", unit_column), ("city", city),
                       ("state", state), ("zip", zip_text), ("county", county)):
        mailing_row[key] = np.where(occupied, value, mailing_row[key]).astype(object)

    facts = _property_facts(rng, n_ent, ent.unit > 0)
    facts_row = {key: values[e] for key, values in facts.items()}
    listing = _listing_columns(rng, n)

    columns = [
        address, unit_column, city, state, zip_text, county, apn,
        np.where(occupied, "Yes", "No").astype(object),
        owner_row["first"], owner_row["last"], owner_row["company"],
        owner_row["first2"], owner_row["last2"], mailing_row["care_of"],
        mailing_row["address"], mailing_row["unit"], mailing_row["city"], mailing_row["state"],
        mailing_row["zip"], mailing_row["county"], owner_row["do_not_mail"],
        facts_row["property_type"], facts_row["bedrooms"], facts_row["bathrooms"],
        facts_row["building_sqft"], facts_row["lot_sqft"], facts_row["year_built"],
        facts_row["assessed"], facts_row["sale_date"], facts_row["sale_amount"],
        facts_row["open_loans"], facts_row["balance"], facts_row["value"], facts_row["ltv"],
        facts_row["equity"], facts_row["mls_status"], facts_row["mls_date"],
        facts_row["mls_amount"], facts_row["lien"],
        listing["lists"], listing["date_added"], listing["method"],
    ]
    # Only free-text columns can hold a comma or quote; the rest are digits and plain words.
    for position in _QUOTABLE_POSITIONS:
        columns[position] = _csv_field(np.asarray(columns[position], dtype=object))
    return [np.asarray(column, dtype=object) for column in columns]


def _zip_spellings(
    rng: np.random.Generator, zip5: np.ndarray, base_lost_zero: np.ndarray, zip_variant: np.ndarray
) -> np.ndarray:
    """ZIP text per row: leading-zero ZIPs lose the zero in about half the sources (Excel)."""
    leading_zero = np.asarray([z.startswith("0") for z in zip5], dtype=bool)
    lost = leading_zero & (base_lost_zero ^ zip_variant)
    text = np.where(lost, np.asarray([z[1:] for z in zip5], dtype=object), zip5).astype(object)
    plus4 = zip_variant & ~leading_zero
    plus4_text = _ints(rng.integers(1000, 9999, zip5.size))
    return np.where(plus4, text + "-" + plus4_text, text).astype(object)


def _apn_text(ent: _Entities, zips: pd.DataFrame) -> np.ndarray:
    """A unique APN per entity, formatted the way its state's assessors write them."""
    n = np.arange(ent.zip_idx.size, dtype=np.int64)
    number = (n * 7919 + 12345) % 10_000_000  # a bijection on [0, 1e7): unique, not sequential
    state = zips["state"].to_numpy()[ent.zip_idx]
    town = np.asarray([c.replace(" ", "")[:4].upper() for c in zips["city"]], dtype=object)[ent.zip_idx]
    a, b, c = number // 10_000, (number // 100) % 100, number % 100
    map_block_lot = town + " M:" + _ints(a) + " B:" + _ints(b) + " L:" + _ints(c)
    dashed = _padded(number // 1_000_000, 3) + "-" + _padded((number // 1000) % 1000, 3) + "-" + _padded(number % 1000, 3)
    spaced = _padded(number // 100_000, 4) + " " + _padded((number // 1000) % 100, 2) + " " + _padded(number % 1000, 3)
    new_england = np.isin(state, ["CT", "MA", "RI", "VT", "NH", "ME"])
    spaced_states = np.isin(state, ["NJ", "PA", "NY", "OH", "MI", "IL"])
    apn = np.where(new_england, map_block_lot, np.where(spaced_states, spaced, dashed)).astype(object)
    return _blank_where(apn, (number % 37) == 0)  # a few parcels have no APN in the export


def _owner_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Owner names: people (some with a second owner) or companies with no first name."""
    company = rng.random(n) < 0.1
    last = _take(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), n))
    first = _take(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), n))
    company_name = (
        _take(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), n)) + " "
        + _take(_COMPANY_WORDS, rng.integers(0, len(_COMPANY_WORDS), n)) + " "
        + _take(_COMPANY_FORMS, rng.integers(0, len(_COMPANY_FORMS), n))
    )
    second = ~company & (rng.random(n) < 0.35)
    first2 = _take(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), n))
    return {
        "company": _blank_where(company_name, ~company),
        "first": _blank_where(first, company),
        "last": _blank_where(last, company),
        "first2": _blank_where(first2, ~second),
        "last2": _blank_where(last, ~second),
        "occupied": ~company & (rng.random(n) < 0.65),
        "do_not_mail": np.where(rng.random(n) < 0.03, "Yes", "No").astype(object),
    }


def _mailing_columns(
    rng: np.random.Generator, n: int, zips: pd.DataFrame, streets: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Mailing addresses for absentee owners (occupied rows copy the property address later)."""
    zip_idx = rng.integers(0, len(zips), n)
    street = streets.iloc[rng.integers(0, len(streets), n)]
    name = _take(_STREET_NAMES, street["name"].to_numpy())
    suffix = _take([s[1] for s in _SUFFIXES], street["suffix"].to_numpy())
    po_box = rng.random(n) < 0.07
    address = np.where(
        po_box, "PO Box " + _ints(rng.integers(1, 9999, n)),
        _ints(rng.integers(1, 20_000, n)) + " " + name + " " + suffix,
    ).astype(object)
    zip5 = _take(zips["zip5"].to_numpy(), zip_idx)
    care_of = np.where(
        rng.random(n) < 0.02,
        "C/O " + _take(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), n)) + " "
        + _take(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), n)),
        "",
    ).astype(object)
    return {
        "care_of": care_of,
        "address": address,
        "unit": _blank_where(_ints(rng.integers(1, 300, n)), rng.random(n) > 0.05),
        "city": _take(zips["city"].to_numpy(), zip_idx),
        "state": _take(zips["state"].to_numpy(), zip_idx),
        "zip": np.asarray([z.lstrip("0") if z.startswith("0") else z for z in zip5], dtype=object),
        "county": _take(zips["county"].to_numpy(), zip_idx),
    }


def _property_facts(rng: np.random.Generator, n: int, condo: np.ndarray) -> dict[str, np.ndarray]:
    """Assessor and valuation columns; money as plain integers, LTV as a percent number."""
    names = [t for t, _ in _PROPERTY_TYPES]
    weights = np.asarray([w for _, w in _PROPERTY_TYPES])
    kind = _take(names, rng.choice(len(names), n, p=weights / weights.sum()))
    kind = np.where(condo, "Condominium", kind).astype(object)
    land = kind == "Residential-Vacant Land"

    value = (rng.lognormal(12.4, 0.55, n) // 1000 * 1000).astype(np.int64) + 40_000
    open_loans = rng.choice(4, n, p=[0.38, 0.42, 0.15, 0.05])
    balance = np.where(open_loans > 0, (value * rng.uniform(0.05, 0.95, n)).astype(np.int64), 0)
    ltv = np.round(balance / value * 100, 2)
    ltv_text = np.asarray([f"{v:.2f}".rstrip("0").rstrip(".") for v in ltv.tolist()], dtype=object)
    sold = rng.random(n) < 0.88
    sale_days = rng.integers(0, 40 * 365, n)
    listed = rng.random(n) < 0.12
    lien = rng.random(n) < 0.05
    missing = lambda rate: rng.random(n) < rate  # noqa: E731 - blanks at a given rate

    return {
        "property_type": kind,
        "bedrooms": _blank_where(_ints(rng.integers(1, 7, n)), land | missing(0.03)),
        "bathrooms": _blank_where(
            np.asarray(["1", "1.5", "2", "2.5", "3", "3.5", "4"], dtype=object)[rng.integers(0, 7, n)],
            land | missing(0.03),
        ),
        "building_sqft": _blank_where(_ints(rng.integers(600, 4_500, n)), land),
        "lot_sqft": _ints(rng.integers(1_500, 87_120, n)),
        "year_built": _blank_where(_ints(rng.integers(1900, 2024, n)), land | missing(0.02)),
        "assessed": _ints(value * 7 // 10),
        "sale_date": _blank_where(_date_text(sale_days, "1985-01-01", "%Y-%m-%d"), ~sold),
        "sale_amount": _blank_where(_ints(value * rng.uniform(0.4, 0.9, n) // 100 * 100), ~sold),
        "open_loans": _ints(open_loans),
        "balance": _ints(balance),
        "value": _ints(value),
        "ltv": ltv_text,
        "equity": _ints(value - balance),
        "mls_status": _blank_where(_take(_MLS_STATUSES, rng.integers(0, 6, n)), ~listed),
        "mls_date": _blank_where(_date_text(rng.integers(0, 900, n), "2023-01-01", "%Y-%m-%d"), ~listed),
        "mls_amount": _blank_where(_ints(value * 105 // 100), ~listed),
        "lien": _blank_where(_ints(rng.integers(500, 60_000, n)), ~lien),
    }


def _listing_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-row list membership: a duplicate typically comes from another list on another day."""
    first = rng.integers(0, len(_MARKETING_LISTS), n)
    second = (first + rng.integers(1, len(_MARKETING_LISTS), n)) % len(_MARKETING_LISTS)
    two = rng.random(n) < 0.3
    lists = np.where(
        two, _take(_MARKETING_LISTS, first) + ", " + _take(_MARKETING_LISTS, second),
        _take(_MARKETING_LISTS, first),
    ).astype(object)
    return {
        "lists": lists,
        "date_added": _date_text(rng.integers(0, 1000, n), "2023-01-01", "%m/%d/%Y"),
        "method": _take(_METHODS_OF_ADD, rng.integers(0, len(_METHODS_OF_ADD), n)),
    }


def _write_csv(path: str | PathLike[str], columns: list[np.ndarray], block: int = 100_000) -> None:
    """Write header + rows with CRLF line ends (as Excel and PropStream do), in blocks."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(",".join(_csv_field(np.asarray(PROPSTREAM_HEADERS, dtype=object))) + "\r\n")
        n = columns[0].size if columns else 0
        for start in range(0, n, block):
            parts = [column[start:start + block] for column in columns]
            out.write("".join(",".join(row) + "\r\n" for row in zip(*parts)))
