"""``fetch_features``: the logic on the session dataset, bad input, and the op via kfp.local.

No ``from __future__ import annotations`` here: KFP reads the test components' annotations.
"""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from searchrank.components.fetch_features import fetch_features_op
from searchrank.components.fetch_features.logic import fetch_features
from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract, contract_beside
from searchrank.core.errors import InputError
from searchrank.core.names import COMPONENT_IMAGE, RANKER_FEATURE_SERVICE, MetadataKey
from searchrank.features import tables as T


@pytest.fixture(scope="module")
def training_set(
    tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path, feature_repo: Path
) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("fetch") / "training_set.parquet"
    summary = fetch_features(
        dataset_dir / T.file_name(T.IMPRESSIONS), feature_repo, RANKER_FEATURE_SERVICE, out
    )
    return out, summary


def test_training_set_keeps_every_entity_row_in_order(
    dataset_dir: Path, training_set: tuple[Path, object]
) -> None:
    path, _ = training_set
    entities = pq.read_table(dataset_dir / T.file_name(T.IMPRESSIONS))
    data = pq.read_table(path)
    assert data.num_rows == entities.num_rows
    assert data.select(list(S.ENTITY_COLUMNS)).equals(entities.select(list(S.ENTITY_COLUMNS)))


def test_columns_follow_the_documented_schema(training_set: tuple[Path, object]) -> None:
    path, summary = training_set
    names = pq.read_schema(path).names
    assert tuple(names[: len(S.ENTITY_COLUMNS)]) == S.ENTITY_COLUMNS
    features = names[len(S.ENTITY_COLUMNS) :]
    assert features == summary.feature_columns  # type: ignore[attr-defined]
    assert all("__" in f for f in features)
    assert {f.split("__")[0] for f in features} == {
        "user_stats",
        "item_catalogue",
        "item_stats",
        "query_stats",
        "user_item_stats",
        "query_item_match",
    }
    assert S.QUERY_TEXT not in names


def test_summary_counts_rows_time_range_and_missing_features(
    training_set: tuple[Path, object],
) -> None:
    path, summary = training_set
    frame = pd.read_parquet(path)
    features = frame.columns[len(S.ENTITY_COLUMNS) :]
    meta = summary.metadata()  # type: ignore[attr-defined]
    assert meta[MetadataKey.ROWS] == len(frame)
    assert meta[MetadataKey.COLUMNS] == len(frame.columns)
    contract = FeatureContract.load(contract_beside(path))
    assert summary.feature_service == contract.feature_service == RANKER_FEATURE_SERVICE
    assert summary.schema_hash == contract.schema_hash
    assert summary.feature_columns == contract.names
    assert meta[MetadataKey.EVENT_TIME_MIN] == frame[S.EVENT_TIMESTAMP].min().isoformat()
    assert meta[MetadataKey.EVENT_TIME_MAX] == frame[S.EVENT_TIMESTAMP].max().isoformat()
    assert meta[MetadataKey.ROWS_WITH_MISSING_FEATURES] == int(
        frame[features].isna().any(axis=1).sum()
    )
    assert meta["missing_by_feature"]["user_item_stats__clicks"] == int(
        frame["user_item_stats__clicks"].isna().sum()
    )
    # A first impression of a (user, item) pair has no pair history yet: null, and counted.
    assert 0 < meta["missing_by_feature"]["user_item_stats__clicks"] < len(frame)


def test_text_match_features_are_computed_at_request_time(
    training_set: tuple[Path, object],
) -> None:
    frame = pd.read_parquet(training_set[0])
    exact = frame["query_item_match__name_exact"] == 1.0
    names = frame.loc[exact, "item_catalogue__name"].str.lower()
    assert (
        exact.any()
        and (
            names.str.replace(r"[^\w ]", " ", regex=True).str.split().str.join(" ")
            == frame.loc[exact, S.QUERY]
        ).all()
    )


