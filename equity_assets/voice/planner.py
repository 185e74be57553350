"""Which of the eligible leads to call on this tick: the gate, then the concurrency caps and the budget.

Pure, like the gate: the asset feeds it the candidates the SQL pre-filter found and the numbers of
calls still open, and places exactly the calls it returns. Caps: at most ``per_broker_cap`` open
calls per broker and ``global_cap`` in all (the seed runs 100 at once); ``budget`` calls per tick
spreads a day's calls over the window instead of dialling everyone at 08:00.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .gate import DEFAULT_MIN_GAP, CallFacts, GateDecision, evaluate, reason_code


@dataclass(frozen=True)
class CallCaps:
    per_broker: int = 10
    global_open: int = 100
    budget: int = 25
    min_gap: timedelta = DEFAULT_MIN_GAP


@dataclass
class CallPlan:
    chosen: list[CallFacts] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)  # by reason code; one lead may count several
    refused_leads: int = 0
    deferred: Counter[str] = field(default_factory=Counter)  # allowed, but over a cap this tick
    decisions: dict[str, GateDecision] = field(default_factory=dict)


def plan_calls(candidates: Iterable[CallFacts], at: datetime, *, open_by_broker: Mapping[str, int],
               open_total: int, caps: CallCaps = CallCaps()) -> CallPlan:
    """Gate every candidate; choose the allowed ones in order until a cap or the budget is reached."""
    plan = CallPlan()
    per_broker = Counter({k: v for k, v in open_by_broker.items()})
    total = open_total
    for facts in candidates:
        decision = evaluate(facts, at, min_gap=caps.min_gap)
        plan.decisions[facts.lead_id] = decision
        if not decision.allowed:
            plan.refused_leads += 1
            plan.refusals.update({reason_code(r) for r in decision.reasons})
            continue
        if len(plan.chosen) >= caps.budget:
            plan.deferred["tick_budget"] += 1
        elif total >= caps.global_open:
            plan.deferred["global_concurrency_cap"] += 1
        elif per_broker[facts.broker_id or ""] >= caps.per_broker:
            plan.deferred["broker_concurrency_cap"] += 1
        else:
            plan.chosen.append(facts)
            per_broker[facts.broker_id or ""] += 1
            total += 1
    return plan
