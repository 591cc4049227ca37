"""Point-in-time cases shared by the offline stores' tests: two feature views, random feature
and entity rows, and a brute-force reference.

Random feature rows (several per key, ties on timestamp broken by created time) and random
entity rows (shared keys and timestamps, unknown keys); the reference is the latest feature row
at or before the event within the TTL, ties broken by the latest created time; nulls otherwise;
every entity row exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Int64
from hypothesis import strategies as st

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(hours=30)
FEATURES = ["u:value", "ui:count"]
Case = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
"""A :func:`scenario`: the user view's rows, the pair view's rows and the entity rows."""


def views() -> list[object]:
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)
    user_view = FeatureView(
        name="u",
        entities=[user],
        ttl=TTL,
        schema=[Field(name="value", dtype=Float32)],
        source=FileSource(
            name="u_src", path="u.parquet", timestamp_field="ts", created_timestamp_column="created"
        ),
    )
    pair_view = FeatureView(
        name="ui",
        entities=[user, item],
        ttl=timedelta(0),
        schema=[Field(name="count", dtype=Int64)],
        source=FileSource(
            name="ui_src",
            path="ui.parquet",
            timestamp_field="ts",
            created_timestamp_column="",
            field_mapping={"n": "count"},
        ),
    )
    return [user, item, user_view, pair_view]


hours = st.integers(min_value=0, max_value=96)
users = st.integers(min_value=1, max_value=4)
items = st.integers(min_value=1, max_value=3)


def stamps(moments: list[datetime]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(moments, dtype="datetime64[us, UTC]")


@st.composite
def scenario(draw: st.DrawFn) -> Case:
    n = draw(st.integers(min_value=0, max_value=25))
    created = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    user_rows = pd.DataFrame(
        {
            "user_id": draw(st.lists(users, min_size=n, max_size=n)),
            "ts": stamps(
                [T0 + timedelta(hours=h) for h in draw(st.lists(hours, min_size=n, max_size=n))]
            ),
            "created": stamps([T0 + timedelta(seconds=c) for c in created]),
            "value": np.arange(n, dtype=np.float32),
        }
    )
    m = draw(st.integers(min_value=0, max_value=15))
    pair_keys = draw(
        st.lists(st.tuples(users, items, hours), min_size=m, max_size=m, unique_by=lambda k: k)
    )
    pair_rows = pd.DataFrame(
        {
            "user_id": [k[0] for k in pair_keys],
            "item_id": [k[1] for k in pair_keys],
            "ts": stamps([T0 + timedelta(hours=k[2]) for k in pair_keys]),
            "n": np.arange(m, dtype=np.int64) + 100,
        }
    )
    e = draw(st.integers(min_value=1, max_value=30))
    entity = pd.DataFrame(
        {
            "user_id": draw(st.lists(st.integers(1, 6), min_size=e, max_size=e)),  # 5, 6 unknown
            "item_id": draw(st.lists(items, min_size=e, max_size=e)),
            "event_timestamp": [
                T0 + timedelta(hours=h, minutes=30 * (h % 2))
                for h in draw(st.lists(hours, min_size=e, max_size=e))
            ],
            "label": np.arange(e),
        }
    )
    return user_rows, pair_rows, entity


def reference(
    entity: pd.DataFrame, user_rows: pd.DataFrame, pair_rows: pd.DataFrame
) -> pd.DataFrame:
    values, counts = [], []
    for row in entity.itertuples():
        ts = row.event_timestamp
        u = user_rows[
            (user_rows.user_id == row.user_id) & (user_rows.ts <= ts) & (user_rows.ts >= ts - TTL)
        ]
        values.append(u.sort_values(["ts", "created"]).value.iloc[-1] if len(u) else None)
        p = pair_rows[
            (pair_rows.user_id == row.user_id)
            & (pair_rows.item_id == row.item_id)
            & (pair_rows.ts <= ts)
        ]
        counts.append(p.sort_values("ts").n.iloc[-1] if len(p) else None)
    return entity.assign(
        u__value=pd.array(values, dtype="Float32"), ui__count=pd.array(counts, dtype="Int64")
    )


def write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def write_case(case: Case, data: Path) -> pd.DataFrame:
    """Write a scenario's sources to ``data`` (the views' relative paths); return its entity
    rows."""
    user_rows, pair_rows, entity = case
    write(user_rows.astype({"user_id": "int64", "value": "float32"}), data / "u.parquet")
    write(pair_rows.astype({"user_id": "int64", "item_id": "int64"}), data / "ui.parquet")
    return entity


def check_against_reference(got: pd.DataFrame, case: Case) -> None:
    """A store's result for a scenario equals the brute-force reference, row for row."""
    user_rows, pair_rows, entity = case
    expected = reference(entity, user_rows, pair_rows)
    # No entity row lost, duplicated or reordered.
    assert got["label"].tolist() == entity["label"].tolist()
    assert got["u__value"].astype("Float32").tolist() == expected["u__value"].tolist()
    assert got["ui__count"].astype("Int64").tolist() == expected["ui__count"].tolist()


def write_tie_and_expiry_case(data: Path) -> pd.DataFrame:
    """Write a fixed case's sources to ``data``; return its entity rows (see
    :func:`check_tie_and_expiry`)."""
    stamps = [T0, T0 + timedelta(hours=10), T0 + timedelta(hours=10, microseconds=1)]
    write(
        pd.DataFrame(
            {
                "user_id": [1, 1, 1],
                "ts": stamps,
                "created": stamps,
                "value": np.array([1, 2, 3], dtype=np.float32),
            }
        ),
        data / "u.parquet",
    )
    write(pd.DataFrame({"user_id": [1], "item_id": [1], "ts": [T0], "n": [7]}), data / "ui.parquet")
    entity = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2],
            "item_id": [1, 1, 1, 1],
            "event_timestamp": [T0 + timedelta(hours=10)] * 2 + [T0 + timedelta(hours=41)] * 2,
            "label": [0, 1, 2, 3],
        }
    )
    return entity


def check_tie_and_expiry(got: pd.DataFrame) -> None:
    """Check a store's result for :func:`write_tie_and_expiry_case`."""
    # The same (user, timestamp) twice: both rows kept, both get the value stamped exactly then.
    assert got["u__value"].tolist()[:2] == [2.0, 2.0]
    # 31 hours after the last value: beyond the 30-hour TTL, so null; the pair view never expires.
    assert pd.isna(got["u__value"].iloc[2]) and got["ui__count"].iloc[2] == 7
    # An unknown user gets nulls.
    assert pd.isna(got["u__value"].iloc[3]) and pd.isna(got["ui__count"].iloc[3])
