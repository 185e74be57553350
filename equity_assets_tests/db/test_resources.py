"""PostgresResource connects as the pipeline: service_role, pooled, transactional."""

import psycopg
import pytest


def test_connections_act_as_service_role(postgres, admin_conn):
    admin_conn.execute("INSERT INTO brokers (name) VALUES ('b')")
    admin_conn.execute("INSERT INTO leads (property_address, assigned_broker_id) SELECT 'x', id FROM brokers")
    admin_conn.execute("INSERT INTO leads (property_address) VALUES ('y')")
    admin_conn.commit()
    with postgres.connection() as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "service_role"
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 2


def test_error_rolls_back_the_transaction(postgres):
    with pytest.raises(psycopg.errors.CheckViolation):
        with postgres.connection() as conn:
            conn.execute("INSERT INTO brokers (name) VALUES ('kept?')")
            conn.execute("INSERT INTO brokers (name, daily_cap) VALUES ('bad', -1)")
    with postgres.connection() as conn:
        assert conn.execute("SELECT count(*) FROM brokers").fetchone()[0] == 0
