-- Verification: what every provider result code means, whether it makes a contact
-- channel usable, the lead fold used when verification finds that two leads share a MAK, and
-- the indexes the verified_leads work queue and broker assignment read.

-- ------------------------------------------------------------------------------------------
-- Result codes. A channel (email / phone / address) is usable when at least one of its codes is
-- usable and none of its codes is unusable (see channel_usable). Codes of other channels
-- ('change', 'geocode', 'match', 'transmission') never decide a channel; they are listed so
-- every code we store has a meaning. `suppress` = the value must go on suppression_list.
-- ------------------------------------------------------------------------------------------
INSERT INTO verification_code_map (code, provider, channel, meaning, usable, suppress) VALUES
    -- Melissa Personator: address status
    ('AS01', 'melissa', 'address', 'address fully verified', true, false),
    ('AS02', 'melissa', 'address', 'building verified, suite missing or invalid', true, false),
    ('AS03', 'melissa', 'address', 'non-USPS address verified', true, false),
    ('AS09', 'melissa', 'address', 'foreign address', false, false),
    ('AS10', 'melissa', 'address', 'commercial mail receiving agency (CMRA)', false, false),
    ('AS12', 'melissa', 'address', 'addressee moved', false, false),
    ('AS13', 'melissa', 'address', 'address updated by LACS', true, false),
    ('AS14', 'melissa', 'address', 'suite appended', true, false),
    ('AS16', 'melissa', 'address', 'address vacant', false, false),
    ('AS17', 'melissa', 'address', 'no USPS delivery', false, false),
    ('AS18', 'melissa', 'address', 'DPV locked out', false, false),
    ('AS20', 'melissa', 'address', 'deliverable by USPS only', true, false),
    ('AS23', 'melissa', 'address', 'extraneous information in the address', true, false),
    -- Melissa: address errors
    ('AE01', 'melissa', 'address', 'general address error (city, state or ZIP invalid)', false, false),
    ('AE02', 'melissa', 'address', 'unknown street', false, false),
    ('AE03', 'melissa', 'address', 'address component mismatch', false, false),
    ('AE05', 'melissa', 'address', 'multiple matches', false, false),
    ('AE08', 'melissa', 'address', 'sub-premise (suite) invalid', false, false),
    ('AE09', 'melissa', 'address', 'sub-premise (suite) missing', false, false),
    -- Melissa: changes made to the input (informational)
    ('AC01', 'melissa', 'change', 'postal code changed', true, false),
    ('AC02', 'melissa', 'change', 'state changed', true, false),
    ('AC03', 'melissa', 'change', 'city changed', true, false),
    -- Melissa: phone
    ('PS01', 'melissa', 'phone', 'phone valid', true, false),
    ('PS02', 'melissa', 'phone', 'seven-digit match only (area code unconfirmed)', false, false),
    ('PS03', 'melissa', 'phone', 'area code corrected', true, false),
    ('PS06', 'melissa', 'phone', 'area code updated', true, false),
    ('PS07', 'melissa', 'phone', 'cellular line', true, false),
    ('PS08', 'melissa', 'phone', 'landline', true, false),
    ('PE01', 'melissa', 'phone', 'invalid phone', false, false),
    ('PE02', 'melissa', 'phone', 'blank phone', false, false),
    ('PE03', 'melissa', 'phone', 'too many or too few digits', false, false),
    ('PE04', 'melissa', 'phone', 'multiple area-code matches', false, false),
    ('PE05', 'melissa', 'phone', 'invalid prefix', false, false),
    -- Melissa: email. ES03 "unknown" is not usable: an unconfirmed mailbox risks bounces.
    ('ES01', 'melissa', 'email', 'email valid', true, false),
    ('ES03', 'melissa', 'email', 'email unknown (mailbox not confirmed)', false, false),
    ('ES04', 'melissa', 'email', 'mobile email domain (FCC wireless list): do not email', false, false),
    ('ES05', 'melissa', 'email', 'disposable email domain', false, false),
    ('ES06', 'melissa', 'email', 'spamtrap: never email', false, true),
    ('EE01', 'melissa', 'email', 'email syntax error', false, false),
    ('EE02', 'melissa', 'email', 'email domain not found', false, false),
    ('EE03', 'melissa', 'email', 'email server not found', false, false),
    ('EE04', 'melissa', 'email', 'invalid mailbox', false, false),
    -- Melissa: geocode, match, request level
    ('GS01', 'melissa', 'geocode', 'geocoded to street level', true, false),
    ('VR01', 'melissa', 'match', 'individual and phone match', true, false),
    ('GE01', 'melissa', 'transmission', 'empty request', false, false),
    ('GE02', 'melissa', 'transmission', 'empty record', false, false),
    ('GE03', 'melissa', 'transmission', 'too many records in the request', false, false),
    ('GE04', 'melissa', 'transmission', 'license key empty', false, false),
    ('GE05', 'melissa', 'transmission', 'license key invalid', false, false),
    ('GE06', 'melissa', 'transmission', 'license key disabled', false, false),
    ('GE07', 'melissa', 'transmission', 'invalid request', false, false),
    ('GE08', 'melissa', 'transmission', 'product not enabled for this license', false, false),
    ('GE14', 'melissa', 'transmission', 'out of credits', false, false),
    ('SE01', 'melissa', 'transmission', 'Melissa internal error', false, false),
    -- BatchData skip trace has flags, not codes: these pseudo-codes are ours, so its verdicts
    -- land in the same arrays and obey the same usable/suppress rules as Melissa's.
    ('BP01', 'batchdata', 'phone', 'skip-trace phone, reachable, not on DNC/TCPA lists', true, false),
    ('BP02', 'batchdata', 'phone', 'skip-trace phone on a do-not-call list', false, true),
    ('BP03', 'batchdata', 'phone', 'skip-trace phone TCPA-blacklisted', false, true),
    ('BP04', 'batchdata', 'phone', 'skip-trace phone not tested or not reachable', false, false),
    ('BL01', 'batchdata', 'phone', 'phone of a known TCPA litigator: never call', false, true),
    ('BD01', 'batchdata', 'phone', 'phone of a deceased person: never call', false, true),
    ('BE01', 'batchdata', 'email', 'skip-trace email, tested', true, false),
    ('BE02', 'batchdata', 'email', 'skip-trace email, not tested', false, false),
    ('BD02', 'batchdata', 'email', 'email of a deceased person: never email', false, true),
    ('BM01', 'batchdata', 'match', 'property matched by skip trace', true, false),
    ('BM02', 'batchdata', 'match', 'no skip-trace match', false, false)
