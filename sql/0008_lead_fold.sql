-- Folding duplicate rows of one upload before they reach `leads`.
--
-- The set-based merge used to insert the first row of an in-file duplicate group and then update
-- that lead once per further row (one round each). For groups whose rows agree on every key and
-- match no existing lead, the same result comes from folding the rows with lead_merge() first and
-- inserting once: ~150k fewer updates of wide, indexed rows per 1M-row upload.

-- Strict, so the aggregate starts from the first row itself (no initial state).
CREATE FUNCTION lead_fold_step(acc leads, inc leads) RETURNS leads
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT lead_merge(acc, inc) $$;

-- lead_fold(row ORDER BY row_number): the rows of a duplicate group merged in file order.
CREATE AGGREGATE lead_fold(leads) (SFUNC = lead_fold_step, STYPE = leads);

GRANT EXECUTE ON FUNCTION lead_fold_step(leads, leads), lead_fold(leads) TO service_role;
