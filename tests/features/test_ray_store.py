"""The Ray offline store and compute engine (features/ray_offline_store.py) on local Ray.

The point-in-time join must return what the brute-force reference and the DuckDB store return,
row for row, with either join strategy: broadcast (small views) and hash-partitioned (large
ones). Materialization through the Ray engine must leave Redis as Feast's local engine leaves it.
A Ray address that does not answer, or local data with a remote cluster, fails at start-up.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from feast import FeatureStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pit_cases import (
    FEATURES,
    TTL,
    Case,
    check_against_reference,
    check_tie_and_expiry,
    scenario,
    views,
    write_case,
    write_tie_and_expiry_case,
)
from services import redis_server

from searchrank.components.fetch_features.logic import fetch_features
from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.names import RANKER_FEATURE_SERVICE
from searchrank.features import tables as T
from searchrank.features.asof_join import ROW_ID, ViewJoin
from searchrank.features.materialize import materialize_features
from searchrank.features.ray_join import BUCKET, join_partition, split_block
from searchrank.features.store import (
    FEATURE_STORE_YAML,
    apply_definitions,
    check_connections,
    open_store,
    template,
)

RAY = {
    "type": "searchrank.features.ray_offline_store.AsofRayOfflineStore",
    # Logical CPUs over-declared: Ray Data's reads wait forever for a free CPU (STACK-NOTES).
    "ray_conf": {"num_cpus": 4, "object_store_memory": 500_000_000},
}
RAY_ENGINE = {"type": "searchrank.features.ray_offline_store.AsofRayComputeEngine"}
THRESHOLD_MB = {"broadcast": 100, "partitioned": 0}
"""``broadcast_join_threshold_mb`` that puts every (small) test view under each strategy."""


def write_repo(repo: Path, data_root: Path, strategy: str, **changes: Any) -> Path:
    """A repository like the embedded default's, with the Ray offline store and engine."""
    config = template("local")
    config["offline_store"] = {
        **RAY,
        "data_root": str(data_root),
        "broadcast_join_threshold_mb": THRESHOLD_MB[strategy],
    }
    config["batch_engine"] = RAY_ENGINE
    config.update(changes)
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "data").mkdir(exist_ok=True)
    (repo / FEATURE_STORE_YAML).write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """Local Ray for this module, started by the first store that needs it; shut down after."""
    from feast.infra.ray_initializer import shutdown_ray

    try:
        yield
    finally:
        shutdown_ray()


@pytest.fixture(scope="module")
def pit_stores(
    tmp_path_factory: pytest.TempPathFactory, local_ray: None
) -> tuple[dict[str, FeatureStore], Path]:
    """One store per join strategy over the same two small views in one data folder."""
    root = tmp_path_factory.mktemp("ray_pit")
    data = root / "data"
    data.mkdir()
    stores = {}
    for strategy in THRESHOLD_MB:
        store = open_store(write_repo(root / strategy, data, strategy))
        store.apply(views())
        stores[strategy] = store
    return stores, data


def _join(store: FeatureStore, entity: pd.DataFrame) -> pd.DataFrame:
    return store.get_historical_features(
        entity_df=entity, features=FEATURES, full_feature_names=True
    ).to_df()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario())
def test_the_broadcast_join_matches_brute_force(
    pit_stores: tuple[dict[str, FeatureStore], Path], case: Case
) -> None:
    stores, data = pit_stores
    check_against_reference(_join(stores["broadcast"], write_case(case, data)), case)


@pytest.mark.parametrize("strategy", THRESHOLD_MB)
def test_ties_expiry_and_shared_keys_under_either_strategy(
    pit_stores: tuple[dict[str, FeatureStore], Path], strategy: str
) -> None:
    stores, data = pit_stores
    entity = write_tie_and_expiry_case(data)
    got = _join(stores[strategy], entity)
    assert got["label"].tolist() == entity["label"].tolist()
    check_tie_and_expiry(got)


def test_no_entity_rows_give_no_rows_with_the_feature_columns(
    pit_stores: tuple[dict[str, FeatureStore], Path],
) -> None:
    stores, data = pit_stores
    entity = write_tie_and_expiry_case(data).iloc[:0]
    got = _join(stores["broadcast"], entity)
    assert len(got) == 0
    assert {"u__value", "ui__count"} <= set(got.columns)


