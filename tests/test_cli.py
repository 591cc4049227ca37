"""The ``searchrank`` command-line tool: happy paths and exit status 2 on bad input."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from shared_data import SHARED_DATASETS
from typer.testing import CliRunner

from searchrank.features import tables as T
from searchrank.pipelines.cli import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("dataset", "demo", "features", "ingest", "components"):
        assert command in result.output


def test_dataset_writes_every_table(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "dataset",
            "--out",
            str(tmp_path),
            "--searches",
            "300",
            "--days",
            "30",
            "--end-date",
            "2026-06-01",
            "--seed",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    for table in T.ALL_TABLES:
        assert (tmp_path / T.file_name(table)).is_file()
    assert pq.read_metadata(tmp_path / T.file_name(T.SEARCHES)).num_rows == 300


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--end-date", "June 1st"], "--end-date"),
        (["--searches", "0"], "searches"),
        (["--days", "0"], "days"),
    ],
)
def test_dataset_rejects_bad_options_with_status_2(
    tmp_path: Path, args: list[str], named: str
) -> None:
    result = runner.invoke(app, ["dataset", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert named in result.output
    assert not (tmp_path / "out").exists()


def test_fetch_rejects_a_missing_entity_file(tmp_path: Path, feature_repo: Path) -> None:
    result = runner.invoke(
        app,
        [
            "features",
            "fetch",
            "--repo",
            str(feature_repo),
            "--entities",
            str(tmp_path / "none.parquet"),
            "--out",
            str(tmp_path / "ts.parquet"),
        ],
    )
    assert result.exit_code == 2 and "entities" in result.output


def test_fetch_rejects_a_folder_that_is_no_feature_repository(
    tmp_path: Path, dataset_dir: Path
) -> None:
    result = runner.invoke(
        app,
        [
            "features",
            "fetch",
            "--repo",
            str(tmp_path),
            "--entities",
            str(dataset_dir / T.file_name(T.IMPRESSIONS)),
            "--out",
            str(tmp_path / "ts.parquet"),
        ],
    )
    assert result.exit_code == 2 and "feature_store.yaml" in result.output


def test_ingest_letor_converts_the_lightgbm_sample(tmp_path: Path) -> None:
    source = SHARED_DATASETS / "lightgbm-lambdarank" / "rank.train"
    if not source.exists():
        pytest.skip("shared datasets are not present")
    out = tmp_path / "rank_train.parquet"
    result = runner.invoke(app, ["ingest", "letor", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 3005
    assert table.column("search_id").to_pandas().nunique() == 201
