-- pipeline_events, range-partitioned by the UTC month of created_at.
--
-- * Months are partitions `pipeline_events_YYYY_MM`; a DEFAULT partition takes any row no month
--   holds yet, so an insert never fails. `pipeline_events_maintain()` (run by a scheduled asset)
--   creates the months ahead, moves rows out of the default, and archives months past retention.
-- * Archiving detaches a month and moves it into the `archive` schema: its rows stay queryable
--   (`archive.pipeline_events_2025_01`), read-only, out of the hot table and its indexes; an
--   operator may dump and drop an archived month when it is no longer needed.
-- * "Once per idempotency key" cannot be a unique index on a partitioned table (it would have to
--   include created_at), so keys are claimed in `pipeline_event_keys` by a BEFORE INSERT trigger:
--   a repeated key skips the row, exactly as ON CONFLICT DO NOTHING did.

CREATE SCHEMA archive;
REVOKE ALL ON SCHEMA archive FROM PUBLIC;
GRANT USAGE ON SCHEMA archive TO service_role;

-- The old table keeps its rows until they are copied below; its names are freed for the new one.
ALTER TABLE pipeline_events RENAME TO pipeline_events_unpartitioned;
ALTER INDEX pipeline_events_pkey RENAME TO pipeline_events_unpartitioned_pkey;
ALTER INDEX pipeline_events_idempotency_key_key RENAME TO pipeline_events_unpartitioned_idempotency_key_key;
ALTER INDEX pipeline_events_type_time_idx RENAME TO pipeline_events_unpartitioned_type_time_idx;
ALTER INDEX pipeline_events_lead_idx RENAME TO pipeline_events_unpartitioned_lead_idx;
ALTER SEQUENCE pipeline_events_id_seq RENAME TO pipeline_events_unpartitioned_id_seq;
-- the owner copies every row (forced RLS would otherwise hide them from a non-superuser owner)
ALTER TABLE pipeline_events_unpartitioned NO FORCE ROW LEVEL SECURITY;

