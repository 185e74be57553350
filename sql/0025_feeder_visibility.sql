-- Keep the feeder's index-only scans index-only.
--
-- The 06:00 feeder reads `leads_feeder_idx` and `contactable_leads_pkey` with index-only scans:
-- they skip the heap only for pages the visibility map marks all-visible. The 05:30 refresh and
-- the day's rescoring leave ~1% of leads changed, which at 10M leads clears that mark on a large
-- share of pages (a broker's 250 best leads are spread over the whole heap): measured at 10M,
-- 65 of 252 index entries and 209 of 250 set lookups went to the heap, feeder p95 7.6 ms; after a
-- plain VACUUM of `leads` (11 s) 4.3 ms. The default trigger (20% of the table dead) would not
-- vacuum a 10M-row table for weeks of 1% days; these make autovacuum run within minutes of such a
-- change, well inside the 30 minutes between the refresh and the send.
ALTER TABLE leads SET (autovacuum_vacuum_scale_factor = 0.002, autovacuum_vacuum_threshold = 1000);
ALTER TABLE contactable_leads SET (autovacuum_vacuum_scale_factor = 0.002, autovacuum_vacuum_threshold = 1000);