ON CONFLICT (code) DO UPDATE
    SET provider = EXCLUDED.provider, channel = EXCLUDED.channel, meaning = EXCLUDED.meaning,
        usable = EXCLUDED.usable, suppress = EXCLUDED.suppress;

-- Usable = some code of the channel says so and none of its codes says otherwise.
-- Codes missing from the map are ignored (Melissa documents more codes than we list), but
-- an unknown code alone never makes a channel usable.
CREATE FUNCTION channel_usable(p_codes text[], p_channel text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(bool_or(usable) AND bool_and(usable), false)
    FROM verification_code_map
    WHERE code = ANY (p_codes) AND channel = p_channel
$$;

-- ------------------------------------------------------------------------------------------
-- Folding one lead into another (a MAK found by verification already belongs to another lead).
-- Same rules as dedupe: lead_merge() decides every column; the folded lead's lineage,
-- suppressions and key conflicts move to the survivor; the fold is logged in pipeline_events.
--   * a lead with outreach history (sends, calls, consent, replies, billing, or a status past
--     'queued') is never deleted: if only p_from has history the roles swap; if both have it,
--     nothing is folded and the clash is recorded in lead_key_conflicts (returns NULL);
--   * a survivor whose primary email or phone changed gets verified_at = NULL (re-verified).
-- Returns the surviving lead id.
-- ------------------------------------------------------------------------------------------
CREATE FUNCTION lead_has_outreach_history(p_lead uuid) RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT EXISTS (SELECT 1 FROM leads WHERE id = p_lead AND campaign_status NOT IN ('new', 'queued'))
        OR EXISTS (SELECT 1 FROM campaign_sends WHERE lead_id = p_lead)
        OR EXISTS (SELECT 1 FROM consent_tokens WHERE lead_id = p_lead)
        OR EXISTS (SELECT 1 FROM lead_consent_audit WHERE lead_id = p_lead)
        OR EXISTS (SELECT 1 FROM email_replies WHERE lead_id = p_lead)
        OR EXISTS (SELECT 1 FROM lead_number_assignments WHERE lead_id = p_lead)
        OR EXISTS (SELECT 1 FROM calls WHERE lead_id = p_lead)
        OR EXISTS (SELECT 1 FROM billing_events WHERE lead_id = p_lead)
$$;

CREATE FUNCTION fold_lead(p_from uuid, p_into uuid, p_key text, p_source_ref text) RETURNS uuid
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
            'lead_merged:' || p_from)
    ON CONFLICT (idempotency_key) DO NOTHING;
    RETURN p_into;
END
$$;

-- ------------------------------------------------------------------------------------------
-- Index for the verified_leads work queue.
-- ------------------------------------------------------------------------------------------
-- Due leads, never-verified first then the oldest verification: the asset reads this index
-- in order and stops after one chunk instead of scanning every lead.
CREATE INDEX leads_verification_due_idx ON leads (verified_at NULLS FIRST, id)
    WHERE campaign_status IN ('new', 'queued', 'active', 'replied');
-- (Broker open load needs no index of its own: it is counted once per assignment pass, in one
-- aggregate over leads_broker_idx; a partial index for it would compete with leads_feeder_idx.)

-- The pipeline only; brokers and anon call none of these.
REVOKE ALL ON FUNCTION channel_usable(text[], text), lead_has_outreach_history(uuid),
    fold_lead(uuid, uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION channel_usable(text[], text), lead_has_outreach_history(uuid),
    fold_lead(uuid, uuid, text, text) TO service_role;
