-- Row-level security, Supabase style (docs/architecture.md, "Who sees what").
-- Every table has RLS on and FORCEd, so even the owner reads through policies unless it
-- bypasses RLS. With no policy for a role, that role sees nothing.

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, anon, authenticated;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, anon, authenticated;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION request_broker_id(), uuid_v7() TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION touch_updated_at(), reject_mutation(), set_added_to_campaign_at()
    TO authenticated, service_role;

-- The pipeline: everything, RLS bypassed by the role attribute.
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO service_role;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END
$$;

-- Brokers: their own leads. Column grants keep pipeline-owned facts (verification, consent,
-- scoring, funnel status) out of a broker's reach even on their own rows.
GRANT SELECT ON leads TO authenticated;
GRANT INSERT (property_address, property_unit, property_city, property_state, property_zip, county, apn,
              first_name, last_name, company_name, email, phone, owner_occupied, property_type,
              estimated_value, equity, broker_notes, assigned_broker_id, source)
    ON leads TO authenticated;
GRANT UPDATE (broker_notes, first_name, last_name) ON leads TO authenticated;

CREATE POLICY leads_broker_select ON leads FOR SELECT TO authenticated
    USING (assigned_broker_id = (SELECT request_broker_id()));
CREATE POLICY leads_broker_insert ON leads FOR INSERT TO authenticated
    WITH CHECK (assigned_broker_id = (SELECT request_broker_id()));
CREATE POLICY leads_broker_update ON leads FOR UPDATE TO authenticated
    USING (assigned_broker_id = (SELECT request_broker_id()))
    WITH CHECK (assigned_broker_id = (SELECT request_broker_id()));

-- Their own broker row (read only).
GRANT SELECT ON brokers TO authenticated;
CREATE POLICY brokers_self_select ON brokers FOR SELECT TO authenticated
    USING (id = (SELECT request_broker_id()));

-- Broker-owned tables: read own rows. Calls, billing and consent history are written by the
-- pipeline; brokers may add notes-like rows only where the seed lets them (none today).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['billing_events', 'invoices', 'calls', 'lead_consent_audit', 'email_replies',
                             'broker_phone_numbers', 'lead_number_assignments', 'campaign_sends']
    LOOP
        EXECUTE format('GRANT SELECT ON %I TO authenticated', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO authenticated
                            USING (broker_id = (SELECT request_broker_id()))', t || '_broker_select', t);
    END LOOP;
END
$$;

-- Broker dashboard view; security_invoker so the caller's RLS applies (a plain view would leak).
CREATE VIEW broker_lead_pipeline WITH (security_invoker = true) AS
SELECT assigned_broker_id AS broker_id,
       campaign_status,
       count(*)          AS leads,
       avg(lead_score)   AS avg_score,
       max(updated_at)   AS last_change_at
FROM leads
GROUP BY assigned_broker_id, campaign_status;
GRANT SELECT ON broker_lead_pipeline TO authenticated, service_role;
