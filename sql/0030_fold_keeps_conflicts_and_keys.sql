-- Folding two leads (verification found they share a MAK; `equity leads merge`) keeps what it
-- must: an upload row's key conflict recorded on the folded lead moves to the survivor with all
-- it says (it used to be re-inserted only when it named another lead, so a conflict without one
-- vanished), and the survivor's addr_hash is re-derived from its merged address, as the ingest
-- merge does, so its stored address and its key agree.

CREATE OR REPLACE FUNCTION fold_pipeline_leads(p_from uuid, p_into uuid, p_key text, p_source_ref text) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    src    leads;
    dst    leads;
    m      leads;
    swap   uuid;
    cols   text;
    h      text;
    holder uuid;
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
    -- conflicts naming the folded lead now name the survivor, whole: an upload row's conflict
    -- (no other lead; the row, how it matched, both sides) must outlive the fold. A conflict
    -- between the two leads, or one the survivor already records, goes.
    DELETE FROM lead_key_conflicts c
     WHERE (c.lead_id = p_from AND c.other_lead_id = p_into) OR (c.lead_id = p_into AND c.other_lead_id = p_from)
        OR ((c.lead_id = p_from OR c.other_lead_id = p_from) AND EXISTS (
             SELECT 1 FROM lead_key_conflicts d
              WHERE d.id <> c.id AND d.key_name = c.key_name
                AND d.lead_id = CASE WHEN c.lead_id = p_from THEN p_into ELSE c.lead_id END
                AND d.other_lead_id = CASE WHEN c.other_lead_id = p_from THEN p_into ELSE c.other_lead_id END));
    UPDATE lead_key_conflicts
       SET lead_id = CASE WHEN lead_id = p_from THEN p_into ELSE lead_id END,
           other_lead_id = CASE WHEN other_lead_id = p_from THEN p_into ELSE other_lead_id END
     WHERE lead_id = p_from OR other_lead_id = p_from;

    -- delete first: the survivor may adopt the folded lead's APN / addr_hash keys
    DELETE FROM leads WHERE id = p_from;

    m := lead_merge(dst, src);
    -- the key follows the merged address (lead_merge may have given it a ZIP or a street type);
    -- an address that is a third lead's is not applied: the survivor keeps its own, and the
    -- clash is recorded for a person
    IF m.addr_std IS NOT NULL THEN
        h := lead_address_hash(m.addr_std, m.addr_city, m.property_state, m.property_zip);
        IF h IS DISTINCT FROM m.addr_hash THEN
            SELECT id INTO holder FROM leads WHERE addr_hash = h AND id <> p_into AND NOT broker_created;
            IF holder IS NULL THEN
                m.addr_hash := h;
            ELSE
                INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref)
                VALUES (p_into, holder, 'addr_hash', p_source_ref) ON CONFLICT DO NOTHING;
                m.property_address := dst.property_address; m.property_unit := dst.property_unit;
                m.property_city := dst.property_city; m.property_zip := dst.property_zip;
                m.addr_std := dst.addr_std; m.addr_bare := dst.addr_bare; m.addr_city := dst.addr_city;
                m.addr_hash := dst.addr_hash;
            END IF;
        END IF;
    END IF;
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
