"""`equity db …` on a private cluster of its own (a temporary EQUITY_HOME)."""

import json
import os
import subprocess
import sys

import psycopg
import pytest

EQUITY = [sys.executable, "-m", "equity_assets.cli"]


def equity(home, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EQUITY_DATABASE")}
    env["EQUITY_HOME"] = str(home)
    return subprocess.run([*EQUITY, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def private_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("equity_home")
    yield home
    equity(home, "db", "stop")


def test_start_twice_is_harmless_and_url_is_connectable(private_home):
    first = equity(private_home, "db", "start")
    assert first.returncode == 0, first.stderr
    second = equity(private_home, "db", "start")
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    url = equity(private_home, "db", "url").stdout.strip()
    assert url == first.stdout.strip()
    assert "127.0.0.1" in url and "password" not in url
    with psycopg.connect(url) as conn:
        user, n = conn.execute("SELECT current_user, count(*) FROM schema_migrations").fetchone()
        assert user == "equity_app" and n > 0
        # the pipeline role may act as service_role
        conn.execute("SET ROLE service_role")


def test_status_reports_a_running_migrated_cluster(private_home):
    equity(private_home, "db", "start")
    status = json.loads(equity(private_home, "db", "status").stdout)
    assert status["running"] is True and status["migrations"]["pending"] == []
    assert status["run_as"] == ("postgres" if os.geteuid() == 0 else None)


def test_listens_on_loopback_only(private_home):
    url = equity(private_home, "db", "url", "--admin").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW unix_socket_directories").fetchone()[0] == ""


def test_stop_then_start_again(private_home):
    equity(private_home, "db", "start")
    assert equity(private_home, "db", "stop").stdout.strip() == "stopped"
    assert equity(private_home, "db", "stop").stdout.strip() == "not running"
    assert equity(private_home, "db", "status").returncode == 1
    restarted = equity(private_home, "db", "start")
    assert restarted.returncode == 0, restarted.stderr
    with psycopg.connect(restarted.stdout.strip()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_pgpass_is_private(private_home):
    equity(private_home, "db", "start")
    assert (private_home / "pgpass").stat().st_mode & 0o077 == 0


def test_the_buffer_pool_is_a_quarter_of_the_memory_within_bounds(monkeypatch):
    from equity_assets.db import cluster

    for memory, expected in ((24 * 2**30, "6144MB"), (2 * 2**30, "512MB"), (256 * 2**20, "128MB"), (128 * 2**30, "8192MB")):
        monkeypatch.setattr(cluster, "memory_bytes", lambda memory=memory: memory)
        settings = cluster.server_settings()
        assert settings["shared_buffers"] == expected
        assert settings["wal_compression"] == "lz4"
