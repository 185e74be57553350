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
