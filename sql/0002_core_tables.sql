-- Core tables. Seed names are kept; comments say why a constraint exists.

CREATE TABLE brokers (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  text NOT NULL,
    email                 text,
    territory_states      text[] NOT NULL DEFAULT '{}'
                          CHECK (array_to_string(territory_states, ',') ~ '^([A-Z]{2}(,|$))*$'),
    daily_cap             integer NOT NULL DEFAULT 250 CHECK (daily_cap >= 0),
    notify_url            text,
    instantly_campaign_id text,
    active                boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX brokers_territory_idx ON brokers USING gin (territory_states);

CREATE TABLE uploads (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    content_sha256 text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    source         text NOT NULL DEFAULT 'csv',
    filename       text,
    storage_path   text NOT NULL,
    byte_size      bigint NOT NULL CHECK (byte_size >= 0),
    client_ip      inet,
    status         text NOT NULL DEFAULT 'received'
                   CHECK (status IN ('received', 'staged', 'merged', 'failed')),
    file_rows      integer,
    error          text,
    received_at    timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_received_idx ON uploads (received_at, id);

-- Same content within 7 days is a replay (409). Rows outlive the window; expired ones are reusable.
CREATE TABLE ingest_replay_guard (
    content_sha256 text PRIMARY KEY,
    upload_id      uuid REFERENCES uploads (id) ON DELETE SET NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL DEFAULT now() + interval '7 days'
);

CREATE TABLE leads (
    id                     uuid PRIMARY KEY DEFAULT uuid_v7(),
    -- dedupe keys
    mak                    text CHECK (mak ~ '^[0-9]{10}$'),
    apn                    text,
    -- hex SHA-256; a length check, because a regex here costs ~40% of bulk-insert time
    addr_hash              text CHECK (char_length(addr_hash) = 64),
    -- property
    property_address       text,
    property_unit          text,
    property_city          text,
    property_state         text CHECK (char_length(property_state) = 2 AND property_state = upper(property_state)),
    property_zip           text CHECK (char_length(property_zip) = 5),
    county                 text,
    property_type          text,
    bedrooms               integer,
    bathrooms              numeric(5, 2),
    building_sqft          integer,
    lot_size_sqft          integer,
    year_built             integer,
    assessed_value         numeric(14, 2),
    last_sale_date         date,
    last_sale_amount       numeric(14, 2),
    open_loans             integer,
    loan_balance           numeric(14, 2),
    estimated_value        numeric(14, 2),
    ltv                    numeric(7, 2),
    equity                 numeric(14, 2),
    mls_status             text,
    mls_date               date,
    mls_amount             numeric(14, 2),
    lien_amount            numeric(14, 2),
    owner_occupied         boolean,
    -- owners and mailing
    first_name             text,
    last_name              text,
    company_name           text,
    owner2_first_name      text,
    owner2_last_name       text,
    owner_birth_month      date,
    mailing_care_of        text,
    mailing_address        text,
    mailing_unit           text,
    mailing_city           text,
    mailing_state          text,
    mailing_zip            text,
    mailing_county         text,
    do_not_mail            boolean NOT NULL DEFAULT false,
    litigator              boolean NOT NULL DEFAULT false,
    deceased               boolean NOT NULL DEFAULT false,
    marketing_lists        text[] NOT NULL DEFAULT '{}',
    date_added_to_list     date,
    method_of_add          text,
    -- contact channels
    email                  text CHECK (email = lower(email)),
    alt_emails             text[] NOT NULL DEFAULT '{}',
    phone                  text CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    alt_phones             text[] NOT NULL DEFAULT '{}',
    dnc_phones             text[] NOT NULL DEFAULT '{}',
    -- verification
    email_verified         boolean NOT NULL DEFAULT false,
    phone_verified         boolean NOT NULL DEFAULT false,
    address_codes          text[] NOT NULL DEFAULT '{}',
    email_codes            text[] NOT NULL DEFAULT '{}',
    phone_codes            text[] NOT NULL DEFAULT '{}',
    verification_provider  text,
    verified_at            timestamptz,
    melissa_payload        jsonb,
    provider_payload       jsonb,
    -- funnel
    lead_score             numeric(5, 2) CHECK (lead_score BETWEEN 0 AND 100),
    assigned_broker_id     uuid REFERENCES brokers (id),
    campaign_status        campaign_status NOT NULL DEFAULT 'new',
    added_to_campaign_at   timestamptz,
    last_reply_at          timestamptz,
    consent                boolean NOT NULL DEFAULT false,
    consented_at           timestamptz,
    consent_method         text,
    vapi_call_id           text,
    call_attempt_count     integer NOT NULL DEFAULT 0 CHECK (call_attempt_count >= 0),
    broker_notes           text,
    source                 text,
    first_upload_id        uuid,  -- informational; no FK so bulk inserts skip an RI check per row
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- The three dedupe keys: unique where present. Plain (NULLS DISTINCT) partial indexes,
-- because a missing key must never collide with another missing key.
CREATE UNIQUE INDEX leads_mak_key ON leads (mak) WHERE mak IS NOT NULL;
CREATE UNIQUE INDEX leads_apn_key ON leads (property_state, county, apn)
    WHERE apn IS NOT NULL AND property_state IS NOT NULL AND county IS NOT NULL;
CREATE UNIQUE INDEX leads_addr_hash_key ON leads (addr_hash) WHERE addr_hash IS NOT NULL;
-- Feeder hot path: one broker's queued, emailable leads by score.
CREATE INDEX leads_feeder_idx ON leads (assigned_broker_id, lead_score DESC NULLS LAST)
    WHERE campaign_status = 'queued' AND email_verified;
-- Partial, so bulk ingestion (unscored, unassigned rows) does not pay for them.
CREATE INDEX leads_lead_score_idx ON leads (lead_score DESC) WHERE lead_score IS NOT NULL;
CREATE INDEX leads_broker_idx ON leads (assigned_broker_id) WHERE assigned_broker_id IS NOT NULL;

-- One row per CSV data row of an upload; transient (UNLOGGED: re-stage from the file after a crash).
CREATE UNLOGGED TABLE leads_staging (
    upload_id          uuid NOT NULL,
    row_number         integer NOT NULL,
    property_address   text,
    property_unit      text,
    property_city      text,
    property_state     text,
    property_zip       text,
    county             text,
    apn                text,
    owner_occupied     boolean,
    first_name         text,
    last_name          text,
    company_name       text,
    owner2_first_name  text,
    owner2_last_name   text,
    mailing_care_of    text,
    mailing_address    text,
    mailing_unit       text,
    mailing_city       text,
    mailing_state      text,
    mailing_zip        text,
    mailing_county     text,
    do_not_mail        boolean,
    property_type      text,
    bedrooms           integer,
    bathrooms          numeric,
    building_sqft      integer,
    lot_size_sqft      integer,
    year_built         integer,
    assessed_value     numeric,
    last_sale_date     date,
    last_sale_amount   numeric,
    open_loans         integer,
    loan_balance       numeric,
    estimated_value    numeric,
    ltv                numeric,
    equity             numeric,
    mls_status         text,
    mls_date           date,
    mls_amount         numeric,
    lien_amount        numeric,
    marketing_lists    text[],
    date_added_to_list date,
    method_of_add      text,
    email              text,
    alt_emails         text[],
    phone              text,
    alt_phones         text[],
    dnc_phones         text[],
    litigator          boolean,
    addr_hash          text,
    mak                text
);
CREATE INDEX leads_staging_upload_idx ON leads_staging (upload_id, row_number);

-- Lineage: which lead every staged row became, and which key matched. No foreign keys: the
-- per-row RI trigger doubled the cost of a bulk merge; the deduped_leads asset check verifies
-- that every lineage row points at a lead instead.
CREATE TABLE lead_sources (
    upload_id  uuid NOT NULL,
    row_number integer NOT NULL,
    lead_id    uuid NOT NULL,
    matched_on text NOT NULL CHECK (matched_on IN ('mak', 'apn', 'addr_hash', 'in_batch', 'new')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upload_id, row_number)
);
CREATE INDEX lead_sources_lead_idx ON lead_sources (lead_id);

-- A row whose keys point at two different leads: the first match (MAK > APN > addr_hash) is kept
-- and the disagreement is recorded here for a human to resolve.
CREATE TABLE lead_key_conflicts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_id       uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    other_lead_id uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    key_name      text NOT NULL CHECK (key_name IN ('mak', 'apn', 'addr_hash')),
    source_ref    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lead_id, other_lead_id, key_name)
);

CREATE TABLE pipeline_dlq (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stage       text NOT NULL,
    source_ref  text,
    row_number  integer,
    column_name text,
    reason      text NOT NULL,
    payload     jsonb,
    attempts    integer NOT NULL DEFAULT 0,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'redriven', 'resolved', 'discarded')),
    run_id      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pipeline_dlq_pending_idx ON pipeline_dlq (stage, created_at) WHERE status = 'pending';
