"""The embedded local PostgreSQL cluster behind `equity db …`.

Production sets `EQUITY_DATABASE_URL`; everything here is for a laptop, the demo and CI.
The cluster lives under `.equity/` (or `$EQUITY_HOME`), listens on 127.0.0.1 only (no Unix
socket), and uses password authentication. Passwords are generated once and kept in a 0600
`pgpass` file that the DSN points at (`passfile=`), so no DSN we print carries a secret.

PostgreSQL refuses to run as root: as root, the server runs as the `postgres` OS user (or
`nobody`), and its data directory goes where that user can reach it — `.equity/pgcluster` when
every parent folder is traversable, otherwise `/var/tmp/equity-<hash of .equity path>/`
(a checkout under `/root` is the usual case; we never widen permissions on the user's folders).
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from .migrate import migrate

ADMIN_USER = "equity_admin"
APP_USER = "equity_app"
APP_DATABASE = "equity"
DAGSTER_DATABASE = "dagster"
SERVICE_USERS = ("postgres", "nobody")
# Sized for bulk merges of ~1M-row uploads and a 250,000-lead campaign day on a small machine
# (the defaults are for 1990s hardware). WAL: the day rewrites rows on random pages of large
# tables, so most of its WAL is full-page images (the first change of a page after a checkpoint);
# lz4 shrinks them several-fold, and a larger `max_wal_size` means fewer checkpoints to start over.
# Planner: an index probe costs about a sequential read on SSD with the hot set cached; at the
# default 4.0 joining the day's 250,000 rows with 10M leads became a hash join over a sequential
# scan of `leads` (8 s, against 2 s for 250,000 primary-key probes).
SERVER_SETTINGS = {
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "lz4",
    "temp_buffers": "64MB",
    "random_page_cost": "1.1",
}


def memory_bytes() -> int:
    """This machine's memory, or the container's limit when it has a lower one (cgroup v2 / v1)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return total


