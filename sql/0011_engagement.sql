-- Engagement: the provider webhook inbox's retry bookkeeping, classified replies, the versioned
-- written-consent disclosure, and what a reply or a consent form changes on a lead.

-- Inbox processing: a row is retried until it succeeds or reaches the try limit, then it goes to
-- the dead-letter queue (status 'failed') so one poison event never blocks the others.
ALTER TABLE webhook_events
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN last_error      text,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN outcome         text;
-- The sensor's retry scan: pending rows that already failed at least once.
CREATE INDEX webhook_events_retry_idx ON webhook_events (provider, next_attempt_at)
    WHERE status = 'pending' AND attempts > 0;

-- What the classifier decided, and on what: replies are judged again only by a re-run of the event.
ALTER TABLE email_replies
    ADD COLUMN event_type  text,
    ADD COLUMN lead_email  text,
    ADD COLUMN subject     text,
    ADD COLUMN revocation  boolean NOT NULL DEFAULT false,
    ADD COLUMN confidence  numeric(4, 3) CHECK (confidence BETWEEN 0 AND 1),
    ADD COLUMN classifier  text;
ALTER TABLE email_replies
    ADD CONSTRAINT email_replies_intent_known CHECK (intent IN (
        'interested', 'question', 'not_interested', 'unsubscribe', 'out_of_office',
        'wrong_person', 'bounce', 'hostile'));
CREATE INDEX email_replies_lead_idx ON email_replies (lead_id, received_at);

-- Replies arrive keyed by e-mail address; the merge keys are not e-mail, so it needs its own index.
CREATE INDEX leads_email_idx ON leads (email) WHERE email IS NOT NULL;

-- The latest classified reply, and the phone number the lead consented to be called on (it may
-- differ from `phone`: the consent form lets the lead correct it). A lead may be called once
-- `consent` is true with a `consented_phone`, its last reply was interested or a question, and it
-- is not do_not_contact.
ALTER TABLE leads
    ADD COLUMN last_reply_intent text,
    ADD COLUMN consented_phone   text CHECK (consented_phone ~ '^\+[1-9][0-9]{6,14}$');

-- The written-consent disclosures a lead can have agreed to, by version. The audit row names the
-- version, so the exact words shown are always recoverable. `{broker}` is replaced by the
-- broker's name when the page is rendered.
CREATE TABLE consent_disclosures (
    version    text PRIMARY KEY,
    body       text NOT NULL,
    active     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- At most one disclosure is shown to new visitors.
CREATE UNIQUE INDEX consent_disclosures_one_active ON consent_disclosures (active) WHERE active;
INSERT INTO consent_disclosures (version, body, active) VALUES (
    'pewc-2026-11-v1',
    'By checking the box and selecting "I agree", I authorize {broker} and Equity Connect on its '
    'behalf to contact me about reverse mortgage and home equity options at the telephone number '
    'above, including by calls that use an artificial or AI-generated voice or a prerecorded message '
    'and by automated technology. I understand that my consent is not a condition of purchasing any '
    'property, goods or services, that call and message rates may apply, and that I can revoke this '
    'consent at any time by any reasonable means, for example by replying STOP or using the link on '
    'the confirmation page.',
    true);

REVOKE ALL ON consent_disclosures FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON consent_disclosures TO service_role;
ALTER TABLE consent_disclosures ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_disclosures FORCE ROW LEVEL SECURITY;
