-- Leads an earlier fold left keyed to an address they no longer have: re-keyed where the key of
-- their stored address is free (a key held by another lead is left for the check to show).
WITH want AS (
    SELECT id, lead_address_hash(addr_std, addr_city, property_state, property_zip) AS h FROM leads
    WHERE addr_std IS NOT NULL AND NOT broker_created
      AND addr_hash IS DISTINCT FROM lead_address_hash(addr_std, addr_city, property_state, property_zip))
UPDATE leads l SET addr_hash = w.h FROM want w
WHERE l.id = w.id AND w.h IS NOT NULL
  AND w.h IN (SELECT h FROM want GROUP BY h HAVING count(*) = 1)
  AND NOT EXISTS (SELECT 1 FROM leads o WHERE o.addr_hash = w.h AND NOT o.broker_created);
