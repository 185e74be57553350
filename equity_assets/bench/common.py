"""Shared benchmark plumbing: a throw-away database on the embedded cluster."""

from __future__ import annotations

import os
import resource
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ..db.cluster import APP_USER, EmbeddedCluster, migrate_and_grant


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@contextmanager
def fresh_database(prefix: str = "equity_bench", cluster: EmbeddedCluster | None = None) -> Iterator[tuple[str, str]]:
    """A new, migrated database on ``cluster`` (default: the embedded one); yields (admin DSN,
    pipeline DSN) and drops it afterwards."""
    if cluster is None:
        cluster = EmbeddedCluster()
        cluster.start()
    server = cluster.dsn("postgres", admin=True)
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        admin = _with_database(server, name)
        migrate_and_grant(admin, APP_USER)
        yield admin, _with_database(cluster.dsn("postgres"), name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def process_children(pid: int) -> list[int]:
    """The direct children of a process (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and of the children it has reaped, from
    ``/proc/PID/stat``; 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # fields after the command: state is [0], utime [11], stime [12], cutime [13], cstime [14]
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def data_directory(admin_dsn: str) -> Path:
    """The server's data directory (a superuser setting), where its postmaster.pid is."""
    with psycopg.connect(admin_dsn) as conn:
        return Path(conn.execute("SHOW data_directory").fetchone()[0])


def cluster_cpu_seconds(data_dir: Path) -> float:
    """CPU seconds the cluster's processes have used so far: the postmaster with every backend it
    has reaped, plus the live backends (Linux ``/proc``; 0 elsewhere)."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return 0.0
    return _process_cpu_seconds(postmaster) + sum(map(_process_cpu_seconds, process_children(postmaster)))


def own_cpu_seconds() -> float:
    """CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSampler:
    """Samples (wall time, this process's CPU, the cluster's CPU) every `interval` seconds in a
    thread, so CPU can be split at moments known only afterwards (a Dagster step's end)."""

    data_dir: Path
    interval: float = 0.2
    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def sample(self) -> tuple[float, float, float]:
        return time.time(), own_cpu_seconds(), cluster_cpu_seconds(self.data_dir)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.sample())

    def __enter__(self) -> "CpuSampler":
        self.samples.append(self.sample())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.sample())

    def at(self, when: float) -> tuple[float, float, float]:
        """The sample nearest to wall time `when`."""
        return min(self.samples, key=lambda s: abs(s[0] - when))

    def between(self, start: tuple[float, float, float], end: tuple[float, float, float]) -> dict[str, float]:
        python, postgres = end[1] - start[1], end[2] - start[2]
        return {"python": round(python, 2), "postgres": round(postgres, 2), "total": round(python + postgres, 2)}
