"""``feature_store.ray.yaml``, unchanged, against a real Ray head and real services on loopback.

A Ray head (``ray start --head``, reached through its Ray Client port as a pod reaches the
RayCluster's), PostgreSQL for the registry, Redis for the online store and moto's S3 API server
for the offline data (``tests/services.py``). Only environment variables differ from a cluster:
``fetch_features`` through this file returns the embedded default's training set, and
``materialize_features`` leaves in Redis what the embedded default leaves in SQLite.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from services import RayHead, postgres_server, ray_head, redis_server, s3_server, use_s3

from searchrank.components.fetch_features.logic import fetch_features
from searchrank.core import storage
from searchrank.core.names import (
    ONLINE_STORE_SECRET_ENV,
    RANKER_FEATURE_SERVICE,
    STORAGE_CONFIG_ENV,
)
from searchrank.features import tables as T
from searchrank.features.materialize import materialize_features
from searchrank.features.store import (
    ENVIRONMENTS,
    FEATURE_STORE_YAML,
    REPO_TEMPLATE_DIR,
    apply_definitions,
    open_store,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

REDIS_PASSWORD = "redis-test-password"


@pytest.fixture(scope="module")
def ray_repo(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> Iterator[Path]:
    """A repository whose ``feature_store.yaml`` is ``feature_store.ray.yaml``, unchanged, over
    the session's dataset on S3, a Ray head started with the object store's settings (as the
    component ray-features gives the Ray pods), PostgreSQL and Redis."""
    from feast.infra.ray_initializer import shutdown_ray

    with (
        pytest.MonkeyPatch.context() as env,
        s3_server() as endpoint,
        redis_server(REDIS_PASSWORD) as redis_address,
        postgres_server() as postgres,
    ):
        data_uri = f"{use_s3(env, endpoint, 'searchrank-features')}/data"
        for table in dataset_dir.glob("*.parquet"):
            storage.upload(table, f"{data_uri}/{table.name}")
        with ray_head() as head:
            for name, value in {
                STORAGE_CONFIG_ENV["feature-data-uri"]: data_uri,
                STORAGE_CONFIG_ENV["feature-ray-address"]: head.client,
                ONLINE_STORE_SECRET_ENV["redis-address"]: redis_address,
                ONLINE_STORE_SECRET_ENV["redis-password"]: REDIS_PASSWORD,
                ONLINE_STORE_SECRET_ENV["registry-address"]: postgres.address,
                ONLINE_STORE_SECRET_ENV["registry-user"]: postgres.user,
                ONLINE_STORE_SECRET_ENV["registry-password"]: postgres.password,
            }.items():
                env.setenv(name, value)
            repo = tmp_path_factory.mktemp("ray_repo")
            shutil.copy(REPO_TEMPLATE_DIR / ENVIRONMENTS["ray"], repo / FEATURE_STORE_YAML)
            # Shut Feast's Ray client down whatever happens: a half-made connection left in
            # this pytest worker would be the Ray that the worker's next training test joins.
            try:
                _apply_through_the_client(repo, head)
                yield repo
            finally:
                shutdown_ray()


def _apply_through_the_client(repo: Path, head: RayHead) -> None:
    """``feast apply`` through the head's Ray Client, tried twice: the head's client server
    once failed to start its per-client server on a loaded machine. A second failure raises
    with the client server's error log; a first one is reported as a warning with it."""
    from feast.infra.ray_initializer import shutdown_ray

    try:
        apply_definitions(open_store(repo))
    except ConnectionAbortedError:
        shutdown_ray()
        log = head.client_server_errors()
        warnings.warn(
            f"the Ray Client failed to connect once; retrying. Its log:\n{log}", stacklevel=2
        )
        try:
            apply_definitions(open_store(repo))
        except ConnectionAbortedError as error:
            raise RuntimeError(head.client_server_errors()) from error


def test_the_point_in_time_join_on_the_ray_head_equals_the_embedded_one(
    ray_repo: Path, feature_repo: Path, dataset_dir: Path, tmp_path: Path
) -> None:
    assert (ray_repo / FEATURE_STORE_YAML).read_text() == (
        REPO_TEMPLATE_DIR / ENVIRONMENTS["ray"]
    ).read_text()
    entities = dataset_dir / T.file_name(T.IMPRESSIONS)
    on_ray = fetch_features(entities, ray_repo, RANKER_FEATURE_SERVICE, tmp_path / "ray.pq")
    local = fetch_features(entities, feature_repo, RANKER_FEATURE_SERVICE, tmp_path / "local.pq")
    assert on_ray == local
    ray_table = pq.read_table(tmp_path / "ray.pq")
    local_table = pq.read_table(tmp_path / "local.pq")
    assert ray_table.num_rows == pq.read_metadata(entities).num_rows
    assert ray_table.equals(local_table)


def test_materializing_on_the_ray_head_fills_redis_as_the_embedded_default_fills_sqlite(
    ray_repo: Path, fresh_repo: Path, dataset_dir: Path, window_end: datetime
) -> None:
    import pandas as pd

    from searchrank.core import schema as S

    on_ray = materialize_features(ray_repo, window_end)
    on_sqlite = materialize_features(fresh_repo, window_end)
    assert on_ray.windows == on_sqlite.windows
    impressions = pd.read_parquet(dataset_dir / T.file_name(T.IMPRESSIONS))
    rows = impressions.sample(200, random_state=3)[[S.USER_ID, S.ITEM_ID, S.QUERY]]
    rows[S.QUERY_TEXT] = rows[S.QUERY]
    served = []
    for repo in (ray_repo, fresh_repo):
        store = open_store(repo)
        served.append(
            store.get_online_features(
                features=store.get_feature_service(RANKER_FEATURE_SERVICE),
                entity_rows=rows.to_dict("records"),
                full_feature_names=True,
            ).to_dict()
        )
    assert served[0] == served[1]
    assert all(any(v is not None for v in values) for values in served[0].values())
