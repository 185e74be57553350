"""The code location loads with every resource wired."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from equity_assets.cli import write_dotenv
from equity_assets.db.settings import dagster_storage_url
from equity_assets.definitions import defs


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_a_docstring_group_and_kind():
    for spec in defs.resolve_all_asset_specs():
        assert spec.description, spec.key
        assert spec.group_name and spec.group_name != "default", spec.key
        assert spec.kinds, spec.key


def test_dagster_cli_validates_the_workspace_from_the_checkout(tmp_path):
    """The README's `dagster definitions validate -w workspace.yaml`, with no DAGSTER_* in the
    environment: the storage URL comes from a `.env` as `equity db start` writes it, which Dagster's
    CLI reads from its working directory. Everything happens in a temporary directory, against the
    cluster the suite already uses: nothing is started, nothing is written in the checkout."""
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "workspace.yaml", tmp_path / "workspace.yaml")
    write_dotenv(tmp_path / ".env", "DAGSTER_PG_URL", dagster_storage_url())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run([dagster, "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_production_fails_at_load_naming_the_missing_setting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env |= {"EQUITY_ENV": "production", "EQUITY_DATABASE_URL": "postgresql://unused", "EQUITY_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "import equity_assets.definitions"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "MissingSettingError" in result.stderr and "EQUITY_CONSENT_SECRET" in result.stderr
    assert "INSTANTLY_API_KEY" in result.stderr and "EQUITY_DATABASE_URL" not in result.stderr.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []  # production never creates local settings


def test_readme_table_of_schedules_and_sensors_matches_the_code():
    """Every schedule and sensor is in the README's table, with the default state the code gives it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("**Schedules and sensors**", 1)[1].split("\n\n", 2)[1]
    rows = dict(re.findall(r"^\| `(\w+)` \| (on|off) \|", table, re.M))
    repo = defs.get_repository_def()
    code = {s.name: "on" if s.default_status == dg.DefaultScheduleStatus.RUNNING else "off" for s in repo.schedule_defs}
    code |= {s.name: "on" if s.default_status == dg.DefaultSensorStatus.RUNNING else "off" for s in repo.sensor_defs}
    assert rows == code
