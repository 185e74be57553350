-- Hardening: broker-created leads stay outside pipeline identity, statistics are refreshed by a
-- role allowed to, and no function is executable by default.

-- ------------------------------------------------------------------------------------------
-- Broker-created leads.
-- A broker who could write a dedupe key (APN, MAK, addr_hash) on a lead of their own would
-- "pre-claim" the parcel: the next upload bringing it would be merged into the broker's row,
-- handing them the owner's name, e-mail, phone and mailing address. So:
--   * brokers may not write any key column (mak and addr_hash were never granted; apn is revoked);
--   * every row a broker inserts is marked broker_created (set by a trigger, not writable by them),
--     and such rows never take part in key matching, key uniqueness or lead folding, whatever
--     keys they may hold.
-- ------------------------------------------------------------------------------------------
REVOKE INSERT (apn) ON leads FROM authenticated;

ALTER TABLE leads ADD COLUMN broker_created boolean NOT NULL DEFAULT false;

CREATE FUNCTION mark_broker_created() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.broker_created := true;
    RETURN NEW;
END
$$;
-- Only roles that act for the pipeline (service_role, the schema owner) have the privileges of
-- service_role; every other inserter is a broker. WHEN keeps bulk ingestion free of a call per row.
CREATE TRIGGER leads_mark_broker_created
    BEFORE INSERT ON leads
    FOR EACH ROW WHEN (NOT pg_has_role('service_role', 'USAGE'))
    EXECUTE FUNCTION mark_broker_created();

-- Key uniqueness is a property of pipeline leads only: a broker row never blocks (or reveals,
-- through a unique violation) a pipeline lead with the same key.
DROP INDEX leads_mak_key;
DROP INDEX leads_apn_key;
DROP INDEX leads_addr_hash_key;
CREATE UNIQUE INDEX leads_mak_key ON leads (mak) WHERE mak IS NOT NULL AND NOT broker_created;
CREATE UNIQUE INDEX leads_apn_key ON leads (property_state, county, apn)
    WHERE apn IS NOT NULL AND property_state IS NOT NULL AND county IS NOT NULL AND NOT broker_created;
CREATE UNIQUE INDEX leads_addr_hash_key ON leads (addr_hash) WHERE addr_hash IS NOT NULL AND NOT broker_created;

-- The single-row path matches pipeline leads only.
CREATE OR REPLACE FUNCTION lead_key_owners(inc leads, OUT by_mak uuid, OUT by_apn uuid, OUT by_addr uuid)
LANGUAGE sql STABLE
AS $$
    SELECT
        (SELECT id FROM leads WHERE inc.mak IS NOT NULL AND mak = inc.mak AND NOT broker_created),
        (SELECT id FROM leads
          WHERE inc.apn IS NOT NULL AND inc.property_state IS NOT NULL AND inc.county IS NOT NULL
            AND apn = inc.apn AND property_state = inc.property_state AND county = inc.county
            AND NOT broker_created),
        (SELECT id FROM leads WHERE inc.addr_hash IS NOT NULL AND addr_hash = inc.addr_hash AND NOT broker_created)
$$;

-- new_lead_row() must fill the new NOT NULL column (upsert_lead inserts the whole record).
CREATE OR REPLACE FUNCTION new_lead_row() RETURNS leads
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    r leads;
BEGIN
    r.id := uuid_v7();
    r.do_not_mail := false;
    r.litigator := false;
    r.deceased := false;
    r.marketing_lists := '{}';
    r.alt_emails := '{}';
    r.alt_phones := '{}';
    r.dnc_phones := '{}';
    r.email_verified := false;
    r.phone_verified := false;
    r.address_codes := '{}';
    r.email_codes := '{}';
    r.phone_codes := '{}';
    r.campaign_status := 'new';
    r.consent := false;
    r.call_attempt_count := 0;
    r.broker_created := false;
    r.created_at := now();
    r.updated_at := now();
    RETURN r;
END
$$;

-- Folding never takes a broker-created lead in either direction: the clash is recorded instead.
ALTER FUNCTION fold_lead(uuid, uuid, text, text) RENAME TO fold_pipeline_leads;
CREATE FUNCTION fold_lead(p_from uuid, p_into uuid, p_key text, p_source_ref text) RETURNS uuid
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_from IS DISTINCT FROM p_into
       AND EXISTS (SELECT 1 FROM leads WHERE id IN (p_from, p_into) AND broker_created) THEN
        INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref)
        VALUES (p_into, p_from, p_key, p_source_ref) ON CONFLICT DO NOTHING;
        RETURN NULL;
    END IF;
    RETURN fold_pipeline_leads(p_from, p_into, p_key, p_source_ref);
END
$$;

-- ------------------------------------------------------------------------------------------
-- Statistics. ANALYZE by a role that does not own the table is skipped with only a warning, so
-- the pipeline (service_role) asks the owner to do it through this function. It runs as its
-- owner, so: a fixed list of tables, schema-qualified names, and a pinned search_path.
-- ------------------------------------------------------------------------------------------
CREATE FUNCTION analyze_pipeline_table(p_table text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_table IS NULL OR p_table NOT IN ('leads_staging', 'leads', 'lead_sources', 'contactable_leads') THEN
        RAISE EXCEPTION 'analyze_pipeline_table: % is not a pipeline table', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('ANALYZE public.%I', p_table);
END
$$;

-- ------------------------------------------------------------------------------------------
-- The contactable set, kept equal to a full rebuild by its incremental refresh:
--   * a deleted lead (folded into another) leaves the set at once, and the set's size with it;
--   * an edit of the code map changes the rule itself, so the next refresh is a full rebuild.
-- ------------------------------------------------------------------------------------------
CREATE FUNCTION leave_contactable_set() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM contactable_leads WHERE lead_id = OLD.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE contactable_refresh_state SET size = greatest(size - n, 0) WHERE singleton;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_leave_contactable_set
    AFTER DELETE ON leads
    FOR EACH ROW EXECUTE FUNCTION leave_contactable_set();

CREATE FUNCTION rebuild_contactable_next() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE contactable_refresh_state SET watermark = NULL WHERE singleton;
    RETURN NULL;
END
$$;
CREATE TRIGGER verification_code_map_rebuild_contactable
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON verification_code_map
    FOR EACH STATEMENT EXECUTE FUNCTION rebuild_contactable_next();

-- ------------------------------------------------------------------------------------------
-- Function privileges. PostgreSQL grants EXECUTE on every new function to PUBLIC; a per-schema
-- default cannot take that away, only a global default can. Existing functions lose it
-- explicitly; each role then gets what it needs, by name.
-- ------------------------------------------------------------------------------------------
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO service_role;
-- Brokers: the identity function their policies call and the id default of a lead they insert.
-- (Trigger functions need no EXECUTE grant: it is checked when the trigger is created.)
GRANT EXECUTE ON FUNCTION request_broker_id(), uuid_v7() TO authenticated;
