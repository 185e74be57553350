"""A snapshot of the loaded Definitions: an accidental change to the graph shows up in review.

The snapshot lists asset keys with their deps, group, partitions and automation; asset checks and
whether they block; jobs with the assets they select; schedules with cron and timezone; sensors.
After an intended change, regenerate it and commit the diff with the change:

    EQUITY_UPDATE_SNAPSHOT=1 .venv/bin/pytest equity_assets_tests/test_definitions_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from equity_assets.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe_partitions(partitions: dg.PartitionsDefinition | None) -> Any:
    if partitions is None:
        return None
    if isinstance(partitions, dg.TimeWindowPartitionsDefinition):
        return {"type": "time_window", "cron": partitions.cron_schedule, "timezone": partitions.timezone,
                "fmt": partitions.fmt, "end_offset": partitions.end_offset}
    if isinstance(partitions, dg.DynamicPartitionsDefinition):
        return {"type": "dynamic", "name": partitions.name}
    return {"type": type(partitions).__name__}


def snapshot(definitions: dg.Definitions) -> dict[str, Any]:
    graph = definitions.resolve_asset_graph()
    repository = definitions.get_repository_def()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if not node.is_materializable:
            continue
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "group": node.group_name,
            "partitions": describe_partitions(node.partitions_def),
            "automation": type(node.automation_condition).__name__ if node.automation_condition else None,
            "pools": sorted(node.pools or ()),
        }
    checks = {
        f"{key.asset_key.to_user_string()}:{key.name}": {"blocking": graph.get_check_spec(key).blocking}
        for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))
    }
    jobs = {}
    for job in sorted(repository.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        jobs[job.name] = sorted(node.name for node in job.graph.node_defs)
    schedules = {
        s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name,
                 "default_status": s.default_status.value}
        for s in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {"type": type(s).__name__, "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
                 "minimum_interval_seconds": s.minimum_interval_seconds, "default_status": s.default_status.value}
        for s in sorted(repository.sensor_defs, key=lambda s: s.name)
    }
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors,
            "resources": sorted(definitions.resources or {})}


def test_loaded_definitions_match_the_snapshot():
    current = snapshot(defs)
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    if os.environ.get("EQUITY_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), f"no snapshot yet: run with EQUITY_UPDATE_SNAPSHOT=1 to write {SNAPSHOT.name}"
    assert json.loads(SNAPSHOT.read_text()) == current, (
        "the loaded Definitions changed; if intended, regenerate the snapshot (see the module docstring)"
    )
