-- Address identity that holds across list vendors, conflicts that are never silent, values and
-- rows that are never dropped without a record, and probable duplicates kept for review.

-- ------------------------------------------------------------------------------------------
-- Address identity.
-- addr_std  = standardized street line and unit ("7946 S ASHLAND AVE|2"), parsed from the cell;
-- addr_bare = the same without the USPS street type ("7946 S ASHLAND|2");
-- addr_city = the normalized city. With property_state and property_zip they say where the
-- property is; addr_hash is derived from them (see lead_address_key) and re-derived whenever a
-- merge completes a lead's locality. A row matches a lead by the ZIP key, else by street line
-- within city + state, else (street type on one side only) by the bare line when it is
-- unambiguous in that ZIP / city.
-- ------------------------------------------------------------------------------------------
ALTER TABLE leads ADD COLUMN addr_std text, ADD COLUMN addr_bare text, ADD COLUMN addr_city text;
ALTER TABLE leads_staging ADD COLUMN addr_std text, ADD COLUMN addr_bare text, ADD COLUMN addr_city text;

-- The street line within a state (city match; a row without the street type of a lead's line) and
-- the bare line (a row with a street type the lead's line lacks).
CREATE INDEX leads_addr_std_idx ON leads (addr_std, property_state) WHERE addr_std IS NOT NULL AND NOT broker_created;
CREATE INDEX leads_addr_bare_idx ON leads (addr_bare, property_state)
    WHERE addr_bare IS NOT NULL AND NOT broker_created;

-- The text addr_hash hashes: std|zip5 when the lead has a ZIP, else std|city|state.
CREATE FUNCTION lead_address_key(std text, city text, state text, zip text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(CASE WHEN zip ~ '^[0-9]{5}$' THEN std || '|' || zip END,
                CASE WHEN state IS NOT NULL THEN std || '|' || city || '|' || state END);

CREATE FUNCTION lead_address_hash(std text, city text, state text, zip text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN encode(sha256(convert_to(lead_address_key(std, city, state, zip), 'UTF8')), 'hex');

CREATE OR REPLACE FUNCTION lead_merge(cur leads, inc leads) RETURNS leads
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
    -- The address moves as one block with the identity columns derived from it, so a lead's
    -- stored address and its keys always agree. A lead that already has a standardized address
    -- keeps it (the row matched it, so it is the same property) and only fills a missing city or
    -- ZIP; the incoming line replaces it when the lead has none, or when it adds the street type
    -- the lead's line lacked. The caller re-derives addr_hash afterwards.
    IF cur.addr_std IS NOT NULL AND inc.addr_std IS NOT NULL
       AND NOT (inc.addr_bare = cur.addr_std AND inc.addr_std <> cur.addr_std) THEN
        m.property_address := cur.property_address;
        m.property_unit    := cur.property_unit;
    ELSE
        m.property_address := coalesce(inc.property_address, cur.property_address);
        m.property_unit    := coalesce(inc.property_unit, cur.property_unit);
        m.addr_std         := coalesce(inc.addr_std, cur.addr_std);
        m.addr_bare        := coalesce(inc.addr_bare, cur.addr_bare);
    END IF;
    IF cur.addr_std IS NOT NULL AND inc.addr_std IS NOT NULL THEN
        m.property_city    := coalesce(cur.property_city, inc.property_city);
        m.addr_city        := CASE WHEN cur.property_city IS NULL THEN inc.addr_city ELSE cur.addr_city END;
        m.property_zip     := coalesce(cur.property_zip, inc.property_zip);
    ELSE
        m.property_city    := coalesce(inc.property_city, cur.property_city);
        m.addr_city        := CASE WHEN inc.property_city IS NULL THEN cur.addr_city ELSE inc.addr_city END;
        m.property_zip     := coalesce(inc.property_zip, cur.property_zip);
    END IF;
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

-- ------------------------------------------------------------------------------------------
-- Key conflicts keep both sides: the lead as it was and the incoming row, and which upload row.
-- A conflict on the address (an APN or MAK match whose address disagrees) may have no other lead.
-- ------------------------------------------------------------------------------------------
ALTER TABLE lead_key_conflicts ALTER COLUMN other_lead_id DROP NOT NULL;
ALTER TABLE lead_key_conflicts DROP CONSTRAINT lead_key_conflicts_key_name_check;
ALTER TABLE lead_key_conflicts ADD CONSTRAINT lead_key_conflicts_key_name_check
    CHECK (key_name IN ('mak', 'apn', 'addr_hash', 'address'));
ALTER TABLE lead_key_conflicts
    ADD COLUMN upload_id uuid,
    ADD COLUMN row_number integer,
    ADD COLUMN matched_on text,
    ADD COLUMN lead_row jsonb,
    ADD COLUMN incoming_row jsonb;
CREATE UNIQUE INDEX lead_key_conflicts_row_key ON lead_key_conflicts (upload_id, row_number, key_name)
    WHERE upload_id IS NOT NULL;

-- The single-row path follows the same rule.
CREATE OR REPLACE FUNCTION upsert_lead(p jsonb) RETURNS uuid
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

    SELECT * INTO cur FROM leads WHERE id = target FOR UPDATE;
    -- matched by MAK or APN, but the address names another property: record both, apply nothing
    IF o.by_addr IS DISTINCT FROM target AND inc.addr_hash IS NOT NULL AND cur.addr_hash IS NOT NULL
       AND inc.addr_hash <> cur.addr_hash THEN
        INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref, matched_on, lead_row, incoming_row)
        VALUES (target, o.by_addr, 'address', 'upsert_lead', CASE WHEN o.by_mak = target THEN 'mak' ELSE 'apn' END,
                to_jsonb(cur), p)
        ON CONFLICT DO NOTHING;
        RETURN target;
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
                          dnc_phones, email_verified, phone_verified, source, first_upload_id,
                          addr_std, addr_bare, addr_city)
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
                          m.phone_verified, m.source, m.first_upload_id, m.addr_std, m.addr_bare, m.addr_city)
         WHERE id = target;
    END IF;
    RETURN target;
END
$$;

-- ------------------------------------------------------------------------------------------
-- Nothing vanishes: every value removed from a staged row, and every blank record skipped,
-- is listed with its upload, row, column and reason.
-- ------------------------------------------------------------------------------------------
ALTER TABLE uploads ADD COLUMN blank_rows integer, ADD COLUMN ignored_headers text[];

CREATE TABLE ingest_dropped_values (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    upload_id   uuid NOT NULL,
    row_number  integer NOT NULL,
    column_name text NOT NULL,   -- the file's header, or '*' for a whole skipped record
    value       text,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_dropped_values_row_idx ON ingest_dropped_values (upload_id, row_number);
ALTER TABLE ingest_dropped_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_dropped_values FORCE ROW LEVEL SECURITY;

-- ------------------------------------------------------------------------------------------
-- Probable duplicates the exact keys did not merge, for a person to decide. Never auto-merged.
-- ------------------------------------------------------------------------------------------
CREATE TABLE lead_duplicate_candidates (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_id       uuid NOT NULL,   -- no foreign keys: the decision outlives a lead folded away
    other_lead_id uuid NOT NULL,
    score         numeric(5, 2) NOT NULL,
    reason        text NOT NULL,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'merged', 'dismissed')),
    decided_by    text,
    decided_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (lead_id < other_lead_id),
    UNIQUE (lead_id, other_lead_id)
);
ALTER TABLE lead_duplicate_candidates ENABLE ROW LEVEL SECURITY;
ALTER TABLE lead_duplicate_candidates FORCE ROW LEVEL SECURITY;

-- A manual merge of two leads (who decided it, and what the absorbed lead was).
CREATE TABLE lead_manual_merges (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kept_id     uuid NOT NULL,
    merged_id   uuid NOT NULL,
    merged_by   text NOT NULL,
    merged_row  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE lead_manual_merges ENABLE ROW LEVEL SECURITY;
ALTER TABLE lead_manual_merges FORCE ROW LEVEL SECURITY;

REVOKE ALL ON ingest_dropped_values, lead_duplicate_candidates, lead_manual_merges FROM PUBLIC, anon, authenticated;
GRANT ALL ON ingest_dropped_values, lead_duplicate_candidates, lead_manual_merges TO service_role;
REVOKE EXECUTE ON FUNCTION lead_address_key(text, text, text, text), lead_address_hash(text, text, text, text)
    FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION lead_address_key(text, text, text, text), lead_address_hash(text, text, text, text)
    TO service_role;
