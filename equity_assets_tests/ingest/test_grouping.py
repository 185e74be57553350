"""The numpy grouping of linked rows against a plain union-find over the same keys."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from equity_assets.ingest.grouping import LINK_COLUMNS, components, plan_groups

key = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "e"]))
rows = st.lists(st.tuples(key, key, key, key), min_size=0, max_size=40)


def union_find_groups(values: list[tuple]) -> list[int]:
    """Smallest row number per connected component (row numbers are 1-based positions)."""
    parent = list(range(len(values)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[int, str], int] = {}
    for i, row in enumerate(values):
        for column, value in enumerate(row):
            if value is None:
                continue
            j = first.setdefault((column, value), i)
            a, b = find(i), find(j)
            parent[max(a, b)] = min(a, b)
    return [find(i) + 1 for i in range(len(values))]


def frame(values: list[tuple]) -> pd.DataFrame:
    data = pd.DataFrame(values, columns=list(LINK_COLUMNS), dtype=object)
    data.insert(0, "rn", np.arange(1, len(values) + 1, dtype=np.int64))
    return data


@settings(max_examples=300, deadline=None)
@given(rows)
def test_components_equal_union_find(values):
    data = frame(values)
    codes = [pd.factorize(data[c], use_na_sentinel=True)[0].astype(np.int64) for c in LINK_COLUMNS]
    assert components(data["rn"].to_numpy(), codes).tolist() == union_find_groups(values)


@settings(max_examples=300, deadline=None)
@given(rows, st.randoms())
def test_plan_folds_only_agreeing_new_groups_and_orders_rounds(values, rnd):
    data = frame(values)
    shuffled = data.sample(frac=1, random_state=rnd.randint(0, 10_000))  # input order must not matter
    plan = plan_groups(shuffled).frame.set_index("rn").sort_index()
    groups = union_find_groups(values)
    assert plan["grp"].tolist() == groups
    for grp in set(groups):
        members = [i for i, g in enumerate(groups) if g == grp]
        keys = data.iloc[members]
        agree = all(keys[c].dropna().nunique() <= 1 for c in ("mak", "apn_key", "addr_hash")) \
            and keys["target"].isna().all()
        rounds = plan.loc[[m + 1 for m in members], "round"].tolist()
        assert set(plan.loc[[m + 1 for m in members], "folded"]) == {agree}
        # folded: the first row is round 1, the rest are folded into it (round 0);
        # otherwise one row per round in file order
        assert rounds == ([1] + [0] * (len(members) - 1) if agree else list(range(1, len(members) + 1)))


def test_group_ids_are_uuid_v7_one_per_folded_group():
    import time
    import uuid

    from equity_assets.ingest.grouping import uuid7_hex

    before = time.time_ns() // 1_000_000
    ids = [uuid.UUID(h) for h in uuid7_hex(5000)]
    assert len(set(ids)) == 5000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 and before <= i.int >> 80 <= before + 5000 for i in ids)
    data = frame([("a", None, None, None), ("a", None, None, None), (None, "b", None, None), (None, "b", "x", "L")])
    plan = plan_groups(data).frame.set_index("rn")
    assert plan.loc[1, "new_id"] == plan.loc[2, "new_id"] and len(plan.loc[1, "new_id"]) == 32
    assert plan.loc[[3, 4], "new_id"].isna().all()  # matches an existing lead: not folded, no id
