"""Broker assignment: territory, least open load (updated as a chunk is assigned), queueing, unassigned count."""

from __future__ import annotations

from collections import Counter

import pytest

from equity_assets.campaign.assignment import assign_leads

CONTACTABLE = {"verified_at": "2026-01-01", "email_verified": True, "campaign_status": "new"}


@pytest.fixture
def brokers(postgres):
    """``brokers(name=states, ...)`` -> {name: id}; a name starting with "inactive" is inactive."""

    def create(**territories: list[str]) -> dict[str, str]:
        ids = {}
        with postgres.connection() as conn:
            for name, states in territories.items():
                ids[name] = conn.execute(
                    "INSERT INTO brokers (name, territory_states, active) VALUES (%s, %s, %s) RETURNING id::text",
                    (name, states, not name.startswith("inactive")),
                ).fetchone()[0]
        return ids

    return create


@pytest.fixture
def assign(postgres):
    def run():
        with postgres.connection() as conn:
            return assign_leads(conn)

    return run


def load_of(query) -> Counter:
    rows = query("SELECT assigned_broker_id::text, count(*) FROM leads "
                 "WHERE campaign_status IN ('new', 'queued', 'active') AND assigned_broker_id IS NOT NULL GROUP BY 1")
    return Counter(dict(rows))


def test_many_leads_of_one_state_are_spread_by_least_load(brokers, insert_leads, assign, query) -> None:
    b = brokers(busy=["FL"], idle=["FL", "GA"])
    insert_leads([{"assigned_broker_id": b["busy"], "campaign_status": "active"}] * 6)
    insert_leads([{**CONTACTABLE, "property_state": "FL"}] * 20)

    counts = assign()

    assert (counts.assigned, counts.queued, counts.unassigned_no_broker) == (20, 20, 0)
    # one lead at a time to the least loaded: idle catches up to 6, then they alternate (13 / 13)
    assert load_of(query) == Counter({b["busy"]: 13, b["idle"]: 13})


def test_load_carries_across_states(brokers, insert_leads, assign, query) -> None:
    b = brokers(both=["FL", "TX"], texas=["TX"])
    insert_leads([{**CONTACTABLE, "property_state": "FL"}] * 4 + [{**CONTACTABLE, "property_state": "TX"}] * 4)

    assign()

    # FL (first) goes to `both`; in TX `texas` is behind by 4, so it gets all four
    assert load_of(query) == Counter({b["both"]: 4, b["texas"]: 4})


def test_ties_go_to_the_same_broker_every_time(brokers, insert_leads, assign, query) -> None:
    b = brokers(one=["FL"], two=["FL"])
    (lead,) = insert_leads([{**CONTACTABLE, "property_state": "FL"}])
    assign()
    assert query("SELECT assigned_broker_id::text FROM leads WHERE id = %s", (lead,)) == [(min(b.values()),)]


def test_only_active_brokers_covering_the_state_get_leads(brokers, insert_leads, assign, query) -> None:
    b = brokers(florida=["FL"], inactive_georgia=["GA"])
    fl, ga, nowhere = insert_leads([
        {**CONTACTABLE, "property_state": "FL"},
        {**CONTACTABLE, "property_state": "GA"},
        {**CONTACTABLE, "property_state": None},
    ])

    counts = assign()

    assert (counts.assigned, counts.unassigned_no_broker) == (1, 2)
    rows = dict((i, (broker, status)) for i, broker, status in
                query("SELECT id::text, assigned_broker_id::text, campaign_status::text FROM leads"))
    assert rows == {fl: (b["florida"], "queued"), ga: (None, "new"), nowhere: (None, "new")}


def test_queued_needs_a_usable_channel_and_a_broker(brokers, insert_leads, assign, query) -> None:
    b = brokers(florida=["FL"])
    no_channel, phone_only, flagged, has_broker, unverified = insert_leads([
        {**CONTACTABLE, "property_state": "FL", "email_verified": False},
        {**CONTACTABLE, "property_state": "FL", "email_verified": False, "phone_verified": True},
        {**CONTACTABLE, "property_state": "FL", "litigator": True},
        {**CONTACTABLE, "property_state": "GA", "assigned_broker_id": None},  # replaced below
        {"property_state": "FL", "email_verified": True},  # never verified
    ])
    # a lead a broker entered itself (already assigned, outside the territory) is queued once contactable
    query("UPDATE leads SET assigned_broker_id = %s WHERE id = %s RETURNING 1", (b["florida"], has_broker))

    counts = assign()

    status = dict(query("SELECT id::text, campaign_status::text FROM leads"))
    assert status == {no_channel: "new", phone_only: "queued", flagged: "new", has_broker: "queued", unverified: "new"}
    assert (counts.assigned, counts.queued, counts.unassigned_no_broker) == (1, 2, 0)


def test_verified_leads_assigns_after_verifying(candidates, brokers, insert_leads, run_verify, query) -> None:
    homes = candidates(8, lambda c: c.melissa.address_verified and c.state in ("FL", "TX"))
    b = brokers(florida=["FL"])
    insert_leads([h.lead(phone="+13055550100") for h in homes])

    run = run_verify()

    fl = sum(1 for h in homes if h.state == "FL")
    queued = query("SELECT count(*) FROM leads WHERE campaign_status = 'queued' AND assigned_broker_id = %s", (b["florida"],))
    usable_fl = query("SELECT count(*) FROM leads WHERE property_state = 'FL' AND phone_verified")[0][0]
    assert queued == [(usable_fl,)] and 0 < usable_fl <= fl
    assert run.metadata["assigned"] == usable_fl
    assert run.metadata["unassigned_no_broker"] == query("SELECT count(*) FROM leads WHERE property_state = 'TX' AND phone_verified")[0][0]
    assert run.checks()["queued_leads_are_assigned_and_contactable"]