def _write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: t.drop_columns([S.USER_ID]), S.USER_ID),
        (lambda t: t.drop_columns([S.EVENT_TIMESTAMP]), S.EVENT_TIMESTAMP),
        (
            lambda t: t.set_column(
                t.schema.get_field_index(S.EVENT_TIMESTAMP),
                S.EVENT_TIMESTAMP,
                t.column(S.EVENT_TIMESTAMP).cast(pa.timestamp("us")),
            ),
            "timezone",
        ),
        (
            lambda t: t.set_column(
                t.schema.get_field_index(S.EVENT_TIMESTAMP),
                S.EVENT_TIMESTAMP,
                t.column(S.EVENT_TIMESTAMP).cast(pa.string()),
            ),
            "timestamp type",
        ),
    ],
    ids=["no join key", "no event timestamp", "naive timestamps", "string timestamps"],
)
def test_bad_entities_are_rejected_before_anything_is_written(
    tmp_path: Path, dataset_dir: Path, feature_repo: Path, change: object, named: str
) -> None:
    entities = pq.read_table(dataset_dir / T.file_name(T.IMPRESSIONS)).slice(0, 100)
    bad = _write(change(entities), tmp_path / "entities.parquet")  # type: ignore[operator]
    out = tmp_path / "out" / "training_set.parquet"
    with pytest.raises(InputError, match=named):
        fetch_features(bad, feature_repo, RANKER_FEATURE_SERVICE, out)
    assert not out.exists() and not out.parent.exists()


def test_unknown_feature_service_lists_the_known_ones(
    tmp_path: Path, dataset_dir: Path, feature_repo: Path
) -> None:
    out = tmp_path / "training_set.parquet"
    with pytest.raises(InputError, match=r"ranker_v9.*ranker_v1"):
        fetch_features(dataset_dir / T.file_name(T.IMPRESSIONS), feature_repo, "ranker_v9", out)
    assert not out.exists()


def test_a_failed_fetch_keeps_the_previous_output(
    tmp_path: Path, dataset_dir: Path, feature_repo: Path
) -> None:
    out = tmp_path / "training_set.parquet"
    out.write_bytes(b"previous run")
    with pytest.raises(InputError):
        fetch_features(dataset_dir / T.file_name(T.IMPRESSIONS), feature_repo, "nope", out)
    assert out.read_bytes() == b"previous run"
    assert list(tmp_path.iterdir()) == [out]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def _entities_op(source: str, entities: Output[Dataset]) -> None:
    import shutil

    shutil.copyfile(source, entities.path)


@dsl.pipeline(name="fetch-features-test")
def _fetch_pipeline(source: str, feature_repo: str) -> Markdown:
    entities = _entities_op(source=source)
    fetched = fetch_features_op(
        entities=entities.outputs["entities"],
        feature_repo=feature_repo,
        feature_service=RANKER_FEATURE_SERVICE,
    )
    return fetched.outputs["summary"]


def test_fetch_features_op_runs_in_kfp_local(
    kfp_local: Path, tmp_path: Path, dataset_dir: Path, feature_repo: Path
) -> None:
    entities = pq.read_table(dataset_dir / T.file_name(T.IMPRESSIONS)).slice(0, 2_000)
    source = _write(entities, tmp_path / "entities.parquet")
    run = _fetch_pipeline(source=str(source), feature_repo=str(feature_repo))
    summary = run.output
    assert "ranker_v1" in Path(summary.path).read_text()
    produced = list(kfp_local.rglob("training_set"))
    assert len(produced) == 1
    data = pq.read_table(produced[0])
    assert data.num_rows == 2_000
    (contract,) = kfp_local.rglob("feature_contract")
    assert FeatureContract.load(contract).names == data.column_names[len(S.ENTITY_COLUMNS) :]
    assert data.select(list(S.ENTITY_COLUMNS)).equals(entities.select(list(S.ENTITY_COLUMNS)))