CREATE INDEX pipeline_dlq_source_idx ON pipeline_dlq (stage, source_ref);

-- Append-only event log. idempotency_key lets a re-run write "the same" event at most once.
CREATE TABLE pipeline_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type      text NOT NULL,
    stage           text,
    lead_id         uuid,
    upload_id       uuid,
    run_id          text,
    partition_key   text,
    count           integer,
    duration_ms     integer,
    payload         jsonb NOT NULL DEFAULT '{}',
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pipeline_events_type_time_idx ON pipeline_events (event_type, created_at);
CREATE INDEX pipeline_events_lead_idx ON pipeline_events (lead_id) WHERE lead_id IS NOT NULL;

CREATE TABLE verification_code_map (
    code        text PRIMARY KEY,
    provider    text NOT NULL DEFAULT 'melissa',
    channel     text NOT NULL CHECK (channel IN ('address', 'phone', 'email', 'geocode', 'change', 'match', 'transmission')),
    meaning     text NOT NULL,
    usable      boolean NOT NULL,
    -- true when the code forbids the channel outright (spamtrap, DNC...), not just fails to verify it
    suppress    boolean NOT NULL DEFAULT false
);

CREATE TABLE suppression_list (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel    text NOT NULL CHECK (channel IN ('email', 'phone')),
    value      text NOT NULL,
    reason     text NOT NULL,
    source     text NOT NULL DEFAULT 'internal'
               CHECK (source IN ('internal', 'national_dnc', 'provider', 'unsubscribe', 'bounce', 'revocation')),
    lead_id    uuid REFERENCES leads (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- internal DNC requests are kept 5 years (TCPA); NULL = permanent
    expires_at timestamptz,
    UNIQUE (channel, value)
);

CREATE TABLE consent_tokens (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id    uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    nonce_hash text NOT NULL UNIQUE CHECK (nonce_hash ~ '^[0-9a-f]{64}$'),
    batch_date date,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    CHECK (expires_at > issued_at)
);
CREATE INDEX consent_tokens_lead_idx ON consent_tokens (lead_id);

CREATE TABLE lead_consent_audit (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_id            uuid NOT NULL REFERENCES leads (id),
    broker_id          uuid REFERENCES brokers (id),
    decision           text NOT NULL CHECK (decision IN ('granted', 'rejected', 'revoked')),
    reason             text,
    phone_number       text,
    disclosure_version text,
    method             text,
    ip                 inet,
    user_agent         text,
    token_nonce_hash   text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lead_consent_audit_lead_idx ON lead_consent_audit (lead_id, created_at);

-- One row per lead per batch date; UNIQUE (lead_id) makes "sent at most once" a database fact,
-- which is what keeps backfills from sending twice.
CREATE TABLE campaign_sends (
    batch_date       date NOT NULL,
    lead_id          uuid NOT NULL REFERENCES leads (id),
    broker_id        uuid NOT NULL REFERENCES brokers (id),
    campaign_id      text,
    consent_token_id uuid REFERENCES consent_tokens (id),
    status           text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'pushed', 'failed')),
    pushed_at        timestamptz,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_date, lead_id),
    UNIQUE (lead_id)
);
CREATE INDEX campaign_sends_broker_day_idx ON campaign_sends (batch_date, broker_id);

