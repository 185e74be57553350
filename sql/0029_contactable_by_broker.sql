-- The feeder asks "is this lead in the 05:30 set for its broker?" for each of a broker's next 250
-- candidates. Through the primary key, those are 250 probes into random leaves of a 10M-entry
-- index, mostly pages the day has not touched yet; keyed by broker first, one broker's probes land
-- in the few leaves that hold its ~10,000 members.
CREATE INDEX contactable_leads_broker_lead_idx ON contactable_leads (broker_id, lead_id);
