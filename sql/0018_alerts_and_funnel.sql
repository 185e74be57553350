-- Alerts: one row per alert key, so a condition notifies once when it starts, again only after
-- its repeat window, and once when it clears — across sensor ticks and daemon restarts.
CREATE TABLE alert_state (
    alert_key   text PRIMARY KEY,
    firing      boolean NOT NULL,
    value       double precision,
    summary     text NOT NULL,
    fired_at    timestamptz,           -- when the current (or last) episode began
    notified_at timestamptz,           -- the last message sent for this key
    cleared_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER alert_state_touch_updated_at BEFORE UPDATE ON alert_state
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
REVOKE ALL ON alert_state FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_state TO service_role;
ALTER TABLE alert_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_state FORCE ROW LEVEL SECURITY;

-- The funnel reads each stage's entries since its window began: time-ordered reads, not scans.
CREATE INDEX leads_created_at_idx ON leads (created_at);
CREATE INDEX leads_email_verified_at_idx ON leads (verified_at) WHERE email_verified;
CREATE INDEX billing_events_type_time_idx ON billing_events (event_type, occurred_at);
-- The signature-failure alert counts webhooks received in the last hour.
CREATE INDEX webhook_events_received_idx ON webhook_events (received_at);
