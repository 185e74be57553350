-- Campaign layer: the contactable set (seed: mv_contactable_leads), its refresh bookkeeping,
-- and what the feeder and the consent audit need.

-- The contactable set as an incrementally maintained table, not a materialized view:
-- REFRESH MATERIALIZED VIEW CONCURRENTLY of 1M rows took ~5 s, re-evaluating only the leads
-- changed since the last refresh stays under 1 s for 100k changes.
-- It holds membership only: score and status are read live from `leads` by the feeder, so the
-- daily flood of re-scorings never rewrites this table.
-- No foreign key to leads: an RI check per upserted row would cost the refresh, and the feeder
-- joins `leads` anyway; a full rebuild drops rows of leads that no longer exist.
CREATE TABLE contactable_leads (
    lead_id      uuid PRIMARY KEY,
    broker_id    uuid NOT NULL,
    email        text NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
-- A newly suppressed address removes its rows without scanning the set.
CREATE INDEX contactable_leads_email_idx ON contactable_leads (email);

-- One row: where the next incremental refresh starts, and the set's size.
CREATE TABLE contactable_refresh_state (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark    timestamptz,  -- NULL: never built; the next refresh is a full rebuild
    size         bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    refreshed_at timestamptz
);
INSERT INTO contactable_refresh_state (singleton) VALUES (true);

-- Emails whose suppression was lifted or edited: a timestamp watermark cannot see a deleted
-- suppression row, so the trigger below queues the address for the next refresh to re-evaluate.
CREATE TABLE contactable_recheck_emails (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email     text NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION queue_contactable_recheck() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF OLD.channel = 'email' THEN
        INSERT INTO contactable_recheck_emails (email) VALUES (OLD.value);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.channel = 'email' AND NEW.value IS DISTINCT FROM OLD.value THEN
        INSERT INTO contactable_recheck_emails (email) VALUES (NEW.value);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER suppression_list_contactable_recheck
    AFTER DELETE OR UPDATE OF channel, value, expires_at ON suppression_list
    FOR EACH ROW EXECUTE FUNCTION queue_contactable_recheck();

-- The incremental refresh scans leads changed since the watermark.
CREATE INDEX leads_updated_at_idx ON leads (updated_at);

-- A token attempt whose lead cannot be identified (malformed token, unknown lead) is still a
-- decision worth auditing; only rejections may lack a lead.
ALTER TABLE lead_consent_audit ALTER COLUMN lead_id DROP NOT NULL;
ALTER TABLE lead_consent_audit
    ADD CONSTRAINT lead_consent_audit_lead_known CHECK (lead_id IS NOT NULL OR decision = 'rejected');

-- Pipeline-internal: service_role only. The contactable set spans every broker, so broker
-- roles must never read it: no grant, and RLS forced with no policy as a second wall.
REVOKE ALL ON contactable_leads, contactable_refresh_state, contactable_recheck_emails
    FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON contactable_leads, contactable_refresh_state, contactable_recheck_emails
    TO service_role;
GRANT USAGE ON SEQUENCE contactable_recheck_emails_id_seq TO service_role;
REVOKE EXECUTE ON FUNCTION queue_contactable_recheck() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION queue_contactable_recheck() TO service_role;
ALTER TABLE contactable_leads ENABLE ROW LEVEL SECURITY;
ALTER TABLE contactable_leads FORCE ROW LEVEL SECURITY;
ALTER TABLE contactable_refresh_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE contactable_refresh_state FORCE ROW LEVEL SECURITY;
ALTER TABLE contactable_recheck_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE contactable_recheck_emails FORCE ROW LEVEL SECURITY;
