"""The code location loads with every resource wired."""

import dagster as dg

from equity_assets.definitions import defs


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_a_docstring_group_and_kind():
    for spec in defs.resolve_all_asset_specs():
        assert spec.description, spec.key
        assert spec.group_name and spec.group_name != "default", spec.key
        assert spec.kinds, spec.key


def test_dagster_cli_validates_the_workspace_from_the_checkout():
    """The README's `dagster definitions validate -w workspace.yaml`, with no DAGSTER_* in the
    environment: `equity db start` leaves the storage URL in `.env`, which Dagster's CLI reads."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "EQUITY_HOME"))}
    bin_dir = Path(sys.executable).parent
    started = subprocess.run([bin_dir / "equity", "db", "start"], cwd=root, env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    result = subprocess.run([bin_dir / "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout
