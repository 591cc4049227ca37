"""``materialize_features``: idempotent incremental loads, and online values equal offline ones.

No ``from __future__ import annotations`` here: KFP reads component annotations.
"""

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from searchrank.components.materialize_features import materialize_features_op
from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.schema import parse_time
from searchrank.features import tables as T
from searchrank.features.materialize import materialize_features
from searchrank.features.store import open_store

FEATURES = [
    "user_stats:searches_7d",
    "user_stats:top_genre",
    "item_catalogue:name",
    "item_stats:popularity",
    "query_stats:searches_30d",
    "user_item_stats:clicks",
]


def online_state(repo: Path) -> pd.DataFrame:
    """Every value in the SQLite online store, in a canonical order."""
    with sqlite3.connect(repo / "data" / "online_store.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        frames = [
            pd.read_sql(f'SELECT entity_key, feature_name, value, event_ts FROM "{t}"', db).assign(
                table=t
            )
            for t in tables
        ]
    return (
        pd.concat(frames)
        .sort_values(["table", "entity_key", "feature_name"])
        .reset_index(drop=True)
    )


def test_op_materializes_incrementally_and_a_second_run_changes_nothing(
    kfp_local: Path, fresh_repo: Path, window_end: datetime
) -> None:
    first = materialize_features_op(feature_repo=str(fresh_repo), end=window_end.isoformat())
    assert first.outputs["Output"] == window_end.isoformat()
    summary = Path(first.outputs["summary"].path).read_text()
    assert all(view in summary for view in (T.USER_STATS, T.ITEM_STATS, T.USER_ITEM_STATS))
    state = online_state(fresh_repo)
    assert set(state["table"].str.replace("searchrank_", "")) == {
        T.USER_STATS,
        "item_catalogue",
        T.ITEM_STATS,
        T.QUERY_STATS,
        T.USER_ITEM_STATS,
    }

    again = materialize_features_op(feature_repo=str(fresh_repo), end=window_end.isoformat())
    assert "(up to date)" in Path(again.outputs["summary"].path).read_text()
    later = materialize_features(fresh_repo, window_end + timedelta(days=3))
    assert all(w.start == window_end for w in later.windows)
    pd.testing.assert_frame_equal(online_state(fresh_repo), state)


def test_online_values_equal_the_point_in_time_values_at_the_end(
    fresh_repo: Path, dataset_dir: Path, window_end: datetime
) -> None:
    materialize_features(fresh_repo, window_end)
    store = open_store(fresh_repo)
    impressions = pd.read_parquet(dataset_dir / T.file_name(T.IMPRESSIONS))
    sample = impressions.sample(300, random_state=0)[[S.USER_ID, S.ITEM_ID, S.QUERY]]
    sample = pd.concat(
        [
            sample,
            pd.DataFrame({S.USER_ID: [10**9], S.ITEM_ID: [10**9], S.QUERY: ["never searched"]}),
        ]
    )
    online = store.get_online_features(
        features=FEATURES, entity_rows=sample.to_dict("records"), full_feature_names=True
    ).to_df()
    offline = store.get_historical_features(
        entity_df=sample.assign(event_timestamp=pd.Timestamp(window_end)),
        features=FEATURES,
        full_feature_names=True,
    ).to_df()
    columns = [f.replace(":", "__") for f in FEATURES]
    for column in columns:
        left = online[column].astype(object).where(online[column].notna(), None).tolist()
        right = offline[column].astype(object).where(offline[column].notna(), None).tolist()
        assert left == pytest.approx(right) if column.endswith("popularity") else left == right, (
            column
        )
    # Some values exist, and the unknown entities come back empty in both stores.
    assert online[columns].notna().any().all()
    assert online[columns].iloc[-1].isna().all()


@pytest.mark.parametrize("value", ["yesterday", "2026-11-01T00:00:00"])
def test_bad_end_is_rejected(value: str) -> None:
    with pytest.raises(InputError, match="end"):
        parse_time("end", value)


def test_the_bulk_write_stores_exactly_what_feasts_own_sqlite_store_stores(
    fresh_repo: Path, tmp_path: Path, dataset_dir: Path, window_end: datetime
) -> None:
    """The embedded default's BulkSqliteOnlineStore against Feast's SqliteOnlineStore: the same
    rows, bytes and times, after a first load and after an incremental one (an upsert)."""
    import yaml

    from searchrank.features.online_store import STORE_TYPE
    from searchrank.features.store import FEATURE_STORE_YAML, apply_definitions, create_repo

    feasts = create_repo(tmp_path / "feasts", dataset_dir)
    config = yaml.safe_load((feasts / FEATURE_STORE_YAML).read_text())
    assert yaml.safe_load((fresh_repo / FEATURE_STORE_YAML).read_text())["online_store"][
        "type"
    ] == (STORE_TYPE)
    config["online_store"]["type"] = "sqlite"
    (feasts / FEATURE_STORE_YAML).write_text(yaml.safe_dump(config))
    apply_definitions(open_store(feasts))
    for end in (window_end - timedelta(days=5), window_end):
        materialize_features(fresh_repo, end)
        materialize_features(feasts, end)
        bulk, feast = online_state(fresh_repo), online_state(feasts)
        assert len(bulk) > 1_000
        pd.testing.assert_frame_equal(bulk, feast)
