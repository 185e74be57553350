"""Address lines, units and cities in USPS form; the locality a one-cell address carries.

The normalization policy is described in :mod:`equity_assets.ingest.normalize`.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from equity_assets.ingest.columnar import (
    _NULL_TEXT,
    _blank_to_null,
    _mask,
    _only_where,
    per_distinct,
    _scatter,
    to_arrow,
    to_series,
)

# --- addresses ----------------------------------------------------------------------------------
# USPS Publication 28, appendix C1: standard suffix abbreviation, then the spellings it replaces.
_C1_SUFFIXES: Final = """
ALY ALLEE ALLEY ALLY | ANX ANEX ANNEX ANNX | ARC ARCADE | AVE AV AVEN AVENU AVENUE AVN AVNUE |
BYU BAYOO BAYOU | BCH BEACH | BND BEND | BLF BLUF BLUFF | BLFS BLUFFS | BTM BOT BOTTM BOTTOM |
BLVD BOUL BOULEVARD BOULV | BR BRNCH BRANCH | BRG BRDGE BRIDGE | BRK BROOK | BRKS BROOKS |
BG BURG | BGS BURGS | BYP BYPA BYPAS BYPASS BYPS | CP CAMP CMP | CYN CANYN CANYON CNYN |
CPE CAPE | CSWY CAUSEWAY CAUSWA | CTR CEN CENT CENTER CENTR CENTRE CNTER CNTR | CTRS CENTERS |
CIR CIRC CIRCL CIRCLE CRCL CRCLE | CIRS CIRCLES | CLF CLIFF | CLFS CLIFFS | CLB CLUB |
CMN COMMON | CMNS COMMONS | COR CORNER | CORS CORNERS | CRSE COURSE | CT COURT | CTS COURTS |
CV COVE | CVS COVES | CRK CREEK | CRES CRESCENT CRSENT CRSNT | CRST CREST |
XING CROSSING CRSSNG | XRD CROSSROAD | XRDS CROSSROADS | CURV CURVE | DL DALE | DM DAM |
DV DIV DIVIDE DVD | DR DRIV DRIVE DRV | DRS DRIVES | EST ESTATE | ESTS ESTATES |
EXPY EXP EXPR EXPRESS EXPRESSWAY EXPW | EXT EXTENSION EXTN EXTNSN | EXTS EXTENSIONS |
FLS FALLS | FRY FERRY FRRY | FLD FIELD | FLDS FIELDS | FLT FLAT | FLTS FLATS | FRD FORD |
FRDS FORDS | FRST FOREST FORESTS | FRG FORG FORGE | FRGS FORGES | FRK FORK | FRKS FORKS |
FT FORT FRT | FWY FREEWAY FREEWY FRWAY FRWY | GDN GARDEN GARDN GRDEN GRDN | GDNS GARDENS GRDNS |
GTWY GATEWAY GATEWY GATWAY GTWAY | GLN GLEN | GLNS GLENS | GRN GREEN | GRNS GREENS |
GRV GROV GROVE | GRVS GROVES | HBR HARB HARBOR HARBR HRBOR | HBRS HARBORS | HVN HAVEN |
HTS HT HEIGHTS | HWY HIGHWAY HIGHWY HIWAY HIWY HWAY | HL HILL | HLS HILLS |
HOLW HLLW HOLLOW HOLLOWS HOLWS | INLT INLET | IS ISLAND ISLND | ISS ISLANDS ISLNDS | ISLE ISLES |
JCT JCTION JCTN JUNCTION JUNCTN JUNCTON | JCTS JCTNS JUNCTIONS | KY KEY | KYS KEYS |
KNL KNOL KNOLL | KNLS KNOLLS | LK LAKE | LKS LAKES | LNDG LANDING LNDNG | LN LANE |
LGT LIGHT | LGTS LIGHTS | LF LOAF | LCK LOCK | LCKS LOCKS | LDG LDGE LODG LODGE | LOOP LOOPS |
MNR MANOR | MNRS MANORS | MDW MEADOW | MDWS MDW MEADOWS MEDOWS | ML MILL | MLS MILLS |
MSN MISSN MSSN MISSION | MTWY MOTORWAY | MT MNT MOUNT | MTN MNTAIN MNTN MOUNTAIN MOUNTIN MTIN |
MTNS MOUNTAINS | NCK NECK | ORCH ORCHARD ORCHRD | OVAL OVL | OPAS OVERPASS | PARK PRK PARKS |
PKWY PARKWAY PARKWY PKWAY PKY PARKWAYS PKWYS | PSGE PASSAGE | PATH PATHS | PIKE PIKES |
PNE PINE | PNES PINES | PL PLACE | PLN PLAIN | PLNS PLAINS | PLZ PLAZA PLZA | PT POINT |
PTS POINTS | PRT PORT | PRTS PORTS | PR PRAIRIE PRR | RADL RAD RADIAL RADIEL | RNCH RANCH RANCHES RNCHS |
RPD RAPID | RPDS RAPIDS | RST REST | RDG RDGE RIDGE | RDGS RIDGES | RIV RIVER RVR RIVR |
RD ROAD | RDS ROADS | RTE ROUTE | SHL SHOAL | SHLS SHOALS | SHR SHOAR SHORE | SHRS SHOARS SHORES |
SKWY SKYWAY | SPG SPNG SPRING SPRNG | SPGS SPNGS SPRINGS SPRNGS | SPUR SPURS |
SQ SQR SQRE SQU SQUARE | SQS SQRS SQUARES | STA STATION STATN STN |
STRA STRAV STRAVEN STRAVENUE STRAVN STRVN STRVNUE | STRM STREAM STREME |
ST STREET STRT STR | STS STREETS | SMT SUMIT SUMITT SUMMIT | TER TERR TERRACE | TRWY THROUGHWAY |
TRCE TRACE TRACES | TRAK TRACK TRACKS TRK TRKS | TRFY TRAFFICWAY | TRL TRAIL TRAILS TRLS |
TRLR TRAILER TRLRS | TUNL TUNEL TUNLS TUNNEL TUNNELS TUNNL | TPKE TRNPK TURNPIKE TURNPK |
UPAS UNDERPASS | UN UNION | UNS UNIONS | VLY VALLEY VALLY VLLY | VLYS VALLEYS |
VIA VDCT VIADCT VIADUCT | VW VIEW | VWS VIEWS | VLG VILL VILLAG VILLAGE VILLG VILLIAGE |
VLGS VILLAGES | VL VILLE | VIS VIST VISTA VST VSTA | WALK WALKS | WAY WY | WL WELL | WLS WELLS
"""
_DIRECTIONAL_WORDS: Final = {
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW",
    "SOUTHEAST": "SE", "SOUTHWEST": "SW",
}
# Unit designators (Pub 28 appendix C2) that take an identifier, and those that stand alone.
UNIT_WORDS: Final = (
    "APT", "APARTMENT", "UNIT", "STE", "SUITE", "RM", "ROOM", "SPC", "SPACE", "LOT", "TRLR",
    "FL", "FLOOR", "BLDG", "BUILDING", "DEPT", "HNGR", "HANGAR", "SLIP", "PIER",
)
STANDALONE_UNITS: Final[dict[str, str]] = {
    "BSMT": "BSMT", "BASEMENT": "BSMT", "FRNT": "FRNT", "FRONT": "FRNT", "LBBY": "LBBY",
    "LOBBY": "LBBY", "LOWR": "LOWR", "LOWER": "LOWR", "OFC": "OFC", "OFFICE": "OFC",
    "PH": "PH", "PENTHOUSE": "PH", "REAR": "REAR", "SIDE": "SIDE", "UPPR": "UPPR", "UPPER": "UPPR",
}


def _suffix_table() -> dict[str, str]:
    """Spelling -> USPS standard abbreviation, from the C1 text above."""
    table: dict[str, str] = {}
    for group in _C1_SUFFIXES.split("|"):
        words = group.split()
        for word in words:
            table.setdefault(word, words[0])
    return table


STREET_TOKEN_MAP: Final[dict[str, str]] = {**_suffix_table(), **_DIRECTIONAL_WORDS, "SAINT": "ST"}
_TOKEN_KEYS: Final = pa.array(list(STREET_TOKEN_MAP))
_TOKEN_VALUES: Final = pa.array(list(STREET_TOKEN_MAP.values()))
_STANDALONE_KEYS: Final = pa.array(list(STANDALONE_UNITS))
_STANDALONE_VALUES: Final = pa.array(list(STANDALONE_UNITS.values()))

_UNIT_WORD_ALT: Final = "|".join(UNIT_WORDS)
_STANDALONE_ALT: Final = "|".join(STANDALONE_UNITS)
_IDENT: Final = r"[\p{L}\p{N}]*\p{N}[\p{L}\p{N}]*(?: [\p{L}\p{N}])?|\p{L}{1,2}"
# House number + at least one word, then a designator (or #) and an identifier, at the end.
_LINE_UNIT_RE: Final = rf"^(?P<street>\S+ .+) (?:(?:{_UNIT_WORD_ALT})(?: #)?|#) (?P<unit>{_IDENT})$"
_LINE_STANDALONE_RE: Final = rf"^(?P<street>\S+ \S+ .+) (?P<unit>{_STANDALONE_ALT})$"
_GLUED_RE: Final = rf"\b({_UNIT_WORD_ALT})(\d)"
# A bare number after a street suffix is a unit ("5 MIDDLESEX AVE 25"), except after road types
# that are followed by a route number ("1200 US HWY 1").
_ROUTE_SUFFIXES: Final = frozenset({"HWY", "RTE", "FWY", "EXPY", "TPKE", "PIKE", "BYP", "SKWY", "MTWY", "TRWY", "RD"})
_UNIT_AFTER_SUFFIX_ALT: Final = "|".join(
    sorted((word for word, abbr in _suffix_table().items() if abbr not in _ROUTE_SUFFIXES), key=len, reverse=True)
)
_DIRECTIONAL_ALT: Final = "|".join([*_DIRECTIONAL_WORDS, *_DIRECTIONAL_WORDS.values()])
_BARE_UNIT_RE: Final = (
    rf"^(?P<street>\S+ .+ (?:{_UNIT_AFTER_SUFFIX_ALT})(?: (?:{_DIRECTIONAL_ALT}))?) (?P<unit>\d+[A-Z]?)$"
)
# Lines with anything but upper-case ASCII letters, digits and single inner spaces.
_MESSY_RE: Final = rf"[^A-Z0-9 ]|  |^ | $|\b(?:{_UNIT_WORD_ALT})\d"


def _fold(array: pa.Array) -> pa.Array:
    """Upper-case, accents removed, '.' and apostrophes deleted, other punctuation -> spaces.

    Most address lines are already plain ("123 MAIN ST" once upper-cased); only the others pay
    for the regex chain.
    """
    upper = pc.utf8_upper(array)
    return _blank_to_null(_only_where(upper, pc.match_substring_regex(upper, _MESSY_RE), _fold_messy))


def _fold_messy(upper: pa.Array) -> pa.Array:
    """The full folding chain of `_fold`."""
    text = pc.utf8_normalize(upper, "NFKD")
    text = pc.utf8_upper(pc.replace_substring_regex(text, r"\p{Mn}", ""))
    text = pc.replace_substring_regex(text, r"[.'’`]", "")
    text = pc.replace_substring(text, "#", " # ")
    text = pc.replace_substring_regex(text, r"[^\p{L}\p{N}#]+", " ")
    text = pc.replace_substring_regex(text, _GLUED_RE, r"\1 \2")
    return pc.utf8_trim(text, " ")


def _map_tokens(array: pa.Array) -> pa.Array:
    """Replace every space-separated token found in STREET_TOKEN_MAP by its abbreviation."""
    tokens = pc.split_pattern(array, " ")
    flat = tokens.values
    position = pc.index_in(flat, value_set=_TOKEN_KEYS)
    mapped = pc.if_else(pc.is_valid(position), pc.take(_TOKEN_VALUES, position), flat)
    rebuilt = pa.ListArray.from_arrays(tokens.offsets, mapped, mask=pc.is_null(tokens))
    return pc.binary_join(rebuilt, " ")


def _canonical_unit(folded: pa.Array) -> pa.Array:
    """A folded unit text -> identifier only (``APT 04 B`` -> ``4B``, ``REAR`` stays ``REAR``)."""
    text = pc.replace_substring_regex(folded, rf"^(?:(?:{_UNIT_WORD_ALT})\b ?)*(?:# ?)*", "")
    standalone = pc.index_in(text, value_set=_STANDALONE_KEYS)
    text = pc.if_else(pc.is_valid(standalone), pc.take(_STANDALONE_VALUES, standalone), text)
    text = pc.replace_substring(text, " ", "")
    text = pc.replace_substring_regex(text, r"^0+(\d)", r"\1")
    return _blank_to_null(text)


@per_distinct
def _unit(array: pa.Array) -> pa.Array:
    return _canonical_unit(_fold(array))


def normalize_unit(values: Any) -> pd.Series:
    """Canonical unit identifier from a unit column: ``Apt 4``, ``#4``, ``Unit 4``, ``APT. 4`` -> ``4``."""
    return to_series(_unit(to_arrow(values)))