CREATE TABLE pipeline_events (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    event_type      text NOT NULL,
    stage           text,
    lead_id         uuid,
    upload_id       uuid,
    run_id          text,
    partition_key   text,
    count           integer,
    duration_ms     integer,
    payload         jsonb NOT NULL DEFAULT '{}',
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX pipeline_events_type_time_idx ON pipeline_events (event_type, created_at);
-- per-lead timelines (the funnel's stage durations) by lead, type and time
CREATE INDEX pipeline_events_lead_idx ON pipeline_events (lead_id, event_type, created_at) WHERE lead_id IS NOT NULL;
CREATE TABLE pipeline_events_default PARTITION OF pipeline_events DEFAULT;

CREATE TABLE pipeline_event_keys (
    idempotency_key text PRIMARY KEY,
    event_id        bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION claim_pipeline_event_key() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.idempotency_key IS NULL THEN
        RETURN NEW;
    END IF;
    -- concurrent writers of one key wait on the primary key: exactly one of them writes its row
    INSERT INTO public.pipeline_event_keys (idempotency_key, event_id) VALUES (NEW.idempotency_key, NEW.id)
    ON CONFLICT DO NOTHING;
    IF FOUND OR EXISTS (SELECT 1 FROM public.pipeline_event_keys
                        WHERE idempotency_key = NEW.idempotency_key AND event_id = NEW.id) THEN
        RETURN NEW;  -- a new key, or the same event moved between partitions by maintenance
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER pipeline_events_claim_key BEFORE INSERT ON pipeline_events
    FOR EACH ROW EXECUTE FUNCTION claim_pipeline_event_key();
-- Row triggers on the partitioned table are cloned onto every partition, present and future.
CREATE TRIGGER pipeline_events_append_only BEFORE UPDATE OR DELETE ON pipeline_events
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();
CREATE TRIGGER pipeline_events_no_truncate BEFORE TRUNCATE ON pipeline_events
    FOR EACH STATEMENT EXECUTE FUNCTION reject_mutation();
CREATE TRIGGER pipeline_event_keys_append_only BEFORE UPDATE OR DELETE ON pipeline_event_keys
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();

-- Internal tables: the pipeline only; partitions are reached through their parent alone.
REVOKE ALL ON pipeline_events, pipeline_event_keys, pipeline_events_default FROM PUBLIC, anon, authenticated;
REVOKE ALL ON pipeline_events_default FROM service_role;
GRANT SELECT ON pipeline_events_default TO service_role;  -- what landed there is watched
GRANT SELECT, INSERT, UPDATE, DELETE ON pipeline_events, pipeline_event_keys TO service_role;
GRANT USAGE ON SEQUENCE pipeline_events_id_seq TO service_role;
ALTER TABLE pipeline_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline_events FORCE ROW LEVEL SECURITY;
ALTER TABLE pipeline_event_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline_event_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE pipeline_events_default ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline_events_default FORCE ROW LEVEL SECURITY;
-- The maintenance function runs as the owner, which forced RLS also binds: it moves rows.
CREATE POLICY pipeline_events_maintenance ON pipeline_events FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY pipeline_event_keys_maintenance ON pipeline_event_keys FOR ALL TO CURRENT_USER
    USING (true) WITH CHECK (true);
CREATE POLICY pipeline_events_default_maintenance ON pipeline_events_default FOR SELECT TO CURRENT_USER USING (true);

-- Creates this month and `p_months_ahead` more; gives every month the default partition holds
-- rows of its own partition and moves those rows there; archives months older than
-- `p_retain_months` full months before this one. Idempotent; returns what it did.
CREATE FUNCTION pipeline_events_maintain(p_months_ahead integer DEFAULT 3, p_retain_months integer DEFAULT 13,
                                         p_today date DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET lock_timeout = '10s'
AS $$
DECLARE
    this_month date := date_trunc('month', coalesce(p_today, current_date))::date;
    cutoff     date;
    months     date[];
    m          date;
    part       text;
    secure     text[] := '{}';
    created    text[] := '{}';
    archived   text[] := '{}';
    moved      bigint := 0;
    leftover   bigint;
BEGIN
    IF p_months_ahead IS NULL OR p_months_ahead NOT BETWEEN 0 AND 36
       OR p_retain_months IS NULL OR p_retain_months < 1 THEN
        RAISE EXCEPTION 'pipeline_events_maintain: months ahead must be 0..36 and retention at least 1 month'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cutoff := (this_month - make_interval(months => p_retain_months))::date;
    -- one maintenance at a time
    PERFORM pg_advisory_xact_lock(7204111017);

    SELECT coalesce(array_agg(DISTINCT date_trunc('month', created_at)::date), '{}') INTO months
    FROM public.pipeline_events_default;
    IF cardinality(months) > 0 THEN
        -- a month cannot be created while the default holds rows of it: take the default out,
        -- put a fresh one in, and re-insert its rows once their months exist (same ids and keys)
        ALTER TABLE public.pipeline_events DETACH PARTITION public.pipeline_events_default;
        ALTER TABLE public.pipeline_events_default RENAME TO pipeline_events_default_moving;
        CREATE TABLE public.pipeline_events_default PARTITION OF public.pipeline_events DEFAULT;
        secure := secure || 'pipeline_events_default'::text;
    END IF;
    months := months || ARRAY(SELECT generate_series(this_month, this_month + make_interval(months => p_months_ahead),
                                                     interval '1 month')::date);

    FOR m IN SELECT DISTINCT x FROM unnest(months) x ORDER BY 1 LOOP
        part := 'pipeline_events_' || to_char(m, 'YYYY_MM');
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.pipeline_events FOR VALUES FROM (%L) TO (%L)',
                       part, m::timestamptz, (m + interval '1 month')::timestamptz);
        secure := secure || part;
        created := created || part;
    END LOOP;
    FOREACH part IN ARRAY secure LOOP
        EXECUTE format('REVOKE ALL ON public.%I FROM PUBLIC, anon, authenticated, service_role', part);
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', part);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', part);
    END LOOP;
    IF 'pipeline_events_default' = ANY(secure) THEN
        GRANT SELECT ON public.pipeline_events_default TO service_role;
        CREATE POLICY pipeline_events_default_maintenance ON public.pipeline_events_default
            FOR SELECT TO CURRENT_USER USING (true);
    END IF;

    IF to_regclass('public.pipeline_events_default_moving') IS NOT NULL THEN
        -- detached, it lost the parent's triggers and policies; its owner reads it directly
        ALTER TABLE public.pipeline_events_default_moving NO FORCE ROW LEVEL SECURITY;
        INSERT INTO public.pipeline_events OVERRIDING SYSTEM VALUE
        SELECT * FROM public.pipeline_events_default_moving;
        GET DIAGNOSTICS moved = ROW_COUNT;
        DROP TABLE public.pipeline_events_default_moving;
    END IF;

    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.pipeline_events'::regclass
          AND c.relname ~ '^pipeline_events_\d{4}_\d{2}$'
          AND to_date(right(c.relname, 7), 'YYYY_MM') < cutoff
        ORDER BY 1
    LOOP
        EXECUTE format('ALTER TABLE public.pipeline_events DETACH PARTITION public.%I', part);
        IF to_regclass('archive.' || part) IS NULL THEN
            EXECUTE format('ALTER TABLE public.%I SET SCHEMA archive', part);
            -- detaching dropped the cloned triggers: an archived month stays append-only
            EXECUTE format('CREATE TRIGGER archived_append_only BEFORE UPDATE OR DELETE ON archive.%I
                            FOR EACH ROW EXECUTE FUNCTION public.reject_mutation()', part);
            EXECUTE format('CREATE TRIGGER archived_no_truncate BEFORE TRUNCATE ON archive.%I
                            FOR EACH STATEMENT EXECUTE FUNCTION public.reject_mutation()', part);
            EXECUTE format('GRANT SELECT ON archive.%I TO service_role', part);
        ELSE
            -- late rows of a month archived before: appended to its archive
            EXECUTE format('ALTER TABLE public.%I NO FORCE ROW LEVEL SECURITY', part);
            EXECUTE format('INSERT INTO archive.%1$I SELECT * FROM public.%1$I', part);
            EXECUTE format('DROP TABLE public.%I', part);
        END IF;
        archived := archived || part;
    END LOOP;

    SELECT count(*) INTO leftover FROM public.pipeline_events_default;
    RETURN jsonb_build_object(
        'created', to_jsonb(created),
        'archived', to_jsonb(archived),
        'moved_from_default', moved,
        'default_rows', leftover,
        'partitions', (SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.pipeline_events'::regclass),
        'archived_total', (SELECT count(*) FROM pg_class
                           WHERE relnamespace = 'archive'::regnamespace AND relkind = 'r'
                             AND relname ~ '^pipeline_events_\d{4}_\d{2}$'),
        'oldest', (SELECT min(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'public.pipeline_events'::regclass AND c.relname ~ '^pipeline_events_\d{4}_\d{2}$'),
        'newest', (SELECT max(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'public.pipeline_events'::regclass AND c.relname ~ '^pipeline_events_\d{4}_\d{2}$'));
END
$$;
REVOKE ALL ON FUNCTION pipeline_events_maintain(integer, integer, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pipeline_events_maintain(integer, integer, date) TO service_role;

-- Every row kept, with its id and key; then their months get partitions (nothing archived here).
INSERT INTO pipeline_events OVERRIDING SYSTEM VALUE
SELECT id, event_type, stage, lead_id, upload_id, run_id, partition_key, count, duration_ms, payload,
       idempotency_key, created_at
FROM pipeline_events_unpartitioned;
SELECT setval('pipeline_events_id_seq', coalesce((SELECT max(id) FROM pipeline_events_unpartitioned), 0) + 1, false);
SELECT pipeline_events_maintain(3, 1200);
DROP TABLE pipeline_events_unpartitioned;

-- The fold's event: the key trigger now makes it once per folded lead (ON CONFLICT needs a
-- unique index, which a partitioned table cannot have on the key alone).
CREATE OR REPLACE FUNCTION fold_pipeline_leads(p_from uuid, p_into uuid, p_key text, p_source_ref text) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    src    leads;
    dst    leads;
    m      leads;
    swap   uuid;
    cols   text;
BEGIN
    IF p_from IS NULL OR p_into IS NULL OR p_from = p_into THEN
        RETURN p_into;
    END IF;
    -- lock both rows in a fixed order so two folds of the same pair cannot deadlock
    PERFORM 1 FROM leads WHERE id IN (p_from, p_into) ORDER BY id FOR UPDATE;

    IF lead_has_outreach_history(p_from) THEN
        IF lead_has_outreach_history(p_into) THEN
            INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref)
            VALUES (p_into, p_from, p_key, p_source_ref) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
        swap := p_from; p_from := p_into; p_into := swap;
    END IF;

    SELECT * INTO src FROM leads WHERE id = p_from;
    SELECT * INTO dst FROM leads WHERE id = p_into;
    IF src.id IS NULL OR dst.id IS NULL THEN
        RAISE EXCEPTION 'fold_lead: lead % or % does not exist', p_from, p_into
            USING ERRCODE = 'no_data_found';
    END IF;

    UPDATE lead_sources SET lead_id = p_into WHERE lead_id = p_from;
    UPDATE suppression_list SET lead_id = p_into WHERE lead_id = p_from;
    -- conflicts naming the folded lead now name the survivor (a self-conflict disappears);
    -- the old rows go with the folded lead (ON DELETE CASCADE)
    INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref, created_at)
    SELECT a, b, key_name, source_ref, created_at
    FROM (SELECT CASE WHEN lead_id = p_from THEN p_into ELSE lead_id END AS a,
                 CASE WHEN other_lead_id = p_from THEN p_into ELSE other_lead_id END AS b,
                 key_name, source_ref, created_at
          FROM lead_key_conflicts WHERE lead_id = p_from OR other_lead_id = p_from) c
    WHERE a <> b
    ON CONFLICT DO NOTHING;

    -- delete first: the survivor may adopt the folded lead's APN / addr_hash keys
    DELETE FROM leads WHERE id = p_from;

    m := lead_merge(dst, src);
    IF m.email IS DISTINCT FROM dst.email OR m.phone IS DISTINCT FROM dst.phone THEN
        m.verified_at := NULL;
    END IF;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
    FROM pg_attribute
    WHERE attrelid = 'leads'::regclass AND attnum > 0 AND NOT attisdropped
      AND attname NOT IN ('id', 'created_at', 'updated_at');
    EXECUTE format('UPDATE leads SET (%1$s) = (SELECT %1$s FROM (SELECT ($1).*) s) WHERE id = $2', cols)
        USING m, p_into;

    INSERT INTO pipeline_events (event_type, stage, lead_id, count, payload, idempotency_key)
    VALUES ('lead_merged', 'verified_leads', p_into, 1,
            jsonb_build_object('merged_lead_id', p_from, 'key', p_key, 'source_ref', p_source_ref),
            'lead_merged:' || p_from);
    RETURN p_into;
END
$$;

