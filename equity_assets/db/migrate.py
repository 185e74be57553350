"""Migration runner: applies `sql/NNNN_*.sql` in order, one transaction per file.

Each applied file is recorded in `schema_migrations` with its SHA-256. Re-running is a no-op;
a file whose content changed after it was applied is refused, because the database no longer
matches what the repository says it is. The one exception is :data:`REWORDED`: files whose
comments (never statements) were reworded after release, each with the checksum it replaced.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
MIGRATION_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")
# One runner at a time per database; concurrent `equity db migrate` calls wait here.
MIGRATION_LOCK_KEY = 7_204_111_001


#: Applied files whose comments were reworded (no statement changed) -> the checksums they replaced.
#: A database that applied the earlier text is moved to the current checksum by :func:`migrate`.
REWORDED: dict[str, frozenset[str]] = {
    "0004_row_level_security.sql": frozenset({"33d44e497998af50ce7e8577910b86bc2a4b5e76ae34278c8f9293e47c5f90ca"}),
    "0005_verification.sql": frozenset({"40fd9b1d297f454d85076ff9497b91f4b9c0dbb74cea5a40740ddd0777719580"}),
    "0006_gateway.sql": frozenset({"641a56b73b69305889256152c14b45fc140cd2289d16b9d0ea38d68832f1811f"}),
    "0007_campaign.sql": frozenset({"589681740a0e72c1c42020795608c287c8e23c2b5432ee8b18b03cbe0ca83623"}),
}


class MigrationError(RuntimeError):
    """The migration files and the database disagree."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migration files, in name order; any other file name in the folder is an error."""
    files = sorted(p for p in sql_dir.iterdir() if p.suffix == ".sql")
    bad = [p.name for p in files if not MIGRATION_NAME.match(p.name)]
    if bad:
        raise MigrationError(f"migration file names must look like 0001_name.sql: {bad}")
    return [Migration(p.name, p.read_text(encoding="utf-8")) for p in files]


def applied_migrations(conn: psycopg.Connection) -> dict[str, str]:
    """name → checksum of what the database has applied."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               name       text PRIMARY KEY,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    return dict(conn.execute("SELECT name, checksum FROM schema_migrations").fetchall())


def pending_migrations(applied: dict[str, str], migrations: list[Migration]) -> list[Migration]:
    """Files not yet applied; raises if an applied file was edited or removed."""
    on_disk = {m.name: m for m in migrations}
    edited = [
        n for n, c in applied.items()
        if n in on_disk and on_disk[n].checksum != c and c not in REWORDED.get(n, frozenset())
    ]
    if edited:
        raise MigrationError(
            f"applied migration(s) were edited: {edited}; add a new migration instead of changing one"
        )
    missing = sorted(set(applied) - set(on_disk))
    if missing:
        raise MigrationError(f"applied migration(s) missing from {SQL_DIR.name}/: {missing}")
    return [m for m in migrations if m.name not in applied]


def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    migrations = load_migrations(sql_dir)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            applied = applied_migrations(conn)
            todo = pending_migrations(applied, migrations)
            for m in migrations:
                if applied.get(m.name) in REWORDED.get(m.name, frozenset()):
                    conn.execute("UPDATE schema_migrations SET checksum = %s WHERE name = %s", (m.checksum, m.name))
            for m in todo:
                with conn.transaction():
                    conn.execute(m.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (name, checksum) VALUES (%s, %s)",
                        (m.name, m.checksum),
                    )
            return [m.name for m in todo]
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def migration_status(dsn: str, sql_dir: Path = SQL_DIR) -> dict[str, list[str]]:
    """Applied and pending migration names, without changing anything."""
    migrations = load_migrations(sql_dir)
    with psycopg.connect(dsn) as conn:
        applied = applied_migrations(conn)
        conn.rollback()
    return {
        "applied": sorted(applied),
        "pending": [m.name for m in pending_migrations(applied, migrations)],
    }