def server_settings() -> dict[str, str]:
    """`SERVER_SETTINGS` plus the buffer pool: a quarter of the memory (PostgreSQL's usual
    sizing), 128 MB to 8 GB. At 10M leads the campaign's hot set (the `leads` heap and indexes) is
    ~7 GB: a pool of 512 MB sent most of the day's page visits to the kernel's cache."""
    pool_mb = max(128, min(8192, memory_bytes() // 4 // 2**20))
    return {"shared_buffers": f"{pool_mb}MB", "effective_cache_size": f"{memory_bytes() // 2 // 2**20}MB",
            **SERVER_SETTINGS}


class ClusterError(RuntimeError):
    """The embedded cluster could not be set up, started or reached."""


def equity_home() -> Path:
    """Where the project keeps local state: `$EQUITY_HOME` or `<checkout>/.equity`."""
    override = os.environ.get("EQUITY_HOME")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[2] / ".equity"


@dataclass
class ClusterState:
    """What `equity db start` decided once, kept in `.equity/cluster.json`."""

    bin_dir: str
    cluster_dir: str
    port: int
    run_as: str | None

    @property
    def data_dir(self) -> Path:
        return Path(self.cluster_dir) / "data"

    @property
    def log_file(self) -> Path:
        return Path(self.cluster_dir) / "postgres.log"


def find_bin_dir() -> Path:
    """PostgreSQL server binaries: PATH, the usual install folders, then the pgserver wheel."""
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    patterns = [
        "/usr/lib/postgresql/*/bin",
        "/usr/pgsql-*/bin",
        "/opt/homebrew/opt/postgresql@*/bin",
        "/usr/local/opt/postgresql@*/bin",
        "/opt/homebrew/bin",
    ]
    for pattern in patterns:
        found = sorted(glob.glob(pattern), key=_version_key, reverse=True)
        candidates.extend(Path(p) for p in found)
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists() and (c / "postgres").exists():
            return c
    raise ClusterError(
        "no PostgreSQL server binaries found (looked on PATH, /usr/lib/postgresql/*/bin, Homebrew "
        "and the pgserver wheel); install PostgreSQL 15+ or `pip install pgserver`, "
        "or set EQUITY_DATABASE_URL"
    )


def _version_key(path: str) -> tuple[int, ...]:
    digits = "".join(ch if ch.isdigit() else " " for ch in path).split()
    return tuple(int(d) for d in digits)


def service_user() -> str | None:
    """The OS user to run the server as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ClusterError("running as root, but neither a 'postgres' nor a 'nobody' OS user exists")


def _can_traverse(path: Path, user: str) -> bool:
    result = subprocess.run(["test", "-x", str(path)], user=user, capture_output=True)
    return result.returncode == 0


def choose_cluster_dir(home: Path, user: str | None) -> Path:
    """`.equity/pgcluster`, unless the server's OS user cannot reach it."""
    inside = home / "pgcluster"
    if user is None or _can_traverse(home, user):
        return inside
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"equity-{digest}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedCluster:
    """Create, start, stop and describe the local cluster."""

    def __init__(self, home: Path | None = None):
        self.home = home or equity_home()
        self.state_file = self.home / "cluster.json"
        self.pgpass = self.home / "pgpass"

    # -- state -----------------------------------------------------------------------------
    def load_state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        return ClusterState(**json.loads(self.state_file.read_text()))

    def _save_state(self, state: ClusterState) -> None:
        self.state_file.write_text(json.dumps(asdict(state), indent=2))

    def _passwords(self) -> dict[str, str]:
        """user → password from the pgpass file (host:port:db:user:password lines)."""
        out = {}
        if self.pgpass.exists():
            for line in self.pgpass.read_text().splitlines():
                parts = line.split(":")
                if len(parts) == 5:
                    out[parts[3]] = parts[4]
        return out

    def _write_pgpass(self, port: int, passwords: dict[str, str]) -> None:
        lines = [f"127.0.0.1:{port}:*:{user}:{pw}" for user, pw in passwords.items()]
        fd = os.open(self.pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- DSNs ------------------------------------------------------------------------------
    def dsn(self, database: str = APP_DATABASE, *, admin: bool = False) -> str:
        state = self._require_state()
        user = ADMIN_USER if admin else APP_USER
        return (
            f"postgresql://{user}@127.0.0.1:{state.port}/{database}"
            f"?passfile={quote(str(self.pgpass))}&connect_timeout=10"
        )

    def _require_state(self) -> ClusterState:
        state = self.load_state()
        if state is None:
            raise ClusterError("the embedded cluster is not initialized; run `equity db start`")
        return state

    # -- lifecycle -------------------------------------------------------------------------
    def _run(self, state: ClusterState, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(Path(state.bin_dir) / args[0]), *args[1:]]
        result = subprocess.run(cmd, user=state.run_as, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            raise ClusterError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result

    def initialize(self) -> ClusterState:
        """Create the data directory once; later calls return the saved state."""
        state = self.load_state()
        if state and (state.data_dir / "PG_VERSION").exists():
            return state
        self.home.mkdir(parents=True, exist_ok=True)
        user = service_user()
        cluster_dir = choose_cluster_dir(self.home, user)
        cluster_dir.mkdir(parents=True, exist_ok=True)
        state = ClusterState(str(find_bin_dir()), str(cluster_dir), free_port(), user)
        self._discard_orphan(state)
        passwords = self._passwords() or {ADMIN_USER: secrets.token_urlsafe(24), APP_USER: secrets.token_urlsafe(24)}
        pwfile = cluster_dir / "initdb.pw"
        pwfile.write_text(passwords[ADMIN_USER] + "\n")
        try:
            if user:
                uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
                os.chown(cluster_dir, uid, gid)
                os.chown(pwfile, uid, gid)
            os.chmod(cluster_dir, 0o700)
            os.chmod(pwfile, 0o600)
            self._run(
                state, "initdb", "-D", str(state.data_dir), "-U", ADMIN_USER, "--auth=scram-sha-256",
                f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_pgpass(state.port, passwords)
        self._save_state(state)
        return state

    def _discard_orphan(self, state: ClusterState) -> None:
        """A data dir with no state file left by an earlier checkout at this path: its passwords are
        gone with it, so it cannot be reused. It lives in a folder named for this checkout only."""
        if state.data_dir.exists():
            self._run(state, "pg_ctl", "-D", str(state.data_dir), "-m", "immediate", "-w", "stop", check=False)
            shutil.rmtree(state.data_dir)

    def is_running(self) -> bool:
        state = self.load_state()
        if state is None or not state.data_dir.exists():
            return False
        return self._run(state, "pg_ctl", "-D", str(state.data_dir), "status", check=False).returncode == 0

    def start(self) -> str:
        """Idempotent: initialize, start, create databases and roles, migrate; returns the app DSN."""
        state = self.initialize()
        if not self.is_running():
            options = " ".join(
                [f"-c listen_addresses=127.0.0.1 -p {state.port} -c unix_socket_directories=''"]
                + [f"-c {k}={v}" for k, v in server_settings().items()]
            )
            self._run(
                state, "pg_ctl", "-D", str(state.data_dir), "-l", str(state.log_file),
                "-o", options, "-w", "-t", "60", "start",
            )
        self.bootstrap()
        return self.dsn()

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server; False when it was not running. `immediate` is a crash as far as
        PostgreSQL knows (no checkpoint; UNLOGGED tables are emptied at the next start)."""
        if not self.is_running():
            return False
        state = self._require_state()
        self._run(state, "pg_ctl", "-D", str(state.data_dir), "-m", mode, "-w", "stop")
        return True

    def bootstrap(self) -> list[str]:
        """Roles and databases the project needs, then migrations; safe to repeat."""
        passwords = self._passwords()
        with psycopg.connect(self.dsn("postgres", admin=True), autocommit=True) as conn:
            ensure_login_role(conn, APP_USER, passwords[APP_USER])
            for db in (APP_DATABASE, DAGSTER_DATABASE):
                ensure_database(conn, db, owner=APP_USER if db == DAGSTER_DATABASE else ADMIN_USER)
        return migrate_and_grant(self.dsn(APP_DATABASE, admin=True), APP_USER)


def ensure_login_role(conn: psycopg.Connection, name: str, password: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))


def ensure_database(conn: psycopg.Connection, name: str, *, owner: str) -> None:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))


def migrate_and_grant(admin_dsn: str, app_user: str) -> list[str]:
    """Apply migrations as the owner, then let the app role act as `service_role` (the pipeline)
    and as `authenticated` (the portal, for one broker at a time, per transaction)."""
    applied = migrate(admin_dsn)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT service_role, authenticated TO {}").format(sql.Identifier(app_user)))
    return applied
