-- Campaign at 10M leads / 1,000 brokers.

-- The feeder walks one broker's queued leads by score and probes the suppression list with each
-- lead's email: with `id` and `email` in the index, pages the visibility map marks all-visible
-- are not read from the 10M-row heap at all (an index-only scan). Same name as before.
DROP INDEX leads_feeder_idx;
CREATE INDEX leads_feeder_idx ON leads (assigned_broker_id, lead_score DESC NULLS LAST) INCLUDE (id, email)
    WHERE campaign_status = 'queued' AND email_verified;

-- A day's sends are inserted `queued` and updated once (pushed/failed): free room on each page
-- lets that update be HOT (no new entry in the three indexes) for 250,000 rows a day.
ALTER TABLE campaign_sends SET (fillfactor = 70);
