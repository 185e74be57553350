-- Voice: number pools, calls placed through VAPI and what became of them, broker notifications,
-- and the pre-filter the compliance gate reads.

-- ------------------------------------------------------------------------------------------
-- Number pools. A number's health is its recent answer rate (recomputed by call_outcomes); the
-- pool prefers a number in the lead's state (local presence), then the healthiest.
-- ------------------------------------------------------------------------------------------
ALTER TABLE broker_phone_numbers
    ADD COLUMN calls_placed   integer NOT NULL DEFAULT 0 CHECK (calls_placed >= 0),
    ADD COLUMN calls_answered integer NOT NULL DEFAULT 0 CHECK (calls_answered >= 0);
CREATE INDEX broker_phone_numbers_pool_idx ON broker_phone_numbers (broker_id, state, health_score DESC)
    WHERE active;

-- ------------------------------------------------------------------------------------------
-- Calls. One row per attempt (UNIQUE (lead_id, attempt_number) already makes a re-run unable to
-- place an attempt twice); the idempotency key is what we send VAPI in the call's metadata, so a
-- retried create can find the call it may already have placed.
-- ------------------------------------------------------------------------------------------
ALTER TABLE calls
    ADD COLUMN idempotency_key text UNIQUE,
    ADD COLUMN dialed_number   text CHECK (dialed_number ~ '^\+[1-9][0-9]{6,14}$'),
    ADD COLUMN error           text,
    ADD COLUMN follow_up_at    timestamptz,
    ADD COLUMN transcript      text,
    ADD COLUMN report_event_id bigint REFERENCES webhook_events (id),
    ADD COLUMN last_status_at  timestamptz;
ALTER TABLE calls DROP CONSTRAINT calls_outcome_check;
ALTER TABLE calls ADD CONSTRAINT calls_outcome_check CHECK (outcome IN (
    'booked', 'callback', 'not_interested', 'no_answer', 'busy', 'voicemail', 'opted_out', 'failed'));
ALTER TABLE calls ADD CONSTRAINT calls_status_check CHECK (status IN (
    'requested', 'scheduled', 'queued', 'ringing', 'in-progress', 'forwarding', 'ended', 'failed'));
-- Concurrency caps count the calls still open.
CREATE INDEX calls_open_idx ON calls (broker_id) WHERE status NOT IN ('ended', 'failed');
CREATE INDEX calls_lead_time_idx ON calls (lead_id, created_at);

-- When a lead may be called next (a callback time the lead asked for, or "retry later").
ALTER TABLE leads ADD COLUMN next_call_at timestamptz;

-- ------------------------------------------------------------------------------------------
-- Broker notifications: our signed webhook to the broker's notify_url, one per call and kind,
-- retried with backoff, parked ('dead') after the last try with a dead letter.
-- ------------------------------------------------------------------------------------------
CREATE TABLE broker_notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    broker_id       uuid NOT NULL REFERENCES brokers (id),
    lead_id         uuid NOT NULL REFERENCES leads (id),
    call_id         uuid NOT NULL REFERENCES calls (id),
    kind            text NOT NULL CHECK (kind IN ('appointment_booked', 'callback_requested')),
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead', 'no_url')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, kind)
);
CREATE INDEX broker_notifications_due_idx ON broker_notifications (next_attempt_at) WHERE status = 'pending';
CREATE TRIGGER broker_notifications_touch_updated_at BEFORE UPDATE ON broker_notifications
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

ALTER TABLE broker_notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE broker_notifications FORCE ROW LEVEL SECURITY;
REVOKE ALL ON broker_notifications FROM PUBLIC, anon, authenticated;
GRANT SELECT ON broker_notifications TO authenticated;
GRANT ALL ON broker_notifications TO service_role;
CREATE POLICY broker_notifications_broker_select ON broker_notifications FOR SELECT TO authenticated
    USING (broker_id = (SELECT request_broker_id()));

