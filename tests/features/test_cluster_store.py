"""``feature_store.cluster.yaml``, unchanged, against real services on loopback.

PostgreSQL holds the SQL registry, Redis the online store and moto's S3 API server the offline
data (``tests/services.py``). Only environment variables differ from a cluster, so these tests
check what a pipeline step there does: the point-in-time join and materialization give what the
embedded default gives, and bad configuration fails at the start with an InputError that names
the variable or address.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from services import postgres_server, redis_server, s3_server, use_s3

from searchrank.components.fetch_features.logic import fetch_features
from searchrank.core import schema as S
from searchrank.core import storage
from searchrank.core.errors import InputError
from searchrank.core.names import (
    ONLINE_STORE_SECRET_ENV,
    RANKER_FEATURE_SERVICE,
    STORAGE_CONFIG_ENV,
)
from searchrank.core.net import free_port
from searchrank.features import tables as T
from searchrank.features.materialize import materialize_features
from searchrank.features.store import (
    ENVIRONMENTS,
    FEATURE_STORE_YAML,
    REPO_TEMPLATE_DIR,
    apply_definitions,
    check_connections,
    open_store,
)

pytestmark = pytest.mark.services  # PostgreSQL, Redis and moto's S3 (`cluster_repo`)

REDIS_PASSWORD = "redis-test-password"
DATA_URI = STORAGE_CONFIG_ENV["feature-data-uri"]
REDIS_ADDRESS = ONLINE_STORE_SECRET_ENV["redis-address"]
REDIS_PASSWORD_ENV = ONLINE_STORE_SECRET_ENV["redis-password"]
REGISTRY_ADDRESS = ONLINE_STORE_SECRET_ENV["registry-address"]
REGISTRY_PASSWORD = ONLINE_STORE_SECRET_ENV["registry-password"]


@pytest.fixture(scope="module")
def cluster_repo(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> Iterator[Path]:
    """A repository whose ``feature_store.yaml`` is the cluster's, unchanged, applied into the
    PostgreSQL registry, with the session's dataset uploaded to S3 as its data root."""
    with (
        pytest.MonkeyPatch.context() as env,
        s3_server() as endpoint,
        redis_server(REDIS_PASSWORD) as redis_address,
        postgres_server() as postgres,
    ):
        data_uri = f"{use_s3(env, endpoint, 'searchrank-features')}/data"
        for table in dataset_dir.glob("*.parquet"):
            storage.upload(table, f"{data_uri}/{table.name}")
        for name, value in {
            DATA_URI: data_uri,
            REDIS_ADDRESS: redis_address,
            REDIS_PASSWORD_ENV: REDIS_PASSWORD,
            REGISTRY_ADDRESS: postgres.address,
            ONLINE_STORE_SECRET_ENV["registry-user"]: postgres.user,
            REGISTRY_PASSWORD: postgres.password,
        }.items():
            env.setenv(name, value)
        repo = tmp_path_factory.mktemp("cluster_repo")
        shutil.copy(REPO_TEMPLATE_DIR / ENVIRONMENTS["cluster"], repo / FEATURE_STORE_YAML)
        apply_definitions(open_store(repo))
        yield repo


def test_the_configuration_is_the_clusters_and_its_stores_answer(cluster_repo: Path) -> None:
    cluster = (REPO_TEMPLATE_DIR / ENVIRONMENTS["cluster"]).read_text()
    assert (cluster_repo / FEATURE_STORE_YAML).read_text() == cluster
    store = open_store(cluster_repo)
    check_connections(store)
    assert store.config.offline_store.data_root.startswith("s3://")


def test_the_point_in_time_join_over_s3_equals_the_local_one(
    cluster_repo: Path, feature_repo: Path, dataset_dir: Path, tmp_path: Path
) -> None:
    entities = dataset_dir / T.file_name(T.IMPRESSIONS)
    on_s3 = fetch_features(entities, cluster_repo, RANKER_FEATURE_SERVICE, tmp_path / "s3.pq")
    local = fetch_features(entities, feature_repo, RANKER_FEATURE_SERVICE, tmp_path / "local.pq")
    assert on_s3 == local
    s3_table, local_table = pq.read_table(tmp_path / "s3.pq"), pq.read_table(tmp_path / "local.pq")
    assert s3_table.num_rows == pq.read_metadata(entities).num_rows
    assert s3_table.equals(local_table)
    assert s3_table.to_pylist() == local_table.to_pylist()


