-- consent_tokens.lead_id: the foreign key becomes the same rules checked once per statement.
-- A foreign key runs one lookup query per inserted row: 250,000 for a campaign day's tokens, a
-- third of the time of writing them. As for campaign_sends' references:
--   * a token's lead exists (checked once per INSERT statement, the leads locked FOR KEY SHARE as
--     a foreign key does, so none can be deleted before the inserting transaction commits);
--   * an UPDATE that changes a token's lead is checked row by row;
--   * deleting leads deletes their tokens (the foreign key's ON DELETE CASCADE), and a lead's id
--     cannot change while a token points at it.
-- Violations raise `foreign_key_violation` (23503), as the foreign key did.
ALTER TABLE consent_tokens DROP CONSTRAINT consent_tokens_lead_id_fkey;

CREATE FUNCTION consent_tokens_check_new_leads() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF (SELECT count(DISTINCT lead_id) FROM new_tokens)
       <> (SELECT count(*) FROM (SELECT 1 FROM leads l WHERE l.id IN (SELECT lead_id FROM new_tokens)
                                 FOR KEY SHARE OF l) x) THEN
        RAISE EXCEPTION 'insert into consent_tokens references a row missing from leads'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER consent_tokens_lead_on_insert
    AFTER INSERT ON consent_tokens REFERENCING NEW TABLE AS new_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION consent_tokens_check_new_leads();

CREATE FUNCTION consent_tokens_check_changed_lead() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM 1 FROM leads WHERE id = NEW.lead_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consent_tokens.lead_id % is not a lead', NEW.lead_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER consent_tokens_lead_on_update
    AFTER UPDATE OF lead_id ON consent_tokens
    FOR EACH ROW WHEN (OLD.lead_id IS DISTINCT FROM NEW.lead_id)
    EXECUTE FUNCTION consent_tokens_check_changed_lead();

-- The cascade. Only the pipeline's role may delete leads, and it may delete tokens too.
CREATE FUNCTION leads_delete_consent_tokens() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_rows) THEN
        DELETE FROM consent_tokens WHERE lead_id IN (SELECT id FROM old_rows);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_delete_consent_tokens AFTER DELETE ON leads REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leads_delete_consent_tokens();

CREATE FUNCTION leads_keep_consent_token_reference() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM consent_tokens WHERE lead_id = OLD.id) THEN
        RAISE EXCEPTION 'leads row is still referenced from consent_tokens' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_consent_token_reference_on_update AFTER UPDATE OF id ON leads
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION leads_keep_consent_token_reference();