-- Provider webhook inbox: stored before it is answered; unique per provider event.
CREATE TABLE webhook_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider     text NOT NULL CHECK (provider IN ('instantly', 'vapi')),
    event_key    text NOT NULL,
    event_type   text,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'failed')),
    UNIQUE (provider, event_key)
);
CREATE INDEX webhook_events_pending_idx ON webhook_events (provider, id) WHERE status = 'pending';

CREATE TABLE email_replies (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_event_id bigint NOT NULL UNIQUE REFERENCES webhook_events (id),
    lead_id          uuid REFERENCES leads (id),
    broker_id        uuid REFERENCES brokers (id),
    intent           text NOT NULL,
    reply_text       text,
    received_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE broker_phone_numbers (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    broker_id            uuid NOT NULL REFERENCES brokers (id),
    e164                 text NOT NULL UNIQUE CHECK (e164 ~ '^\+[1-9][0-9]{6,14}$'),
    state                text CHECK (state ~ '^[A-Z]{2}$'),
    vapi_phone_number_id text,
    health_score         numeric(5, 2) NOT NULL DEFAULT 100 CHECK (health_score BETWEEN 0 AND 100),
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lead_number_assignments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id         uuid NOT NULL REFERENCES leads (id),
    broker_id       uuid NOT NULL REFERENCES brokers (id),
    phone_number_id uuid NOT NULL REFERENCES broker_phone_numbers (id),
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'booked_locked', 'unreachable', 'released')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 5),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX lead_number_assignments_open_key ON lead_number_assignments (lead_id)
    WHERE status IN ('active', 'booked_locked');

