-- Lead lifecycle functions: the campaign timestamp trigger and the single-row upsert.

-- Set added_to_campaign_at once, the first time a lead becomes active; never move it afterwards.
CREATE FUNCTION set_added_to_campaign_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.added_to_campaign_at IS NOT NULL THEN
        NEW.added_to_campaign_at := OLD.added_to_campaign_at;
    ELSIF NEW.campaign_status = 'active' AND NEW.added_to_campaign_at IS NULL THEN
        NEW.added_to_campaign_at := now();
    END IF;
    RETURN NEW;
END
$$;

-- WHEN clauses keep the trigger off the bulk-ingest path (no PL/pgSQL call per new lead).
CREATE TRIGGER leads_set_added_to_campaign_at_insert
    BEFORE INSERT ON leads
    FOR EACH ROW WHEN (NEW.campaign_status = 'active' OR NEW.added_to_campaign_at IS NOT NULL)
    EXECUTE FUNCTION set_added_to_campaign_at();
CREATE TRIGGER leads_set_added_to_campaign_at_update
    BEFORE UPDATE OF campaign_status, added_to_campaign_at ON leads
    FOR EACH ROW WHEN (NEW.campaign_status = 'active' OR OLD.added_to_campaign_at IS DISTINCT FROM NEW.added_to_campaign_at)
    EXECUTE FUNCTION set_added_to_campaign_at();

