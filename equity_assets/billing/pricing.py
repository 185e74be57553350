"""The waterfall: each event's price from the price list in effect on its (Pacific) day and its rank
among the broker's events of the same type in the month (graduated volume tiers)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Tier:
    event_type: str
    first_unit: int
    last_unit: int | None
    unit_price: Decimal
    effective_from: date
    effective_to: date | None

    def in_effect(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)

    def covers(self, rank: int) -> bool:
        return self.first_unit <= rank and (self.last_unit is None or rank <= self.last_unit)

    @property
    def label(self) -> str:
        return f"{self.first_unit}+" if self.last_unit is None else f"{self.first_unit}-{self.last_unit}"


@dataclass(frozen=True)
class Event:
    id: str
    event_type: str
    day: date  # Pacific date of occurred_at


class Unpriced(LookupError):
    """No tier of the price list covers an event (its type, day and rank)."""


def price_for(tiers: list[Tier], event_type: str, day: date, rank: int) -> Tier:
    """The tier of the newest price list in effect on ``day`` that covers the ``rank``-th event of the month."""
    current = [t for t in tiers if t.event_type == event_type and t.in_effect(day)]
    if current:
        newest = max(t.effective_from for t in current)
        for tier in current:
            if tier.effective_from == newest and tier.covers(rank):
                return tier
    raise Unpriced(f"no price for {event_type} #{rank} on {day}")


def price_month(tiers: list[Tier], events: list[Event]) -> tuple[list[dict], dict[str, Decimal], list[tuple[Event, str]]]:
    """(line items, unit price per event id, unpriced events with the reason) for one broker's month.

    ``events`` must be in occurrence order: the n-th event of a type is priced at tier n.
    """
    ranks: dict[str, int] = defaultdict(int)
    lines: dict[tuple, dict] = {}
    unit_prices: dict[str, Decimal] = {}
    unpriced: list[tuple[Event, str]] = []
    for event in events:
        ranks[event.event_type] += 1
        try:
            tier = price_for(tiers, event.event_type, event.day, ranks[event.event_type])
        except Unpriced as exc:
            unpriced.append((event, str(exc)))
            continue
        unit_prices[event.id] = tier.unit_price
        key = (event.event_type, tier.label, tier.unit_price, tier.effective_from)
        line = lines.setdefault(key, {"event_type": event.event_type, "tier": tier.label,
                                      "unit_price": str(tier.unit_price), "price_list": str(tier.effective_from),
                                      "quantity": 0, "amount": "0.00"})
        line["quantity"] += 1
        line["amount"] = str((tier.unit_price * line["quantity"]).quantize(Decimal("0.01")))
    order = {"appointment_set": 0, "application_submitted": 1, "loan_funded": 2}
    items = sorted(lines.values(), key=lambda i: (order.get(i["event_type"], 9), i["price_list"], int(i["tier"].rstrip("+").split("-")[0])))
    return items, unit_prices, unpriced
