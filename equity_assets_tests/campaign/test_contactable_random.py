"""Seeded random changes: after every incremental refresh, the set equals a full rebuild.

The full rebuild is the rule written out here in SQL, independently of the product's predicate:
a lead is contactable when it has an email that is verified, a broker, a status of new / queued /
active, no email code that the code map calls unusable or suppressing, and no live suppression.
"""

from __future__ import annotations

import random

import psycopg
import pytest

from .helpers import add_broker, add_leads, materialization_metadata, refresh

FULL_REBUILD = """
SELECT l.id, l.assigned_broker_id, l.email
FROM leads l
WHERE l.email IS NOT NULL
  AND l.email_verified
  AND l.assigned_broker_id IS NOT NULL
  AND l.campaign_status::text IN ('new', 'queued', 'active')
  AND NOT EXISTS (SELECT 1 FROM verification_code_map m
                  WHERE m.channel = 'email' AND m.code = ANY (l.email_codes) AND (m.suppress OR NOT m.usable))
  AND NOT EXISTS (SELECT 1 FROM suppression_list s
                  WHERE s.channel = 'email' AND s.value = l.email AND (s.expires_at IS NULL OR s.expires_at > now()))
"""
STATUSES = ("new", "queued", "active", "replied", "converted", "do_not_contact")
EMAIL_CODES = ("ES01", "ES03", "ES04", "ES06")


@pytest.fixture
def code_map(db):
    """The email codes this test edits, restored afterwards (the code map is seeded, not test data)."""
    saved = db.execute("SELECT code, usable, suppress FROM verification_code_map WHERE code = ANY(%s)",
                       (list(EMAIL_CODES),)).fetchall()
    assert len(saved) == len(EMAIL_CODES)
    yield
    for code, usable, suppress in saved:
        db.execute("UPDATE verification_code_map SET usable = %s, suppress = %s WHERE code = %s",
                   (usable, suppress, code))