USER_VIEW = ViewJoin("u.parquet", {"user_id": "user_id"}, "ts", "created", {"value": "u"}, TTL)
PAIR_VIEW = ViewJoin(
    "ui.parquet", {"user_id": "user_id", "item_id": "item_id"}, "ts", "", {"n": "ui"}, None
)


def _partitioned_join(
    entity: pa.Table, source: pa.Table, view: ViewJoin, partitions: int, blocks: int
) -> pa.Table:
    """What a partitioned join computes, without Ray: each input split into ``blocks`` blocks,
    each block split by partition, the pieces grouped by partition and each group joined."""

    def pieces(table: pa.Table, keys: list[str], side: int) -> list[pa.Table]:
        size = max(1, -(-table.num_rows // blocks))
        return [
            split_block(table.slice(i, size), keys, partitions, side)
            for i in range(0, table.num_rows, size)
        ]

    shuffled = pa.concat_tables(
        pieces(entity, list(view.keys.values()), 0) + pieces(source, list(view.keys), 1)
    )
    window = (pc.min(entity["event_timestamp"]).as_py(), pc.max(entity["event_timestamp"]).as_py())
    parts = [
        join_partition(
            shuffled.filter(pc.equal(shuffled[BUCKET], b)),
            view,
            source.schema,
            window,
            "event_timestamp",
        )
        for b in range(partitions)
    ]
    joined = pa.concat_tables(parts)
    return joined.take(pc.sort_indices(joined, [(ROW_ID, "ascending")]))


@settings(max_examples=60, deadline=None)
@given(scenario(), st.integers(1, 5), st.integers(1, 3))
def test_partitioned_joins_match_brute_force_for_any_partitioning(
    case: Case, partitions: int, blocks: int
) -> None:
    user_rows, pair_rows, entity = case
    table = pa.Table.from_pandas(entity, preserve_index=False)
    table = table.append_column(ROW_ID, pa.array(range(len(entity)), pa.int64()))
    users = pa.Table.from_pandas(user_rows.astype({"user_id": "int64"}), preserve_index=False)
    pairs = pa.Table.from_pandas(pair_rows.astype({"user_id": "int64"}), preserve_index=False)
    with_user = _partitioned_join(table, users, USER_VIEW, partitions, blocks)
    with_both = _partitioned_join(with_user, pairs, PAIR_VIEW, partitions, blocks)
    got = with_both.to_pandas().rename(columns={"u": "u__value", "ui": "ui__count"})
    check_against_reference(got, case)


@pytest.mark.slow
def test_the_synthetic_set_joins_partitioned_as_the_duckdb_store_does(
    local_ray: None, feature_repo: Path, dataset_dir: Path, tmp_path: Path
) -> None:
    """The training set of the session's dataset (every view of the ranker's feature service,
    the on-demand text match included) is the DuckDB store's, byte for byte, with every view
    partitioned. (Broadcast, which these small views get by default, is the case of
    ``test_ray_cluster_store.py``, on a Ray head over S3.)"""
    repo = write_repo(tmp_path / "repo", dataset_dir, "partitioned")
    apply_definitions(open_store(repo))
    entities = dataset_dir / T.file_name(T.IMPRESSIONS)
    on_ray = fetch_features(entities, repo, RANKER_FEATURE_SERVICE, tmp_path / "ray.pq")
    duckdb = fetch_features(entities, feature_repo, RANKER_FEATURE_SERVICE, tmp_path / "duck.pq")
    assert on_ray == duckdb
    ray_table, duck_table = pq.read_table(tmp_path / "ray.pq"), pq.read_table(tmp_path / "duck.pq")
    assert ray_table.num_rows == pq.read_metadata(entities).num_rows
    assert ray_table.equals(duck_table)
    assert any(c.startswith("query_item_match__") for c in ray_table.column_names)


@pytest.mark.slow
@pytest.mark.services  # Redis
def test_materializing_on_ray_leaves_redis_as_the_local_engine_does(
    local_ray: None, dataset_dir: Path, tmp_path: Path, window_end: datetime
) -> None:
    with redis_server() as address:
        local_config = template("local")
        local_config["offline_store"]["data_root"] = str(dataset_dir)
        local_config["online_store"] = {"type": "redis", "connection_string": f"{address},db=0"}
        local = tmp_path / "local"
        (local / "data").mkdir(parents=True)
        (local / FEATURE_STORE_YAML).write_text(yaml.safe_dump(local_config))
        online = {"type": "redis", "connection_string": f"{address},db=1"}
        ray = write_repo(tmp_path / "ray", dataset_dir, "partitioned", online_store=online)
        for repo in (local, ray):
            apply_definitions(open_store(repo))

        impressions = pd.read_parquet(dataset_dir / T.file_name(T.IMPRESSIONS))
        rows = impressions.sample(300, random_state=2)[[S.USER_ID, S.ITEM_ID, S.QUERY]]
        rows[S.QUERY_TEXT] = rows[S.QUERY]
        # A first run (whose window starts one TTL before its end), then an incremental one.
        for end in (window_end - timedelta(days=12), window_end):
            on_ray = materialize_features(ray, end)
            on_local = materialize_features(local, end)
            assert on_ray.windows == on_local.windows
            served = [_online(repo, rows) for repo in (ray, local)]
            assert served[0] == served[1]
            features = [c for c in served[0] if "__" in c]
            assert all(any(v is not None for v in served[0][c]) for c in features)


def _online(repo: Path, rows: pd.DataFrame) -> dict[str, list[Any]]:
    store = open_store(repo)
    return store.get_online_features(
        features=store.get_feature_service(RANKER_FEATURE_SERVICE),
        entity_rows=rows.to_dict("records"),
        full_feature_names=True,
    ).to_dict()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_ray_address_that_does_not_answer_fails_at_start_up(
    dataset_dir: Path, tmp_path: Path
) -> None:
    address = f"ray://127.0.0.1:{_closed_port()}"
    repo = write_repo(tmp_path / "repo", dataset_dir, "broadcast")
    config = yaml.safe_load((repo / FEATURE_STORE_YAML).read_text())
    config["offline_store"]["ray_address"] = address
    config["batch_engine"] = {**RAY_ENGINE, "ray_address": address}
    (repo / FEATURE_STORE_YAML).write_text(yaml.safe_dump(config))
    output = tmp_path / "training.parquet"
    with pytest.raises(InputError, match="must accept a connection") as error:
        fetch_features(
            dataset_dir / T.file_name(T.IMPRESSIONS), repo, RANKER_FEATURE_SERVICE, output
        )
    assert error.value.field == "offline_store.ray_address"
    assert error.value.value == address
    assert "SEARCHRANK_FEATURE_RAY_ADDRESS" in str(error.value)
    assert not output.exists()


def test_local_data_with_a_ray_cluster_fails_at_start_up(dataset_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as head:  # something that answers, so only the data is wrong
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        engine = {**RAY_ENGINE, "ray_address": address}
        repo = write_repo(tmp_path / "repo", dataset_dir, "broadcast", batch_engine=engine)
        config = yaml.safe_load((repo / FEATURE_STORE_YAML).read_text())
        config["offline_store"]["ray_address"] = address
        (repo / FEATURE_STORE_YAML).write_text(yaml.safe_dump(config))
        with pytest.raises(InputError, match="must be object storage") as error:
            check_connections(open_store(repo), online=False)
    assert error.value.field == "offline_store.data_root"
    assert error.value.value == str(dataset_dir)


def test_the_store_and_the_engine_must_name_one_ray_cluster(
    dataset_dir: Path, tmp_path: Path
) -> None:
    engine = {**RAY_ENGINE, "ray_address": "ray://elsewhere:10001"}
    repo = write_repo(tmp_path / "repo", dataset_dir, "broadcast", batch_engine=engine)
    with pytest.raises(InputError, match="same Ray cluster") as error:
        check_connections(open_store(repo), online=False)
    assert error.value.field == "offline_store.ray_address and batch_engine.ray_address"
