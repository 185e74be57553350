-- Folding duplicate rows of one upload before they reach `leads`.
--
-- The set-based merge used to insert the first row of an in-file duplicate group and then update
-- that lead once per further row (one round each). For groups whose rows agree on every key and
-- match no existing lead, the same result comes from folding the rows with lead_merge() first and
-- inserting once: ~150k fewer updates of wide, indexed rows per 1M-row upload.

-- lead_merge, amended so that merging into an empty lead equals inserting the row as it is
-- (an APN without county used to be dropped on merge but kept on insert).
CREATE OR REPLACE FUNCTION lead_merge(cur leads, inc leads) RETURNS leads
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
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

-- uuid_v7() as one expression: the subquery form ran as a separate command, which a parallel
-- worker may not start ("cannot start commands during a parallel operation" at 1M rows), and
-- could not be inlined.
CREATE OR REPLACE FUNCTION uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
            || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14, 3)
            || substr(replace(gen_random_uuid()::text, '-', ''), 17, 16))::uuid
$$;

-- Strict, so the aggregate starts from the first row itself (no initial state).
CREATE FUNCTION lead_fold_step(acc leads, inc leads) RETURNS leads
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT lead_merge(acc, inc) $$;

-- lead_fold(row ORDER BY row_number): the rows of a duplicate group merged in file order.
CREATE AGGREGATE lead_fold(leads) (SFUNC = lead_fold_step, STYPE = leads);

GRANT EXECUTE ON FUNCTION lead_fold_step(leads, leads), lead_fold(leads) TO service_role;
