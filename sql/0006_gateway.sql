-- Gateway rate limiting (100 requests/min per client IP by default).
-- The counter lives here, not in process memory, so the limit holds when several gateway
-- processes serve the same clients. One row per client: a fixed window that the upsert either
-- bumps or restarts, so the table grows with distinct clients, not with requests.
CREATE TABLE gateway_rate_limits (
    client_key   text PRIMARY KEY,            -- client IP as text ('unknown' when the server saw none)
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL DEFAULT 1 CHECK (hits >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- Pruning old windows scans by age.
CREATE INDEX gateway_rate_limits_window_idx ON gateway_rate_limits (window_start);

-- Internal bookkeeping: the pipeline (service_role) only; brokers and anon see nothing.
REVOKE ALL ON gateway_rate_limits FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON gateway_rate_limits TO service_role;
ALTER TABLE gateway_rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_rate_limits FORCE ROW LEVEL SECURITY;
