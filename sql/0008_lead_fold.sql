-- Folding duplicate rows of one upload before they reach `leads`.
--
-- The set-based merge used to insert the first row of an in-file duplicate group and then update
-- that lead once per further row (one round each). For groups whose rows agree on every key and
-- match no existing lead, the same result comes from folding the rows with lead_merge() first and
-- inserting once: ~150k fewer updates of wide, indexed rows per 1M-row upload.

-- lead_fold(row ORDER BY row_number): the rows of a duplicate group merged in file order.
-- lead_merge is STRICT, so the aggregate starts from the first row itself (no initial state).
CREATE AGGREGATE lead_fold(leads) (SFUNC = lead_merge, STYPE = leads);

GRANT EXECUTE ON FUNCTION lead_fold(leads) TO service_role;
