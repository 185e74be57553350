"""deploy/ checked without Docker or a cluster: every dagster.yaml loads through `DagsterInstance`
against the test's PostgreSQL with the run launcher, coordinator and storage it promises; the
compose file, the Dockerfile and the Helm values agree with each other and with real entry points.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import click
import dagster as dg
import psycopg
import pytest
import yaml

from equity_assets.cli import build_parser

from ..conftest import scratch_database

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
HELM = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
DAGSTER_SERVICES = {"code-location", "webserver", "daemon"}

# dagster.yaml variant → (run launcher, run coordinator) it must load with
VARIANTS = {
    "deploy/dev/dagster.yaml": ("DefaultRunLauncher", "QueuedRunCoordinator"),  # make dev / make demo
    "deploy/compose/dagster.yaml": ("DefaultRunLauncher", "QueuedRunCoordinator"),
    "deploy/k8s/dagster.yaml": ("K8sRunLauncher", "QueuedRunCoordinator"),
}


def test_every_dagster_yaml_is_listed():
    found = {str(p.relative_to(ROOT)) for p in DEPLOY.rglob("dagster*.yaml")}
    assert found == set(VARIANTS)


@pytest.fixture(scope="module")
def instance_db(test_db):
    """A Dagster storage database on the test cluster: (SQLAlchemy URL, its parts as env vars)."""
    with scratch_database(test_db, "dagster_deploy") as (name, dsn):
        parts = urlsplit(dsn)
        with psycopg.connect(dsn) as conn:  # libpq found the password (a passfile, for the embedded cluster)
            password = conn.info.password or ""
        yield dsn.replace("postgresql://", "postgresql+psycopg2://", 1), {
            "DAGSTER_PG_HOST": parts.hostname, "DAGSTER_PG_PORT": str(parts.port or 5432),
            "DAGSTER_PG_USER": parts.username, "DAGSTER_PG_PASSWORD": password, "DAGSTER_PG_DB": name,
            **{f"PG{k.upper()}": v[0] for k, v in parse_qs(parts.query).items() if k == "passfile"},
        }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_dagster_yaml_loads_with_its_launcher_coordinator_and_postgres_storage(variant, instance_db, tmp_path, monkeypatch):
    url, parts = instance_db
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    for key, value in parts.items():
        monkeypatch.setenv(key, value)
    if variant.startswith("deploy/k8s"):
        # outside a pod there is no in-cluster config to read; everything else loads for real
        import kubernetes.config

        monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda *a, **k: None)
    shutil.copy(ROOT / variant, tmp_path / "dagster.yaml")
    launcher, coordinator = VARIANTS[variant]
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_launcher).__name__ == launcher
        assert type(instance.run_coordinator).__name__ == coordinator
        assert [type(s).__name__ for s in (instance.run_storage, instance.event_log_storage, instance.schedule_storage)] == [
            "PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"]
        assert instance.get_runs_count() == 0  # the storage answers: its tables exist in the test's database
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        concurrency = instance.get_concurrency_config()  # what the daemon dequeues by
        assert (concurrency.run_queue_config.max_concurrent_runs, concurrency.pool_config.default_pool_limit) == (8, 4)


def _compose_command(service: str) -> list[str]:
    command = COMPOSE["services"][service]["command"]
    return shlex.split(command) if isinstance(command, str) else command


def _image_copies() -> dict[str, str]:
    """Path in the image → path in the repository, from the Dockerfile's COPY lines."""
    copies = re.findall(r"^COPY\s+(\S+)\s+(\S+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    return {dest: src for src, dest in copies}


def _parse_click(argv: list[str]) -> None:
    """Resolve `argv` against the installed console script's click command (no process started)."""
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == argv[0]]
    in_image = _image_copies()  # a file the command names is the one the Dockerfile puts there
    command, args = import_module(script.module).cli, [str(ROOT / in_image[a]) if a in in_image else a for a in argv[1:]]
    while isinstance(command, click.Group):
        ctx = command.make_context(argv[0], list(args), resilient_parsing=False)
        name, command, args = command.resolve_command(ctx, ctx.protected_args + ctx.args)
    command.make_context(argv[0], list(args))  # raises on an unknown option or a missing argument


@pytest.mark.parametrize("service", sorted(s for s in COMPOSE["services"] if s != "postgres"))
def test_compose_commands_are_real_entry_points(service):
    argv = _compose_command(service)
    if argv[0] == "equity":
        build_parser().parse_args(argv[1:])
    else:
        _parse_click(argv)


