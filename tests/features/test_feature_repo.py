"""The Feast feature repository in ``features/``: CLI, environments, schemas, services."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from feast import FeatureStore
from feast.repo_config import load_repo_config

from searchrank.core.names import (
    FEAST_PROJECT,
    ONLINE_STORE_SECRET_ENV,
    RANKER_FEATURE_SERVICE,
    STORAGE_CONFIG_ENV,
)
from searchrank.core.net import free_port
from searchrank.features import definitions, tables
from searchrank.features.contract import resolve_contract
from searchrank.features.offline_store import AsofDuckDBOfflineStoreConfig
from searchrank.features.online_store import STORE_TYPE as BULK_SQLITE
from searchrank.features.store import REPO_TEMPLATE_DIR, open_store, template

FEAST = str(Path(sys.executable).parent / "feast")
ARROW_TO_FEAST = {
    "int64": "Int64",
    "float": "Float32",
    "string": "String",
    "bool": "Bool",
    "timestamp[us, tz=UTC]": "UnixTimestamp",
}


@pytest.fixture(scope="module")
def cli_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``features/`` where the feast CLI runs, as a user would run it."""
    repo = tmp_path_factory.mktemp("cli") / "features"
    shutil.copytree(REPO_TEMPLATE_DIR, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return repo


@pytest.mark.slow
def test_feast_apply_in_the_features_folder_registers_everything(cli_repo: Path) -> None:
    result = subprocess.run(
        f"{FEAST} apply && {FEAST} feature-services list && {FEAST} feature-views list",
        shell=True,
        cwd=cli_repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in (RANKER_FEATURE_SERVICE, *(v.name for v in definitions.FEATURE_VIEWS)):
        assert name in result.stdout
    store = FeatureStore(repo_path=str(cli_repo))
    assert {s.name for s in store.list_feature_services()} == {RANKER_FEATURE_SERVICE}


@pytest.mark.slow
def test_feast_ui_serves_the_repository(cli_repo: Path) -> None:
    subprocess.run([FEAST, "apply"], cwd=cli_repo, check=True, capture_output=True, timeout=300)
    port = free_port()
    server = subprocess.Popen(
        [FEAST, "ui", "-h", "127.0.0.1", "-p", str(port)],
        cwd=cli_repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        assert response.status == 200 and "<html" in body.lower()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/projects-list.json", timeout=5) as r:
            assert FEAST_PROJECT in r.read().decode()
        services = f"http://127.0.0.1:{port}/api/v1/feature_services?project={FEAST_PROJECT}"
        with urllib.request.urlopen(services, timeout=10) as r:
            assert RANKER_FEATURE_SERVICE in r.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_local_and_cluster_configurations_load(monkeypatch: pytest.MonkeyPatch) -> None:
    local = load_repo_config(REPO_TEMPLATE_DIR, REPO_TEMPLATE_DIR / "feature_store.yaml")
    assert local.project == FEAST_PROJECT
    assert isinstance(local.offline_store, AsofDuckDBOfflineStoreConfig)
    assert local.online_store.type == BULK_SQLITE

    for key, value in {
        "registry-address": "feast-registry:5432",
        "registry-user": "feast",
        "registry-password": "s3cret",
        "redis-address": "redis:6379",
        "redis-password": "pw",
    }.items():
        monkeypatch.setenv(ONLINE_STORE_SECRET_ENV[key], value)
    monkeypatch.setenv(STORAGE_CONFIG_ENV["feature-data-uri"], "s3://features/music")
    cluster = load_repo_config(REPO_TEMPLATE_DIR, REPO_TEMPLATE_DIR / "feature_store.cluster.yaml")
    assert cluster.project == FEAST_PROJECT
    assert cluster.online_store.type == "redis"
    assert cluster.online_store.connection_string == (
        "redis:6379,password=pw,socket_timeout=1,socket_connect_timeout=1"
    )
    assert cluster.registry.registry_type == "sql"
    assert "://feast:s3cret@feast-registry:5432/feast" in cluster.registry.path
    assert cluster.offline_store.data_root == "s3://features/music"
    assert template("cluster")["project"] == template("local")["project"]


def test_generated_files_carry_the_types_the_feature_views_declare(
    feature_repo: Path, dataset_dir: Path
) -> None:
    store = open_store(feature_repo)
    for view in store.list_feature_views():
        source = view.batch_source
        schema = pq.read_schema(dataset_dir / source.path)
        for field in view.features:
            arrow = str(schema.field(field.name).type)
            assert ARROW_TO_FEAST[arrow] == str(field.dtype), (view.name, field.name)


def test_feature_services_are_versioned_and_hold_the_expected_views(feature_repo: Path) -> None:
    store = open_store(feature_repo)
    ranker = store.get_feature_service(RANKER_FEATURE_SERVICE)
    views = {p.name for p in ranker.feature_view_projections}
    assert views == {
        tables.USER_STATS,
        tables.ITEM_CATALOGUE,
        tables.ITEM_STATS,
        tables.QUERY_STATS,
        tables.USER_ITEM_STATS,
        tables.QUERY_ITEM_MATCH,
    }
    columns = {c.column for c in resolve_contract(store, RANKER_FEATURE_SERVICE).columns}
    named = [v for k, v in vars(tables).items() if k.endswith("_COLUMN") and "__" in str(v)]
    assert set(named) <= columns, "every column code reads by name is in the feature service"
    assert RANKER_FEATURE_SERVICE.endswith("_v1")
