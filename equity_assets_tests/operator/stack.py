"""A real Dagster deployment for operator tests: gRPC code server, daemon and webserver as
separate processes on the embedded database, each stopped by its PID when the test ends.

Everything they write (instance home, logs, compute logs, uploads) is under the test's tmp dir.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent
LOCATION = "equity_assets"
REPOSITORY = "__repository__"
PROJECT_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "dagster.yaml"
CAMPAIGN_START = "2026-11-02"  # first partition of daily_campaign_batch in these deployments


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, *, timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


@contextmanager
def process(argv: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Start one process in a session of its own; on exit SIGINT it, then SIGKILL its group.

    The group holds only what this process spawned (run workers of the code server), so the
    kill reaches nothing else on the machine.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent,
                                start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (workers), if any
            except ProcessLookupError:
                pass
            proc.wait()


@dataclass
class Deployment:
    url: str
    home: Path

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        answer = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        # a mutation's PythonError comes back as data with HTTP 500: the caller inspects it
        assert body.get("data") is not None and "errors" not in body, f"{answer.status_code}: {answer.text[:2000]}"
        return body["data"]


def write_instance(home: Path, storage_url: str) -> dict[str, str]:
    """DAGSTER_HOME with the project's dagster.yaml (storage from DAGSTER_PG_URL)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(PROJECT_YAML.read_text())
    return {"DAGSTER_HOME": str(home), "DAGSTER_PG_URL": storage_url}


def deployment_env(tmp: Path, storage_url: str, *, database_url: str, sandbox_url: str,
                   consent_base_url: str) -> dict[str, str]:
    """The processes' environment: this machine's, minus any Dagster / Equity setting of the
    developer's, plus the test's instance, database and sandbox (campaign days from 2026-11-02)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "EQUITY_"))}
    return env | write_instance(tmp / "dagster_home", storage_url) | {
        "EQUITY_DATABASE_URL": database_url,
        "EQUITY_HOME": str(tmp / "equity_home"),
        "EQUITY_SANDBOX_URL": sandbox_url,
        "EQUITY_CONSENT_SECRET": secrets.token_urlsafe(32),
        "EQUITY_CONSENT_BASE_URL": consent_base_url,
        "EQUITY_CAMPAIGN_START": CAMPAIGN_START,
    }


@contextmanager
def deployment(tmp: Path, env: dict[str, str]) -> Iterator[Deployment]:
    """Code server (gRPC) → daemon + webserver pointed at it; yields once the location is loaded."""
    grpc_port, web_port = free_port(), free_port()
    workspace = tmp / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {grpc_port}\n"
        f"      location_name: {LOCATION}\n"
    )
    with ExitStack() as stack:
        code = stack.enter_context(process(
            [str(BIN / "dagster"), "api", "grpc", "-m", "equity_assets.definitions", "-h", "127.0.0.1",
             "-p", str(grpc_port)], env=env, log=tmp / "code-server.log"))
        wait_until(lambda: code.poll() is not None or _listening(grpc_port), timeout_s=120, what="code server")
        assert code.poll() is None, (tmp / "code-server.log").read_text()[-3000:]
        stack.enter_context(process([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                                    env=env, log=tmp / "daemon.log"))
        web = stack.enter_context(process(
            [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(web_port)],
            env=env, log=tmp / "webserver.log"))
        url = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: web.poll() is not None or _answers(f"{url}/server_info"), timeout_s=120, what="webserver")
        assert web.poll() is None, (tmp / "webserver.log").read_text()[-3000:]
        dep = Deployment(url, Path(env["DAGSTER_HOME"]))
        entries = dep.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
        assert [e["locationOrLoadError"]["__typename"] for e in entries] == ["RepositoryLocation"], entries
        yield dep


LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False