def test_materialized_redis_serves_what_sqlite_serves(
    cluster_repo: Path, fresh_repo: Path, dataset_dir: Path, window_end: datetime
) -> None:
    on_redis = materialize_features(cluster_repo, window_end)
    on_sqlite = materialize_features(fresh_repo, window_end)
    assert on_redis.windows == on_sqlite.windows

    impressions = pd.read_parquet(dataset_dir / T.file_name(T.IMPRESSIONS))
    rows = impressions.sample(200, random_state=1)[[S.USER_ID, S.ITEM_ID, S.QUERY]]
    rows[S.QUERY_TEXT] = rows[S.QUERY]
    entity_rows = rows.to_dict("records")
    served = {}
    for repo in (cluster_repo, fresh_repo):
        store = open_store(repo)
        served[repo] = store.get_online_features(
            features=store.get_feature_service(RANKER_FEATURE_SERVICE),
            entity_rows=entity_rows,
            full_feature_names=True,
        ).to_dict()
    redis, sqlite = served[cluster_repo], served[fresh_repo]
    assert redis == sqlite
    features = [c for c in redis if "__" in c]
    assert {c.split("__")[0] for c in features} >= {T.USER_STATS, T.ITEM_STATS, T.QUERY_STATS}
    assert all(any(v is not None for v in redis[c]) for c in features)


@pytest.mark.parametrize("emptied", [REDIS_PASSWORD_ENV, DATA_URI])
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_an_unset_or_empty_variable_is_named_with_the_file(
    cluster_repo: Path, monkeypatch: pytest.MonkeyPatch, emptied: str, how: str
) -> None:
    if how == "unset":
        monkeypatch.delenv(emptied)
    else:
        monkeypatch.setenv(emptied, "")
    with pytest.raises(InputError, match="set each to a non-empty value") as error:
        open_store(cluster_repo)
    assert error.value.field == emptied
    assert error.value.value == str(cluster_repo / FEATURE_STORE_YAML)


def test_every_missing_variable_is_named_with_where_the_cluster_sets_it(
    cluster_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REGISTRY_PASSWORD)
    monkeypatch.delenv(REDIS_ADDRESS)
    with pytest.raises(InputError) as error:
        open_store(cluster_repo)
    assert error.value.field == ", ".join(sorted([REGISTRY_PASSWORD, REDIS_ADDRESS]))
    assert "the secret searchrank-online-store, key registry-password" in error.value.rule


def failed_check(repo: Path, **checks: bool) -> InputError:
    with pytest.raises(InputError) as error:
        check_connections(open_store(repo), **checks)
    return error.value


def test_a_wrong_redis_password_is_reported_without_it(
    cluster_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REDIS_PASSWORD_ENV, "not-the-password")
    error = failed_check(cluster_repo)
    assert error.field == "online_store.connection_string"
    assert error.value.startswith("127.0.0.1:") and "not-the-password" not in error.value
    assert "password=***" in error.value
    assert REDIS_PASSWORD_ENV in error.rule
    # A step that does not use the online store does not check it.
    check_connections(open_store(cluster_repo), online=False)


def test_an_unreachable_redis_is_named(cluster_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv(REDIS_ADDRESS, address)
    error = failed_check(cluster_repo)
    assert error.value == f"{address},password=***,socket_timeout=1,socket_connect_timeout=1"
    assert REDIS_ADDRESS in error.rule


@pytest.mark.parametrize("broken", ["address", "password"])
def test_an_unreachable_or_refusing_registry_is_named(
    cluster_repo: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    if broken == "address":
        monkeypatch.setenv(REGISTRY_ADDRESS, address)
    else:
        monkeypatch.setenv(REGISTRY_PASSWORD, "not-the-password")
    error = failed_check(cluster_repo, online=False, offline=False)
    assert error.field == "registry.path"
    assert "not-the-password" not in str(error) and ":***@" in error.value
    if broken == "address":
        assert f"@{address}/feast" in error.value
    else:
        assert "password authentication failed" in error.rule
    assert REGISTRY_ADDRESS in error.rule and REGISTRY_PASSWORD in error.rule


def test_offline_data_without_credentials_names_the_variables(
    cluster_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(storage.ACCESS_KEY_ENV)
    monkeypatch.delenv(storage.SECRET_KEY_ENV)
    error = failed_check(cluster_repo)
    assert error.field == "offline_store.data_root"
    assert error.value.startswith("s3://searchrank-features/")
    assert f"set {storage.ACCESS_KEY_ENV} and {storage.SECRET_KEY_ENV}" in error.rule
    # A serving pod holds no object-store credentials and checks the rest only.
    check_connections(open_store(cluster_repo), offline=False)


def test_an_unreachable_object_store_is_named(
    cluster_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv(storage.ENDPOINT_ENV, endpoint)
    error = failed_check(cluster_repo)
    assert error.field == "offline_store.data_root"
    assert f"endpoint {endpoint} is unreachable" in error.rule


def test_a_missing_data_root_is_named(cluster_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_URI, "s3://searchrank-features/absent")
    error = failed_check(cluster_repo)
    assert (error.field, error.value) == (
        "offline_store.data_root",
        "s3://searchrank-features/absent",
    )
    assert error.rule == "does not exist"


def test_the_embedded_default_needs_no_connection(feature_repo: Path) -> None:
    store = open_store(feature_repo)
    check_connections(store)
    assert store._registry is None  # nothing was opened
