"""``validate_data``: a clean training set passes; each planted defect is caught by name.

No ``from __future__ import annotations`` here: KFP reads the test components' annotations.
"""

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input
from kfp_ops import file_artifact_op, file_dataset_op

from searchrank.components.fetch_features.logic import fetch_features
from searchrank.components.validate_data import validate_data_op
from searchrank.components.validate_data.config import ValidationConfig
from searchrank.components.validate_data.logic import ReportPaths, validate, validate_and_report
from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract, contract_beside
from searchrank.core.errors import InputError
from searchrank.core.names import COMPONENT_IMAGE, RANKER_FEATURE_SERVICE
from searchrank.features import tables as T
from searchrank.features.generator.config import GeneratorConfig
from searchrank.features.generator.generate import generate
from searchrank.features.store import apply_definitions, create_repo, open_store


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A training set cut in time: the earlier 45 % is the reference.

    Drift is measured over rows, but rows of one listener share their user features, so the
    population must be large enough for two periods to look alike: 1,500 listeners here (the
    session's small dataset has 300, and a few heavy listeners there sway a distribution).
    """
    folder = tmp_path_factory.mktemp("validate")
    generate(GeneratorConfig(searches=15_000, end_date=date(2026, 11, 1), seed=5), folder / "data")
    repo = create_repo(folder / "repo", folder / "data")
    apply_definitions(open_store(repo))
    full = folder / "training_set.parquet"
    fetch_features(folder / "data" / T.file_name(T.IMPRESSIONS), repo, RANKER_FEATURE_SERVICE, full)
    frame = pd.read_parquet(full)
    cut = frame[S.SEARCH_ID].quantile(0.45)
    reference, current = frame[frame[S.SEARCH_ID] <= cut], frame[frame[S.SEARCH_ID] > cut]
    paths = {"reference": folder / "reference.parquet", "current": folder / "current.parquet"}
    reference.to_parquet(paths["reference"], index=False)
    current.to_parquet(paths["current"], index=False)
    start = current[S.EVENT_TIMESTAMP].min().floor("h")
    end = current[S.EVENT_TIMESTAMP].max().ceil("h")
    config = ValidationConfig(window_start=start.to_pydatetime(), window_end=end.to_pydatetime())
    return {
        **paths,
        "contract_file": contract_beside(full),
        "contract": FeatureContract.load(contract_beside(full)),
        "frame": current.reset_index(drop=True),
        "config": config,
    }


def test_the_clean_training_set_passes(split: dict) -> None:
    report = validate(
        split["current"], split["contract"], split["config"], reference=split["reference"]
    )
    assert report.success, [f.message() for f in report.errors]
    assert report.rows == len(split["frame"]) and report.expectations > 200
    assert set(report.drift) >= {"item_stats__popularity", "user_stats__activity_bucket"}
    assert "item_catalogue__name" not in report.drift, "free text has no distribution to compare"
    assert all(score < split["config"].drift_error for score in report.drift.values())


def _null_some(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame.index[::97], column] = None
        return frame

    return plant


def _set(column: str, value: object, every: int = 53) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame.index[::every], column] = value
        return frame

    return plant


def _as_text(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: frame[column].astype(str)})


def _duplicate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[100:150]]).sort_values(
        [S.SEARCH_ID, S.POSITION], kind="stable"
    )


def _single_candidate_searches(frame: pd.DataFrame) -> pd.DataFrame:
    victims = frame[S.SEARCH_ID].unique()[:20]
    keep = ~frame[S.SEARCH_ID].isin(victims) | (frame[S.POSITION] == 0)
    return frame[keep]


def _leak(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    rows = frame.index[::211]
    frame.loc[rows, "user_stats__feature_timestamp"] = frame.loc[
        rows, S.EVENT_TIMESTAMP
    ] + pd.Timedelta(hours=5)
    return frame


def _outside_window(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[:40], S.EVENT_TIMESTAMP] -= pd.Timedelta(days=40)
    return frame


def _drift(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(item_stats__popularity=frame["item_stats__popularity"] * 0.4)


DEFECTS: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str, str]] = {
    "nulls in a required feature": (
        _null_some("item_catalogue__item_type"),
        "item_catalogue__item_type",
        "required",
    ),
    "values out of range": (
        _set("item_stats__popularity", 250.0),
        "item_stats__popularity",
        "range",
    ),
    "a wrong dtype": (_as_text("item_stats__ctr_7d"), "item_stats__ctr_7d", "type"),
    "an unknown label": (_set(S.LABEL, 7), S.LABEL, "label_grades"),
    "duplicated rows": (_duplicate_rows, S.ITEM_ID, "unique_pair"),
    "single-candidate searches": (_single_candidate_searches, S.SEARCH_ID, "list_length"),
    "a leaked feature": (_leak, "user_stats__feature_timestamp", "leakage"),
    "events outside the window": (_outside_window, S.EVENT_TIMESTAMP, "event_window"),
    "a drifted feature": (_drift, "item_stats__popularity", "drift"),
    "a missing column": (
        lambda f: f.drop(columns=["user_stats__market"]),
        "user_stats__market",
        "present",
    ),
    "an unknown category": (
        _set("item_catalogue__market", "XX"),
        "item_catalogue__market",
        "value_set",
    ),
    "too many missing values": (
        _set("query_stats__searches_7d", None, every=1),
        "query_stats__searches_7d",
        "null_rate",
    ),
    "too few positive searches": (lambda f: f.assign(label=np.int32(0)), S.LABEL, "positive_share"),
    "a negative count": (_set("user_stats__searches_7d", -3.0), "user_stats__searches_7d", "range"),
    # Beyond the reference's range, but impossible: errors, not "stays near the reference" warnings.
    "infinite values in 2 % of a count's rows": (
        _set("item_stats__impressions_7d", np.inf, every=50),
        "item_stats__impressions_7d",
        "finite",
    ),
    "events in 2099": (
        _set(S.EVENT_TIMESTAMP, pd.Timestamp("2099-06-01", tz="UTC"), every=1),
        S.EVENT_TIMESTAMP,
        "not_future",
    ),
    "timezone-naive event times": (
        lambda f: f.assign(**{S.EVENT_TIMESTAMP: f[S.EVENT_TIMESTAMP].dt.tz_localize(None)}),
        S.EVENT_TIMESTAMP,
        "type",
    ),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_planted_defect_is_caught_naming_the_column_and_the_rule(
    split: dict, tmp_path: Path, defect: str
) -> None:
    plant, column, rule = DEFECTS[defect]
    broken = tmp_path / "broken.parquet"
    plant(split["frame"]).to_parquet(broken, index=False)
    report = validate(broken, split["contract"], split["config"], reference=split["reference"])
    assert not report.success
    caught = [f for f in report.errors if f.column == column and f.rule == rule]
    assert caught, f"{defect} not caught; errors: {[f.message() for f in report.errors]}"
    assert column in caught[0].message() and rule in caught[0].message()


def test_an_empty_dataset_fails(split: dict, tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    split["frame"].iloc[:0].to_parquet(empty, index=False)
    report = validate(empty, split["contract"], split["config"])
    assert not report.success
    assert any(f.rule == "not_empty" for f in report.errors)


def test_reports_are_written_and_self_contained(split: dict, tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    _set(S.LABEL, 7)(split["frame"]).to_parquet(broken, index=False)
    paths = ReportPaths(
        tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.md", tmp_path / "docs"
    )
    report = validate_and_report(
        broken, split["contract"], split["config"], paths, reference=split["reference"]
    )
    page = paths.html.read_text()
    assert "Data validation FAILED" in page and "label_grades" in page
    assert "<svg" in page and "Great Expectations: " in page
    assert "<script" not in page and "<link" not in page
    assert "| label | label_grades |" in paths.markdown.read_text()
    assert (paths.docs_dir / "index.html").exists()
    assert '"success": false' in paths.result.read_text()
    assert report.failed()[0]["observed"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_list_length", 0),
        ("min_positive_share", 1.5),
        ("drift_warning", 0.5),
        ("positive_label", 9),
    ],
)
def test_bad_configuration_names_the_field(field: str, value: object) -> None:
    with pytest.raises(InputError, match=field):
        ValidationConfig(**{field: value})


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def _train_op(training_set: Input[Dataset], marker: str) -> None:
    from pathlib import Path

    Path(marker).write_text(training_set.path)


@dsl.pipeline(name="validate-then-train")
def _validate_then_train(
    source: str, contract_source: str, reference_source: str, marker: str
) -> None:
    data = file_dataset_op(source=source)
    checked = validate_data_op(
        training_set=data.outputs["data"],
        feature_contract=file_artifact_op(source=contract_source).outputs["artifact"],
        reference=reference_source,
    )
    _train_op(training_set=data.outputs["data"], marker=marker).after(checked)


def test_a_failed_validation_stops_the_pipeline_before_training(
    kfp_local: Path, split: dict, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.parquet"
    _set(S.LABEL, 7)(split["frame"]).to_parquet(broken, index=False)
    marker = tmp_path / "trained"
    with pytest.raises(RuntimeError, match="validate-data-op"):
        _validate_then_train(
            source=str(broken),
            contract_source=str(split["contract_file"]),
            reference_source=str(split["reference"]),
            marker=str(marker),
        )
    assert not marker.exists()
    summaries = list(kfp_local.rglob("summary"))
    assert summaries and "FAILED" in summaries[0].read_text()

    _validate_then_train(
        source=str(split["current"]),
        contract_source=str(split["contract_file"]),
        reference_source=str(split["reference"]),
        marker=str(marker),
    )
    assert marker.exists()
    passed = max(kfp_local.rglob("validate-data-op/result"), key=lambda p: p.stat().st_mtime)
    assert json.loads(passed.read_text())["drift"], "drift was checked against the reference"
