"""The ``searchrank`` command-line tool: happy paths and exit status 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from shared_data import SHARED_DATASETS
from typer.testing import CliRunner

from searchrank.core.contract import contract_beside
from searchrank.features import tables as T
from searchrank.pipelines.cli import app
from searchrank.pipelines.run import pipeline_parameters

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
        (["--old-ranker-popularity", "-1"], "old_ranker_popularity"),
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


@pytest.fixture(scope="module")
def small_training_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``searchrank dataset --training-set``: generate, apply Feast, fetch, in one command."""
    folder = tmp_path_factory.mktemp("cli-training-set")
    out = folder / "training_set.parquet"
    result = runner.invoke(
        app,
        [
            "dataset",
            "--out",
            str(folder / "data"),
            "--searches",
            "1500",
            "--days",
            "30",
            "--end-date",
            "2026-06-01",
            "--training-set",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_dataset_writes_a_fetched_training_set(small_training_set: Path) -> None:
    names = pq.read_schema(small_training_set).names
    assert names[:3] == ["search_id", "user_id", "item_id"]
    assert "item_stats__popularity" in names and "query_item_match__name_exact" in names


def test_validate_exits_0_and_ends_with_json_when_the_data_passes(small_training_set: Path) -> None:
    result = runner.invoke(app, ["validate", "--data", str(small_training_set), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {"passed": True, "failed": []}


def test_validate_exits_1_and_lists_each_failed_expectation(
    small_training_set: Path, tmp_path: Path
) -> None:
    frame = pq.read_table(small_training_set).to_pandas()
    frame.loc[::50, "label"] = 9
    broken = tmp_path / "broken.parquet"
    frame.to_parquet(broken, index=False)
    contract = contract_beside(small_training_set)
    result = runner.invoke(
        app,
        [
            *("validate", "--data", str(broken), "--contract", str(contract), "--json"),
            *("--report-dir", str(tmp_path / "report")),
        ],
    )
    assert result.exit_code == 1
    failed = json.loads(result.output.strip().splitlines()[-1])["failed"]
    assert {"column": "label", "rule": "label_grades"} in [
        {"column": f["column"], "rule": f["rule"]} for f in failed
    ]
    assert all({"column", "rule", "observed"} <= set(f) for f in failed)
    assert (tmp_path / "report" / "validation.html").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--contract", "nowhere.json"], "feature contract"),
        (["--window-start", "last tuesday"], "--window-start"),
        (["--max-list-length", "1"], "min_list_length"),
    ],
)
def test_validate_exits_2_on_a_usage_error(
    small_training_set: Path, args: list[str], named: str
) -> None:
    result = runner.invoke(app, ["validate", "--data", str(small_training_set), *args])
    assert result.exit_code == 2
    assert named in result.output


def test_validate_exits_2_on_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "nope.parquet")])
    assert result.exit_code == 2 and "data" in result.output


def test_run_lists_the_pipeline_s_parameters() -> None:
    result = runner.invoke(app, ["run", "--list-params"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "required" in lines["entities_uri"]
    assert "default 'ranker_v1'" in lines["feature_service"]
    undocumented = [p.name for p in pipeline_parameters().values() if not p.help]
    assert not undocumented, "every parameter's meaning comes from the pipeline's docstring"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-p", "epochs=1"], "entities_uri"),
        (["-p", "epoch=1"], "epoch"),
    ],
)
def test_run_refuses_missing_or_unknown_parameters_before_starting(
    args: list[str], named: str
) -> None:
    result = runner.invoke(app, ["run", "--local", *args])
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output


def test_experiment_ends_with_the_decision_and_refuses_too_few_listeners(
    tmp_path: Path, splits: dict[str, Path], dataset_dir: Path, experiment_pair: tuple[Path, Path]
) -> None:
    champion, challenger = experiment_pair
    common = [
        "experiment",
        "--test",
        str(splits["test"]),
        "--ground-truth",
        str(dataset_dir),
        "--champion",
        str(champion),
        "--challenger",
        str(challenger),
    ]
    result = runner.invoke(
        app,
        [
            *common,
            "--pre-period",
            str(splits["train"]),
            "--minimum-detectable-effect",
            "0.5",
            "--report-dir",
            str(tmp_path),
            "--json",
        ],
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == (0 if outcome["decision"] == "ship" else 1), result.output
    assert outcome["interleaving_preference"] > 0
    assert (tmp_path / "experiment.html").is_file() and (tmp_path / "experiment.json").is_file()
    refused = runner.invoke(app, common)
    assert refused.exit_code == 2 and "sessions" in refused.output