class StreetParts(NamedTuple):
    """A normalized street line and the canonical unit found at its end (NA if none)."""

    street: pd.Series
    unit: pd.Series


class AddressLine(NamedTuple):
    """An address cell read as parts (Arrow arrays): the normalized street line, the unit cut
    from it, and the locality (city, state, ZIP) when the cell carried a whole address."""

    street: pa.Array
    unit: pa.Array
    city: pa.Array
    state: pa.Array
    zip: pa.Array


def normalize_street(values: Any) -> StreetParts:
    """Normalize address lines for matching (see "Address identity" in the module docstring)."""
    line = parse_address_line(to_arrow(values))
    return StreetParts(to_series(line.street), to_series(line.unit))


def parse_address_line(raw: pa.Array) -> AddressLine:
    """Arrow core of `normalize_street`: fast path for every row, usaddress for the odd ones."""
    folded = _fold(raw)
    street, unit = _cut_unit(folded)
    odd = _needs_usaddress(folded, street)
    nulls = pa.nulls(len(raw), pa.string())
    city = state = zip5 = nulls
    if odd.any():
        street, unit, city, state, zip5 = _reparse_with_usaddress(raw, odd, street, unit)
    return AddressLine(_map_tokens(street), unit, city, state, zip5)


def _cut_unit(folded: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Split a trailing unit designator + identifier (or a standalone designator) off the line."""
    with_id = pc.extract_regex(folded, _LINE_UNIT_RE)
    street = pc.if_else(pc.is_valid(with_id), pc.struct_field(with_id, [0]), folded)
    unit = pc.if_else(pc.is_valid(with_id), pc.struct_field(with_id, [1]), _NULL_TEXT)
    # Standalone designators ("... REAR") are rare: extract only where the line ends in one.
    ends_standalone = pc.and_(pc.is_null(unit), pc.match_substring_regex(folded, rf" (?:{_STANDALONE_ALT})$"))
    rows = np.flatnonzero(_mask(ends_standalone))
    if rows.size:
        found = pc.extract_regex(folded.take(pa.array(rows)), _LINE_STANDALONE_RE)
        hit = _mask(pc.is_valid(found))
        street = _scatter(street, rows[hit], pc.struct_field(found, [0]).filter(pa.array(hit)))
        unit = _scatter(unit, rows[hit], pc.struct_field(found, [1]).filter(pa.array(hit)))
    ends_number = pc.and_(pc.is_null(unit), pc.match_substring_regex(folded, r" \d+[A-Z]?$"))
    rows = np.flatnonzero(_mask(ends_number))
    if rows.size:
        found = pc.extract_regex(folded.take(pa.array(rows)), _BARE_UNIT_RE)
        hit = _mask(pc.is_valid(found))
        street = _scatter(street, rows[hit], pc.struct_field(found, [0]).filter(pa.array(hit)))
        unit = _scatter(unit, rows[hit], pc.struct_field(found, [1]).filter(pa.array(hit)))
    return street, _canonical_unit(unit)


def _needs_usaddress(folded: pa.Array, street: pa.Array) -> np.ndarray:
    """Rows the fast path should not trust: a whole "street city ST 06418" line, or no house number."""
    inline_zip = pc.match_substring_regex(folded, r" [A-Z]{2} \d{3,5}(?: \d{4})?$")
    numbered = pc.match_substring_regex(street, r"^\p{N}")
    return _mask(pc.is_valid(street)) & (~_mask(numbered) | _mask(inline_zip))


_STREET_LABELS: Final = (
    "AddressNumberPrefix", "AddressNumber", "AddressNumberSuffix", "StreetNamePreModifier",
    "StreetNamePreDirectional", "StreetNamePreType", "StreetName", "StreetNamePostType",
    "StreetNamePostDirectional", "USPSBoxType", "USPSBoxID", "USPSBoxGroupType", "USPSBoxGroupID",
    "BuildingName", "CornerOf", "IntersectionSeparator", "SecondStreetName", "SecondStreetNamePostType",
)
_UNIT_LABELS: Final = ("OccupancyType", "OccupancyIdentifier", "SubaddressType", "SubaddressIdentifier")


def _usaddress_line(value: str) -> tuple[str, str, str | None, str | None, str | None] | None:
    """(street, unit, city, state, ZIP) labelled by usaddress, or None when it cannot label the line."""
    import usaddress

    try:
        tagged, _kind = usaddress.tag(value.replace("\n", " ").replace("\r", " "))
    except Exception:  # RepeatedLabelError and friends: the caller keeps the simple string
        return None
    street = " ".join(tagged[label] for label in _STREET_LABELS if label in tagged)
    unit = " ".join(tagged[label] for label in _UNIT_LABELS if label in tagged)
    if not street:
        return None
    return street, unit, tagged.get("PlaceName"), tagged.get("StateName"), tagged.get("ZipCode")


def _reparse_with_usaddress(raw: pa.Array, rows: np.ndarray, street: pa.Array, unit: pa.Array) -> tuple[pa.Array, ...]:
    """Street/unit at `rows` replaced with usaddress' reading (once per distinct raw line), plus
    the city / state / ZIP the line carried (NULL elsewhere)."""
    positions = np.flatnonzero(rows)
    encoded = pc.dictionary_encode(raw.take(pa.array(positions)))
    parsed = [_usaddress_line(value) for value in encoded.dictionary.to_pylist()]

    def part(i: int) -> pa.Array:
        return pc.take(pa.array([p[i] if p else None for p in parsed], type=pa.string()), encoded.indices)

    lib_street, lib_unit = _fold(part(0)), _canonical_unit(_fold(part(1)))
    labelled = _mask(pc.is_valid(lib_street))
    keep = pa.array(labelled)
    at = positions[labelled]
    nulls = pa.nulls(len(raw), pa.string())
    # Keep the fast-path result wherever usaddress could not label the line.
    return (_scatter(street, at, lib_street.filter(keep)), _scatter(unit, at, lib_unit.filter(keep)),
            *(_scatter(nulls, at, _blank_to_null(part(i)).filter(keep)) for i in (2, 3, 4)))


@per_distinct
def _city(array: pa.Array) -> pa.Array:
    return _map_tokens(_fold(array))


def normalize_city(values: Any) -> pd.Series:
    """City for the hash fallback: folded like street lines, tokens abbreviated."""
    return to_series(_city(to_arrow(values)))
