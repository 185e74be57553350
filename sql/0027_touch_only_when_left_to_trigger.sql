-- `updated_at` is always the time of the last change. On the two tables the campaign day
-- rewrites by the hundred thousand (leads turn active, sends turn pushed), the writers set it
-- themselves; the trigger now runs only when a writer leaves it to the trigger, which spares a
-- PL/pgSQL call per row. The result is the same either way: the column ends up as now().
DROP TRIGGER leads_touch_updated_at ON leads;
CREATE TRIGGER leads_touch_updated_at BEFORE UPDATE ON leads
    FOR EACH ROW WHEN (NEW.updated_at IS DISTINCT FROM now()) EXECUTE FUNCTION touch_updated_at();

DROP TRIGGER campaign_sends_touch_updated_at ON campaign_sends;
CREATE TRIGGER campaign_sends_touch_updated_at BEFORE UPDATE ON campaign_sends
    FOR EACH ROW WHEN (NEW.updated_at IS DISTINCT FROM now()) EXECUTE FUNCTION touch_updated_at();