class Changes:
    """Random changes of every kind the refresh must notice."""

    def __init__(self, db: psycopg.Connection, rng: random.Random, brokers, emails):
        self.db, self.rng, self.brokers, self.emails = db, rng, brokers, emails
        self.folds = 0

    def lead(self):
        return self.db.execute("SELECT id FROM leads ORDER BY id OFFSET %s LIMIT 1",
                               (self.rng.randrange(self.count()),)).fetchone()[0]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM leads").fetchone()[0]

    def status(self):
        self.db.execute("UPDATE leads SET campaign_status = %s::campaign_status WHERE id = %s",
                        (self.rng.choice(STATUSES), self.lead()))

    def verified(self):
        self.db.execute("UPDATE leads SET email_verified = NOT email_verified WHERE id = %s", (self.lead(),))

    def broker(self):
        self.db.execute("UPDATE leads SET assigned_broker_id = %s WHERE id = %s",
                        (self.rng.choice([*self.brokers, None]), self.lead()))

    def email(self):
        self.db.execute("UPDATE leads SET email = %s WHERE id = %s", (self.rng.choice([*self.emails, None]), self.lead()))

    def codes(self):
        codes = self.rng.sample(EMAIL_CODES, self.rng.randrange(3))
        self.db.execute("UPDATE leads SET email_codes = %s WHERE id = %s", (codes, self.lead()))

    def suppress(self):
        expires = self.rng.choice([None, "now() + interval '1 day'", "now() - interval '1 day'"])
        self.db.execute(
            f"INSERT INTO suppression_list (channel, value, reason, expires_at) "
            f"VALUES ('email', %s, 'random', {expires or 'NULL'}) ON CONFLICT DO NOTHING",
            (self.rng.choice(self.emails),))

    def lift(self):
        self.db.execute("DELETE FROM suppression_list WHERE id = (SELECT id FROM suppression_list "
                        "ORDER BY id OFFSET %s LIMIT 1)", (self.rng.randrange(10),))

    def edit_suppression(self):
        self.db.execute("UPDATE suppression_list SET value = %s WHERE id = (SELECT id FROM suppression_list "
                        "ORDER BY id OFFSET %s LIMIT 1) AND NOT EXISTS (SELECT 1 FROM suppression_list "
                        "WHERE channel = 'email' AND value = %s)",
                        (e := self.rng.choice(self.emails), self.rng.randrange(10), e))

    def expire(self):
        # The clock passing expires_at, without waiting for it: the entry becomes one that was live
        # at the last refresh and has expired since. No row event (triggers off), as with real time.
        self.db.execute("SET session_replication_role = replica")
        self.db.execute(
            "UPDATE suppression_list SET expires_at = (SELECT refreshed_at FROM contactable_refresh_state) "
            "+ interval '1 microsecond' WHERE id = (SELECT id FROM suppression_list WHERE expires_at > now() "
            "ORDER BY id LIMIT 1)")
        self.db.execute("SET session_replication_role = DEFAULT")

    def fold(self):
        # two leads without outreach history, members first: a fold deletes one of them
        pair = self.db.execute(
            "SELECT id FROM leads WHERE campaign_status IN ('new', 'queued') "
            "ORDER BY id IN (SELECT lead_id FROM contactable_leads) DESC, md5(id::text || %s) LIMIT 2",
            (str(self.rng.random()),)).fetchall()
        if len(pair) == 2:
            survivor = self.db.execute("SELECT fold_lead(%s, %s, 'mak', 'random test')",
                                       (pair[0][0], pair[1][0])).fetchone()[0]
            self.folds += survivor is not None

    def code_map(self):
        self.db.execute("UPDATE verification_code_map SET usable = NOT usable WHERE code = %s",
                        (self.rng.choice(EMAIL_CODES),))

    def new_lead(self):
        lead = add_leads(self.db, self.rng.choice(self.brokers), [self.rng.uniform(0, 100)],
                         status=self.rng.choice(STATUSES))[0]
        self.db.execute("UPDATE leads SET email = %s WHERE id = %s", (self.rng.choice(self.emails), lead))

    def any(self):
        kinds = [self.status, self.verified, self.broker, self.email, self.codes, self.suppress, self.lift,
                 self.edit_suppression, self.expire, self.fold, self.new_lead]
        weights = [3, 2, 2, 3, 2, 3, 1, 1, 1, 2, 2]
        self.rng.choices(kinds, weights)[0]()


@pytest.mark.parametrize("seed", [7, 2026])
def test_incremental_refresh_equals_a_full_rebuild_under_random_changes(db, campaign, code_map, seed):
    rng = random.Random(seed)
    brokers = [add_broker(db) for _ in range(3)]
    emails = [f"person{i}@example.com" for i in range(40)]
    for _ in range(60):
        lead = add_leads(db, rng.choice([*brokers, None]), [rng.uniform(0, 100)], status=rng.choice(STATUSES),
                         verified=rng.random() < 0.8, email_codes=rng.sample(EMAIL_CODES, rng.randrange(2)))[0]
        db.execute("UPDATE leads SET email = %s WHERE id = %s", (rng.choice(emails), lead))
    changes = Changes(db, rng, brokers, emails)
    first = materialization_metadata(refresh(campaign), "contactable_leads")
    assert first["mode"] == "full"
    modes = []
    for round_no in range(8):
        for _ in range(rng.randrange(3, 12)):
            changes.any()
        if round_no == 5:
            changes.code_map()
        # no look-back: only what the watermark, the suppression scans and the triggers find counts
        meta = materialization_metadata(refresh(campaign, lookback_minutes=0), "contactable_leads")
        modes.append(meta["mode"])
        expected = set(db.execute(FULL_REBUILD).fetchall())
        got = set(db.execute("SELECT lead_id, broker_id, email FROM contactable_leads").fetchall())
        assert got == expected, (seed, round_no, got ^ expected)
        assert meta["size"] == len(expected)
    assert modes.count("incremental") == 7 and modes[5] == "full"  # the code-map edit forced one rebuild
    assert 0 < len(expected) < db.execute("SELECT count(*) FROM leads").fetchone()[0]
    assert changes.folds > 0
