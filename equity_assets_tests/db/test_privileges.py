"""Who may execute which function, and statistics refreshed by a role that may."""

import psycopg
import pytest

# Functions brokers' sessions need: the identity their policies call, the id default of a lead,
# and the two that touch their notification secrets (a table they may not read).
BROKER_FUNCTIONS = {"request_broker_id()", "uuid_v7()", "rotate_notify_secret(text)", "my_notify_secret_log()"}
# Functions that run as their owner: each must pin its search_path.
SECURITY_DEFINER = {"analyze_pipeline_table(text)", "pipeline_events_maintain(integer,integer,date)",
                    "rotate_notify_secret(text)", "my_notify_secret_log()"}

FUNCTIONS_SQL = """
SELECT p.oid::regprocedure::text,
       p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a
                                   WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_exec,
       has_function_privilege('anon', p.oid, 'EXECUTE'),
       has_function_privilege('authenticated', p.oid, 'EXECUTE'),
       has_function_privilege('service_role', p.oid, 'EXECUTE'),
       p.prosecdef,
       p.proconfig
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                            AND d.deptype = 'e')
ORDER BY 1"""


def test_every_function_in_public_has_only_the_expected_executors(admin_conn):
    rows = admin_conn.execute(FUNCTIONS_SQL).fetchall()
    assert len(rows) > 15  # the listing itself works
    by_name = {r[0]: r for r in rows}
    assert {"lead_fold(leads)", "fold_lead(uuid,uuid,text,text)", "upsert_lead(jsonb)"} <= set(by_name)
    unexpected = []
    for name, public_exec, anon, authenticated, service, secdef, config in rows:
        if public_exec or anon:
            unexpected.append(f"{name}: executable by PUBLIC/anon")
        if authenticated != (name in BROKER_FUNCTIONS):
            unexpected.append(f"{name}: authenticated may execute = {authenticated}")
        if not service:
            unexpected.append(f"{name}: service_role may not execute")
        if secdef != (name in SECURITY_DEFINER):
            unexpected.append(f"{name}: SECURITY DEFINER = {secdef}")
        if secdef and not any(c.startswith("search_path=") for c in config or []):
            unexpected.append(f"{name}: SECURITY DEFINER without a pinned search_path")
    assert unexpected == []


def test_a_function_created_later_is_not_executable_by_anon(admin_conn):
    # the global default privilege, not a per-schema one, is what removes PUBLIC's EXECUTE
    admin_conn.execute("CREATE FUNCTION later_added() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    anon, authenticated = admin_conn.execute(
        "SELECT has_function_privilege('anon', 'later_added()', 'EXECUTE'), "
        "has_function_privilege('authenticated', 'later_added()', 'EXECUTE')").fetchone()
    assert (anon, authenticated) == (False, False)
    admin_conn.execute("SET LOCAL ROLE anon")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin_conn.execute("SELECT later_added()")


def test_broker_session_still_works_without_trigger_function_grants(admin_conn):
    """Triggers (updated_at, broker_created) fire for a broker with no EXECUTE on their functions."""
    broker = admin_conn.execute("INSERT INTO brokers (name) VALUES ('A') RETURNING id").fetchone()[0]
    admin_conn.execute("SELECT set_config('role', 'authenticated', true)")
    admin_conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (f'{{"sub": "{broker}"}}',))
    lead = admin_conn.execute("INSERT INTO leads (assigned_broker_id, property_address) VALUES (%s, 'x') "
                              "RETURNING id", (broker,)).fetchone()[0]
    assert admin_conn.execute("UPDATE leads SET broker_notes = 'n' WHERE id = %s", (lead,)).rowcount == 1
    assert admin_conn.execute("SELECT broker_created, broker_notes FROM leads").fetchone() == (True, "n")


def reltuples(conn, table):
    return conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]


def test_pipeline_role_refreshes_statistics_through_the_owner(admin_conn):
    upload = "00000000-0000-0000-0000-000000000001"
    admin_conn.execute("INSERT INTO leads_staging (upload_id, row_number) SELECT %s, g FROM generate_series(1, 500) g",
                       (upload,))
    admin_conn.execute("SET LOCAL ROLE service_role")
    before = reltuples(admin_conn, "leads_staging")
    admin_conn.execute("ANALYZE leads_staging")  # what the pipeline used to run: skipped, not owner
    assert reltuples(admin_conn, "leads_staging") == before
    admin_conn.execute("SELECT analyze_pipeline_table('leads_staging')")
    assert reltuples(admin_conn, "leads_staging") == 500


@pytest.mark.parametrize("table", ["uploads", "pg_authid", "leads; DROP TABLE leads", None])
def test_the_maintenance_function_analyzes_only_pipeline_tables(admin_conn, table):
    admin_conn.execute("SET LOCAL ROLE service_role")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        admin_conn.execute("SELECT analyze_pipeline_table(%s)", (table,))


def test_brokers_cannot_call_the_maintenance_function(admin_conn):
    admin_conn.execute("SET LOCAL ROLE authenticated")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin_conn.execute("SELECT analyze_pipeline_table('leads')")