-- ------------------------------------------------------------------------------------------
-- The gate's pre-filter: leads that asked to be called (a positive reply and written consent on
-- record) with every fact the compliance gate decides on. It filters only on what makes a call
-- impossible for a long time (no consent, do-not-contact, converted, five attempts); the gate
-- itself refuses the rest and says why, so refusals are counted by reason.
-- ------------------------------------------------------------------------------------------
CREATE FUNCTION voice_call_candidates(p_now timestamptz, p_limit integer)
RETURNS TABLE (
    lead_id uuid, broker_id uuid, dial_number text, campaign_status text, phone_verified boolean,
    consent_phone text, consent_version text, consent_granted_at timestamptz, consent_revoked_at timestamptz,
    attempts integer, last_attempt_at timestamptz, calls_last_24h integer, next_call_at timestamptz,
    suppressed boolean, flags text[], property_zip text, property_state text, mailing_zip text,
    mailing_state text, first_name text
)
LANGUAGE sql STABLE
AS $$
    SELECT l.id, l.assigned_broker_id, l.consented_phone, l.campaign_status::text, l.phone_verified,
           g.phone_number, g.disclosure_version, g.created_at, r.created_at,
           l.call_attempt_count, c.last_at, coalesce(c.day_count, 0), l.next_call_at,
           EXISTS (SELECT 1 FROM suppression_list s
                   WHERE s.channel = 'phone' AND s.value = l.consented_phone
                     AND (s.expires_at IS NULL OR s.expires_at > p_now)),
           array_remove(ARRAY[
               CASE WHEN l.consented_phone = ANY (l.dnc_phones) OR 'BP02' = ANY (l.phone_codes) THEN 'vendor_dnc' END,
               CASE WHEN 'BP03' = ANY (l.phone_codes) THEN 'vendor_tcpa' END,
               CASE WHEN l.litigator OR 'BL01' = ANY (l.phone_codes) THEN 'litigator' END,
               CASE WHEN l.deceased OR 'BD01' = ANY (l.phone_codes) THEN 'deceased' END], NULL),
           l.property_zip, l.property_state, l.mailing_zip, l.mailing_state, l.first_name
    FROM leads l
    LEFT JOIN LATERAL (SELECT a.phone_number, a.disclosure_version, a.created_at FROM lead_consent_audit a
                       WHERE a.lead_id = l.id AND a.decision = 'granted'
                       ORDER BY a.created_at DESC, a.id DESC LIMIT 1) g ON true
    LEFT JOIN LATERAL (SELECT a.created_at FROM lead_consent_audit a
                       WHERE a.lead_id = l.id AND a.decision = 'revoked' AND a.created_at >= g.created_at
                       ORDER BY a.created_at DESC LIMIT 1) r ON true
    LEFT JOIN LATERAL (SELECT max(k.created_at) AS last_at,
                              count(*) FILTER (WHERE k.created_at > p_now - interval '24 hours') AS day_count
                       FROM calls k WHERE k.lead_id = l.id) c ON true
    WHERE l.consent AND l.consented_phone IS NOT NULL
      AND l.assigned_broker_id IS NOT NULL
      AND l.last_reply_intent IN ('interested', 'question')
      AND l.campaign_status NOT IN ('do_not_contact', 'converted')
      AND l.call_attempt_count < 5
      -- one call at a time per lead; a call whose report never came stops blocking after two hours
      AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.lead_id = l.id AND k.status NOT IN ('ended', 'failed')
                        AND k.created_at > p_now - interval '2 hours')
    ORDER BY l.next_call_at NULLS FIRST, l.lead_score DESC NULLS LAST, l.id
    LIMIT p_limit
$$;
CREATE INDEX leads_voice_candidates_idx ON leads (next_call_at NULLS FIRST)
    WHERE consent AND consented_phone IS NOT NULL;
CREATE INDEX lead_consent_audit_decision_idx ON lead_consent_audit (lead_id, decision, created_at);

REVOKE ALL ON FUNCTION voice_call_candidates(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION voice_call_candidates(timestamptz, integer) TO service_role;