def test_compose_services_share_one_image_and_the_workspace_points_at_the_code_location():
    services = COMPOSE["services"]
    assert {"postgres", "migrate", "code-location", "webserver", "daemon", "gateway"} <= set(services)
    ours = {name: s for name, s in services.items() if name != "postgres"}
    assert {s["image"] for s in ours.values()} == {"${EQUITY_IMAGE:-equity-assets:local}"}
    assert {s["build"]["dockerfile"] for s in ours.values()} == {"deploy/Dockerfile"}
    assert (DEPLOY / services["code-location"]["build"]["context"]).resolve() == ROOT
    code = _compose_command("code-location")
    assert code[code.index("--module-name") + 1] == "equity_assets.definitions"
    workspace = yaml.safe_load((DEPLOY / "compose" / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert (workspace["host"], str(workspace["port"])) == ("code-location", code[code.index("--port") + 1])
    assert workspace["location_name"] == code[code.index("--location-name") + 1]
    for name in ("webserver", "daemon"):
        argv = _compose_command(name)
        assert argv[argv.index("--workspace") + 1] == "/opt/dagster/workspace.yaml"


def test_compose_commits_no_secret():
    """Every password / secret / key in the compose file is a ${VARIABLE} from equity.env."""
    text = (DEPLOY / "docker-compose.yaml").read_text()
    for key, value in re.findall(r"^\s*([A-Z_]*(?:PASSWORD|SECRET|KEY|TOKEN)[A-Z_]*):\s*(.+)$", text, re.M):
        assert value.startswith("${") and value.rstrip().endswith("}"), key
    assert len(re.findall(r"postgresql://\w+:\$\{\w+:\?[^}]*\}@", text)) == text.count("postgresql://")
    assert all(s["env_file"] == ["equity.env"] for n, s in COMPOSE["services"].items() if n != "postgres")
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/equity.env"], cwd=ROOT).returncode == 0
    assert ignored and (DEPLOY / "equity.env.example").exists()
    example = dict(line.split("=", 1) for line in (DEPLOY / "equity.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert [k for k, v in example.items() if v and re.search("PASSWORD|SECRET|KEY|TOKEN", k)] == []
    used = set(re.findall(r"\$\{(\w+)", text)) - {"EQUITY_IMAGE"}
    assert used <= set(example), used - set(example)


def test_dockerfile_copies_paths_that_exist_and_installs_the_deploy_extra():
    text = (DEPLOY / "Dockerfile").read_text()
    copies = list(_image_copies().values())
    assert copies and [src for src in copies if not (ROOT / src).exists()] == []
    assert "deploy/compose/dagster.yaml" in copies and "deploy/compose/workspace.yaml" in copies
    assert re.search(r'pip install -e "\.\[deploy\]"', text)
    cmd = yaml.safe_load(re.search(r"^CMD (.+)$", text, re.M).group(1))  # JSON exec form
    assert cmd == _compose_command("code-location")
    assert re.search(r"^USER equity$", text, re.M)


def test_helm_values_match_the_compose_deployment_and_the_k8s_instance():
    k8s = yaml.safe_load((DEPLOY / "k8s" / "dagster.yaml").read_text())
    (deployment,) = HELM["dagster-user-deployments"]["deployments"]
    image = f'{deployment["image"]["repository"]}:{deployment["image"]["tag"]}'
    assert HELM["dagsterWebserver"]["image"] == HELM["dagsterDaemon"]["image"] == deployment["image"]
    code = _compose_command("code-location")
    assert deployment["codeServerArgs"] == code[code.index("--module-name"):]
    _parse_click(["dagster", "code-server", "start", "--port", str(deployment["port"]), *deployment["codeServerArgs"]])

    assert HELM["runLauncher"]["type"] == k8s["run_launcher"]["class"] == "K8sRunLauncher"
    launcher = HELM["runLauncher"]["config"]["k8sRunLauncher"]
    assert [m["name"] for m in launcher["envSecrets"]] == k8s["run_launcher"]["config"]["env_secrets"]
    assert [m["name"] for m in launcher["envConfigMaps"]] == k8s["run_launcher"]["config"]["env_config_maps"]
    assert launcher["volumes"] == deployment["volumes"] == k8s["run_launcher"]["config"]["volumes"]
    queue = HELM["dagsterDaemon"]["runCoordinator"]
    assert (queue["enabled"], queue["type"]) == (True, k8s["run_coordinator"]["class"])
    limits = HELM["concurrency"]["runs"]
    assert limits["maxConcurrentRuns"] == k8s["concurrency"]["runs"]["max_concurrent_runs"]
    assert limits["tagConcurrencyLimits"] == k8s["concurrency"]["runs"]["tag_concurrency_limits"]
    assert HELM["dagsterDaemon"]["runRetries"]["maxRetries"] == k8s["run_retries"]["max_retries"]
    assert HELM["concurrency"]["pools"]["defaultLimit"] == k8s["concurrency"]["pools"]["default_limit"]
    pg = HELM["postgresql"]
    assert pg["enabled"] is False and not HELM["generatePostgresqlPasswordSecret"]  # managed PostgreSQL
    assert pg["service"]["port"] == 6432 and "pgbouncer" in pg["postgresqlHost"]  # through the pooler
    assert "postgresqlPassword" not in pg  # from the global.postgresqlSecretName Secret

    gateway = [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / "gateway.yaml").read_text()) if doc["kind"] == "Deployment"]
    (container,) = gateway[0]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image and container["command"] == _compose_command("gateway")