-- The merge rules, in one place: how an incoming record (`inc`) folds into an existing lead (`cur`).
--   * a value never overwrites with NULL (COALESCE(inc, cur)); newer non-NULL data wins;
--   * dedupe keys are identity: filled when empty, never changed (the caller has already
--     dropped incoming keys that belong to another lead);
--   * booleans are OR-merged (a "do not mail" or "litigator" flag is never un-set by a later list);
--   * arrays are unioned, order of first appearance kept.
-- Pipeline-owned columns (verification, funnel, consent) are not touched by ingestion.
CREATE FUNCTION array_union(a text[], b text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    -- fast path: nothing new to add (the common case on re-imports)
    IF b IS NULL OR b = '{}' OR (a IS NOT NULL AND b <@ a) THEN
        RETURN coalesce(a, '{}');
    END IF;
    RETURN (SELECT coalesce(array_agg(v ORDER BY first_pos), '{}')
            FROM (SELECT v, min(pos) AS first_pos
                  FROM unnest(coalesce(a, '{}') || b) WITH ORDINALITY AS u(v, pos)
                  WHERE v IS NOT NULL
                  GROUP BY v) s);
END
$$;

CREATE FUNCTION lead_merge(cur leads, inc leads) RETURNS leads
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    m leads := cur;
BEGIN
    m.mak                := coalesce(cur.mak, inc.mak);
    m.addr_hash          := coalesce(cur.addr_hash, inc.addr_hash);
    -- the APN key is (state, county, apn): adopt all three together or none; a lead with no
    -- location yet takes the incoming one as it is (what a plain insert of the row would store)
    IF cur.apn IS NULL AND inc.apn IS NOT NULL
       AND ((inc.property_state IS NOT NULL AND inc.county IS NOT NULL)
            OR (cur.property_state IS NULL AND cur.county IS NULL)) THEN
        m.apn            := inc.apn;
        m.property_state := inc.property_state;
        m.county         := inc.county;
    ELSE
        m.property_state := coalesce(cur.property_state, inc.property_state);
        m.county         := coalesce(cur.county, inc.county);
    END IF;
    m.property_address   := coalesce(inc.property_address, cur.property_address);
    m.property_unit      := coalesce(inc.property_unit, cur.property_unit);
    m.property_city      := coalesce(inc.property_city, cur.property_city);
    m.property_zip       := coalesce(inc.property_zip, cur.property_zip);
    m.property_type      := coalesce(inc.property_type, cur.property_type);
    m.bedrooms           := coalesce(inc.bedrooms, cur.bedrooms);
    m.bathrooms          := coalesce(inc.bathrooms, cur.bathrooms);
    m.building_sqft      := coalesce(inc.building_sqft, cur.building_sqft);
    m.lot_size_sqft      := coalesce(inc.lot_size_sqft, cur.lot_size_sqft);
    m.year_built         := coalesce(inc.year_built, cur.year_built);
    m.assessed_value     := coalesce(inc.assessed_value, cur.assessed_value);
    m.last_sale_date     := coalesce(inc.last_sale_date, cur.last_sale_date);
    m.last_sale_amount   := coalesce(inc.last_sale_amount, cur.last_sale_amount);
    m.open_loans         := coalesce(inc.open_loans, cur.open_loans);
    m.loan_balance       := coalesce(inc.loan_balance, cur.loan_balance);
    m.estimated_value    := coalesce(inc.estimated_value, cur.estimated_value);
    m.ltv                := coalesce(inc.ltv, cur.ltv);
    m.equity             := coalesce(inc.equity, cur.equity);
    m.mls_status         := coalesce(inc.mls_status, cur.mls_status);
    m.mls_date           := coalesce(inc.mls_date, cur.mls_date);
    m.mls_amount         := coalesce(inc.mls_amount, cur.mls_amount);
    m.lien_amount        := coalesce(inc.lien_amount, cur.lien_amount);
    m.owner_occupied     := coalesce(inc.owner_occupied, cur.owner_occupied);
    m.first_name         := coalesce(inc.first_name, cur.first_name);
    m.last_name          := coalesce(inc.last_name, cur.last_name);
    m.company_name       := coalesce(inc.company_name, cur.company_name);
    m.owner2_first_name  := coalesce(inc.owner2_first_name, cur.owner2_first_name);
    m.owner2_last_name   := coalesce(inc.owner2_last_name, cur.owner2_last_name);
    m.owner_birth_month  := coalesce(inc.owner_birth_month, cur.owner_birth_month);
    m.mailing_care_of    := coalesce(inc.mailing_care_of, cur.mailing_care_of);
    m.mailing_address    := coalesce(inc.mailing_address, cur.mailing_address);
    m.mailing_unit       := coalesce(inc.mailing_unit, cur.mailing_unit);
    m.mailing_city       := coalesce(inc.mailing_city, cur.mailing_city);
    m.mailing_state      := coalesce(inc.mailing_state, cur.mailing_state);
    m.mailing_zip        := coalesce(inc.mailing_zip, cur.mailing_zip);
    m.mailing_county     := coalesce(inc.mailing_county, cur.mailing_county);
    m.do_not_mail        := coalesce(cur.do_not_mail, false) OR coalesce(inc.do_not_mail, false);
    m.litigator          := coalesce(cur.litigator, false) OR coalesce(inc.litigator, false);
    m.deceased           := coalesce(cur.deceased, false) OR coalesce(inc.deceased, false);
    m.marketing_lists    := array_union(cur.marketing_lists, inc.marketing_lists);
    m.date_added_to_list := coalesce(inc.date_added_to_list, cur.date_added_to_list);
    m.method_of_add      := coalesce(inc.method_of_add, cur.method_of_add);
    -- a new primary contact keeps the old one as an alternate
    m.email              := coalesce(inc.email, cur.email);
    IF m.email IS DISTINCT FROM cur.email OR inc.alt_emails <> '{}' THEN
        m.alt_emails     := array_remove(array_union(array_union(cur.alt_emails, ARRAY[cur.email]),
                                                     inc.alt_emails), m.email);
    END IF;
    m.phone              := coalesce(inc.phone, cur.phone);
    IF m.phone IS DISTINCT FROM cur.phone OR inc.alt_phones <> '{}' THEN
        m.alt_phones     := array_remove(array_union(array_union(cur.alt_phones, ARRAY[cur.phone]),
                                                     inc.alt_phones), m.phone);
    END IF;
    m.dnc_phones         := array_union(cur.dnc_phones, inc.dnc_phones);
    m.email_verified     := cur.email_verified AND m.email IS NOT DISTINCT FROM cur.email;
    m.phone_verified     := cur.phone_verified AND m.phone IS NOT DISTINCT FROM cur.phone;
    m.source             := coalesce(cur.source, inc.source);
    m.first_upload_id    := coalesce(cur.first_upload_id, inc.first_upload_id);
    RETURN m;
END
$$;

-- An empty lead with the table's defaults, for inserts that go through lead_merge().
CREATE FUNCTION new_lead_row() RETURNS leads
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
    r.created_at := now();
    r.updated_at := now();
    RETURN r;
END
$$;

-- The lead owning each dedupe key of a record (NULL when the key is absent or unowned).
CREATE FUNCTION lead_key_owners(inc leads, OUT by_mak uuid, OUT by_apn uuid, OUT by_addr uuid)
LANGUAGE sql STABLE
AS $$
    SELECT
        (SELECT id FROM leads WHERE inc.mak IS NOT NULL AND mak = inc.mak),
        (SELECT id FROM leads
          WHERE inc.apn IS NOT NULL AND inc.property_state IS NOT NULL AND inc.county IS NOT NULL
            AND apn = inc.apn AND property_state = inc.property_state AND county = inc.county),
        (SELECT id FROM leads WHERE inc.addr_hash IS NOT NULL AND addr_hash = inc.addr_hash)
$$;

-- The seed's single-row path: match by MAK, else APN, else addr_hash, else insert.
-- Keys that point at a different lead than the one matched are not applied; the clash is
-- recorded in lead_key_conflicts instead of raising.
CREATE FUNCTION upsert_lead(p jsonb) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    inc    leads := jsonb_populate_record(NULL::leads, p);
    o      record;
    target uuid;
    cur    leads;
    m      leads;
BEGIN
    inc.marketing_lists := coalesce(inc.marketing_lists, '{}');
    inc.alt_emails      := coalesce(inc.alt_emails, '{}');
    inc.alt_phones      := coalesce(inc.alt_phones, '{}');
    inc.dnc_phones      := coalesce(inc.dnc_phones, '{}');
    -- serialize writers of the same keys so two sessions cannot both insert one entity
    PERFORM pg_advisory_xact_lock(hashtext('lead-key:' || k))
       FROM unnest(ARRAY[inc.mak, inc.property_state || '|' || inc.county || '|' || inc.apn, inc.addr_hash]) k
      WHERE k IS NOT NULL
      ORDER BY k;

    o := lead_key_owners(inc);
    target := coalesce(o.by_mak, o.by_apn, o.by_addr);

    IF target IS NULL THEN
        -- a new lead takes from the input exactly what a merge would (never pipeline-owned columns)
        cur := new_lead_row();
        m := lead_merge(cur, inc);
        INSERT INTO leads SELECT (m).*;
        RETURN m.id;
    END IF;

    IF o.by_apn IS NOT NULL AND o.by_apn <> target THEN
        INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref)
        VALUES (target, o.by_apn, 'apn', 'upsert_lead') ON CONFLICT DO NOTHING;
        inc.apn := NULL;
    END IF;
    IF o.by_addr IS NOT NULL AND o.by_addr <> target THEN
        INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref)
        VALUES (target, o.by_addr, 'addr_hash', 'upsert_lead') ON CONFLICT DO NOTHING;
        inc.addr_hash := NULL;
    END IF;

    SELECT * INTO cur FROM leads WHERE id = target FOR UPDATE;
    m := lead_merge(cur, inc);
    IF m IS DISTINCT FROM cur THEN
        UPDATE leads SET (mak, apn, addr_hash, property_state, county, property_address, property_unit,
                          property_city, property_zip, property_type, bedrooms, bathrooms, building_sqft,
                          lot_size_sqft, year_built, assessed_value, last_sale_date, last_sale_amount,
                          open_loans, loan_balance, estimated_value, ltv, equity, mls_status, mls_date,
                          mls_amount, lien_amount, owner_occupied, first_name, last_name, company_name,
                          owner2_first_name, owner2_last_name, owner_birth_month, mailing_care_of,
                          mailing_address, mailing_unit, mailing_city, mailing_state, mailing_zip,
                          mailing_county, do_not_mail, litigator, deceased, marketing_lists,
                          date_added_to_list, method_of_add, email, alt_emails, phone, alt_phones,
                          dnc_phones, email_verified, phone_verified, source, first_upload_id)
                       = (m.mak, m.apn, m.addr_hash, m.property_state, m.county, m.property_address,
                          m.property_unit, m.property_city, m.property_zip, m.property_type, m.bedrooms,
                          m.bathrooms, m.building_sqft, m.lot_size_sqft, m.year_built, m.assessed_value,
                          m.last_sale_date, m.last_sale_amount, m.open_loans, m.loan_balance,
                          m.estimated_value, m.ltv, m.equity, m.mls_status, m.mls_date, m.mls_amount,
                          m.lien_amount, m.owner_occupied, m.first_name, m.last_name, m.company_name,
                          m.owner2_first_name, m.owner2_last_name, m.owner_birth_month,
                          m.mailing_care_of, m.mailing_address, m.mailing_unit, m.mailing_city,
                          m.mailing_state, m.mailing_zip, m.mailing_county, m.do_not_mail, m.litigator,
                          m.deceased, m.marketing_lists, m.date_added_to_list, m.method_of_add, m.email,
                          m.alt_emails, m.phone, m.alt_phones, m.dnc_phones, m.email_verified,
                          m.phone_verified, m.source, m.first_upload_id)
         WHERE id = target;
    END IF;
    RETURN target;
END
$$;