CREATE TABLE calls (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id         uuid NOT NULL REFERENCES leads (id),
    broker_id       uuid NOT NULL REFERENCES brokers (id),
    attempt_number  integer NOT NULL CHECK (attempt_number BETWEEN 1 AND 5),
    phone_number_id uuid REFERENCES broker_phone_numbers (id),
    vapi_call_id    text UNIQUE,
    status          text NOT NULL DEFAULT 'requested',
    ended_reason    text,
    outcome         text CHECK (outcome IN ('booked', 'callback', 'not_interested', 'no_answer', 'failed')),
    started_at      timestamptz,
    ended_at        timestamptz,
    cost            numeric(10, 4),
    analysis        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lead_id, attempt_number)
);

CREATE TABLE invoices (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    broker_id    uuid NOT NULL REFERENCES brokers (id),
    period_start date NOT NULL,
    period_end   date NOT NULL,
    total        numeric(12, 2) NOT NULL DEFAULT 0,
    line_items   jsonb NOT NULL DEFAULT '[]',
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'issued', 'paid', 'void')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (broker_id, period_start),
    CHECK (period_end >= period_start)
);

CREATE TABLE billing_events (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    broker_id   uuid NOT NULL REFERENCES brokers (id),
    lead_id     uuid NOT NULL REFERENCES leads (id),
    call_id     uuid REFERENCES calls (id),
    event_type  text NOT NULL CHECK (event_type IN ('appointment_set', 'application_submitted', 'loan_funded')),
    amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    invoice_id  uuid REFERENCES invoices (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lead_id, event_type)
);
CREATE INDEX billing_events_broker_time_idx ON billing_events (broker_id, occurred_at);

-- updated_at maintenance everywhere it exists.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['brokers', 'uploads', 'leads', 'pipeline_dlq', 'campaign_sends',
                             'broker_phone_numbers', 'lead_number_assignments', 'calls', 'invoices']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION touch_updated_at()',
                       t || '_touch_updated_at', t);
    END LOOP;
END
$$;

CREATE TRIGGER pipeline_events_append_only BEFORE UPDATE OR DELETE ON pipeline_events
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();
CREATE TRIGGER lead_consent_audit_append_only BEFORE UPDATE OR DELETE ON lead_consent_audit
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();
-- TRUNCATE bypasses row triggers; forbid it too.
CREATE TRIGGER pipeline_events_no_truncate BEFORE TRUNCATE ON pipeline_events
    FOR EACH STATEMENT EXECUTE FUNCTION reject_mutation();
CREATE TRIGGER lead_consent_audit_no_truncate BEFORE TRUNCATE ON lead_consent_audit
    FOR EACH STATEMENT EXECUTE FUNCTION reject_mutation();
