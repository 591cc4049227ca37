"""The data contract's invariants: one planted defect each, caught by name without a reference.

Each case breaks one invariant of a clean, freshly fetched training set (the session's dataset)
and checks that validation fails with an error naming the broken column and rule. The clean set
passes the same validation, so a rule that fired spuriously would fail these tests too. Broken
sets are written with the clean set's recorded build time (:data:`schema.BUILT_AT`), as
``fetch_features`` writes it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from searchrank.components.fetch_features.logic import fetch_features
from searchrank.components.validate_data.config import ValidationConfig
from searchrank.components.validate_data.logic import ValidationReport, validate, write_result
from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract, contract_beside
from searchrank.core.errors import InputError
from searchrank.core.names import RANKER_FEATURE_SERVICE
from searchrank.features import tables as T
from searchrank.pipelines.cli import app

Plant = Callable[[pd.DataFrame], pd.DataFrame]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path, feature_repo: Path) -> dict:
    folder = tmp_path_factory.mktemp("invariants")
    path = folder / "training_set.parquet"
    before = datetime.now(UTC)
    fetch_features(
        dataset_dir / T.file_name(T.IMPRESSIONS), feature_repo, RANKER_FEATURE_SERVICE, path
    )
    after = datetime.now(UTC)
    schema = pq.read_schema(path)
    frame = pq.read_table(path).to_pandas()
    return {
        "path": path,
        "frame": frame,
        "contract": FeatureContract.load(contract_beside(path)),
        "built": S.built_at(schema),
        "before": before,
        "after": after,
    }


def _write(frame: pd.DataFrame, path: Path, built: datetime | None) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(S.with_built_at(table, built) if built else table, path)
    return path


def _errors(report: ValidationReport) -> list[str]:
    return [f.message() for f in report.errors]


def test_fetch_features_records_when_the_set_was_built(clean: dict) -> None:
    assert clean["built"] is not None
    assert clean["before"] <= clean["built"] <= clean["after"]
    # The contract stays about columns only: its hash does not see the build time.
    assert "built" not in contract_beside(clean["path"]).read_text()


def test_the_clean_set_passes_every_invariant_without_a_reference(clean: dict) -> None:
    report = validate(clean["path"], clean["contract"], ValidationConfig())
    assert report.success, _errors(report)
    assert not report.warnings, [f.message() for f in report.warnings]
    assert report.latest_time.startswith("the set was built")
    assert report.latest_time.endswith(f"({clean['built'].isoformat()})")


# ---- planting one defect ----------------------------------------------------------------------

FIRST, SECOND = 0, 1
"""Indexes (in order of appearance) of the searches a plant breaks."""


def _search_rows(frame: pd.DataFrame, k: int) -> pd.Index:
    ids = frame[S.SEARCH_ID].unique()
    return frame.index[frame[S.SEARCH_ID] == ids[k]]


def _set(column: str, value: object, every: int = 50) -> Plant:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame.index[::every], column] = value
        return frame

    return plant


def _set_in_search(column: str, value: Callable[[pd.Series], object], k: int = FIRST) -> Plant:
    """Set ``column`` in every row of one search to ``value(its rows' column)``."""

    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        rows = _search_rows(frame, k)
        frame.loc[rows, column] = value(frame.loc[rows, column])
        return frame

    return plant


def _set_one_row(column: str, value: Callable[[pd.DataFrame, pd.Index], object]) -> Plant:
    """Change ``column`` in the second row of the first search (which has others)."""

    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        rows = _search_rows(frame, FIRST)
        frame.loc[rows[1], column] = value(frame, rows)
        return frame

    return plant


def _retype(column: str, convert: Callable[[pd.Series], pd.Series]) -> Plant:
    return lambda frame: frame.assign(**{column: convert(frame[column])})


def _skip_a_position(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    rows = _search_rows(frame, FIRST)
    frame.loc[rows[-1], S.POSITION] += 1
    return frame


def _split_a_search(frame: pd.DataFrame) -> pd.DataFrame:
    rows = _search_rows(frame, FIRST)
    return pd.concat([frame.drop(rows[-1:]), frame.loc[rows[-1:]]])


def _unstamp(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    column = "item_stats__feature_timestamp"
    stamped = frame.index[frame[column].notna()][::40]
    frame.loc[stamped, column] = pd.NaT
    return frame


def _after_the_build(frame: pd.DataFrame, built: datetime) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[_search_rows(frame, SECOND), S.EVENT_TIMESTAMP] = pd.Timestamp(built) + pd.Timedelta(
        minutes=1
    )
    return frame


def _null_in_search(column: str) -> Plant:
    """Null ``column`` in one search, keeping its integer type (pandas' nullable integers)."""

    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.assign(**{column: frame[column].astype("Int64")})
        frame.loc[_search_rows(frame, FIRST), column] = pd.NA
        return frame

    return plant


def _in_2099(values: pd.Series) -> pd.Timestamp:
    return pd.Timestamp("2099-01-01", tz="UTC")


INF_EVERY = 50
"""±inf in 2 % of a feature's rows."""

DEFECTS: dict[str, tuple[Plant, str, str]] = {
    # numbers
    "+inf in a count": (
        _set("item_stats__impressions_7d", np.inf, INF_EVERY),
        "item_stats__impressions_7d",
        "finite",
    ),
    "-inf in a share": (
        _set("user_stats__podcast_share_30d", -np.inf, INF_EVERY),
        "user_stats__podcast_share_30d",
        "finite",
    ),
    "+inf in an unbounded float": (
        _set("user_stats__account_age_days", np.inf, INF_EVERY),
        "user_stats__account_age_days",
        "finite",
    ),
    "a fraction in an integer feature": (
        _set("user_stats__searches_7d", 2.5),
        "user_stats__searches_7d",
        "whole",
    ),
    "a negative duration": (
        _set("item_catalogue__duration_s", -10),
        "item_catalogue__duration_s",
        "range",
    ),
    "a text match above 1": (
        _set("query_item_match__name_exact", 1.5),
        "query_item_match__name_exact",
        "range",
    ),
    # labels and positions
    "a negative label": (_set(S.LABEL, -1), S.LABEL, "label_grades"),
    "a negative position": (_set(S.POSITION, -1), S.POSITION, "range"),
    "positions that start at 1": (
        _set_in_search(S.POSITION, lambda p: p + 1),
        S.POSITION,
        "positions",
    ),
    "a skipped position": (_skip_a_position, S.POSITION, "positions"),
    "a repeated position": (
        _set_one_row(S.POSITION, lambda f, rows: f.loc[rows[0], S.POSITION]),
        S.POSITION,
        "positions",
    ),
    # searches
    "a search split in two blocks": (_split_a_search, S.SEARCH_ID, "contiguous"),
    "two users in one search": (
        _set_one_row(S.USER_ID, lambda f, rows: f.loc[rows[0], S.USER_ID] + 1),
        S.USER_ID,
        "one_search",
    ),
    "two queries in one search": (
        _set_one_row(S.QUERY, lambda f, rows: f.loc[rows[0], S.QUERY] + " live"),
        S.QUERY,
        "one_search",
    ),
    "two event times in one search": (
        _set_one_row(
            S.EVENT_TIMESTAMP,
            lambda f, rows: f.loc[rows[0], S.EVENT_TIMESTAMP] - pd.Timedelta(1, "s"),
        ),
        S.EVENT_TIMESTAMP,
        "one_search",
    ),
    "a missing user": (_null_in_search(S.USER_ID), S.USER_ID, "required"),
    # times
    "events in 2099": (
        _set_in_search(S.EVENT_TIMESTAMP, _in_2099),
        S.EVENT_TIMESTAMP,
        "not_future",
    ),
    "a feature stamped in 2099": (
        _set_in_search("user_stats__feature_timestamp", _in_2099),
        "user_stats__feature_timestamp",
        "not_future",
    ),
    "a view's values without its timestamp": (
        _unstamp,
        "item_stats__feature_timestamp",
        "stamped",
    ),
    # types: each is reported by name, and no later rule trips over it
    "timezone-naive event times": (
        _retype(S.EVENT_TIMESTAMP, lambda t: t.dt.tz_localize(None)),
        S.EVENT_TIMESTAMP,
        "type",
    ),
    "event times in another time zone": (
        _retype(S.EVENT_TIMESTAMP, lambda t: t.dt.tz_convert("Europe/Stockholm")),
        S.EVENT_TIMESTAMP,
        "type",
    ),
    "timezone-naive feature times": (
        _retype("user_stats__feature_timestamp", lambda t: t.dt.tz_localize(None)),
        "user_stats__feature_timestamp",
        "type",
    ),
    "event times as text": (
        _retype(S.EVENT_TIMESTAMP, lambda t: t.astype(str)),
        S.EVENT_TIMESTAMP,
        "type",
    ),
    "labels as text": (_retype(S.LABEL, lambda v: v.astype(str)), S.LABEL, "type"),
    "positions as floats": (
        _retype(S.POSITION, lambda v: v.astype(np.float64)),
        S.POSITION,
        "type",
    ),
    "search ids as text": (
        _retype(S.SEARCH_ID, lambda v: "s" + v.astype(str)),
        S.SEARCH_ID,
        "type",
    ),
    "a count as text": (
        _retype("item_stats__clicks_7d", lambda v: v.map(lambda x: f"{x} clicks")),
        "item_stats__clicks_7d",
        "type",
    ),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_planted_defect_fails_naming_the_column_and_the_rule(
    clean: dict, tmp_path: Path, defect: str
) -> None:
    plant, column, rule = DEFECTS[defect]
    broken = _write(plant(clean["frame"]), tmp_path / "broken.parquet", clean["built"])
    report = validate(broken, clean["contract"], ValidationConfig())
    assert not report.success
    caught = [f for f in report.errors if f.column == column and f.rule == rule]
    assert caught, f"{defect} not caught; errors: {_errors(report)}"
    assert column in caught[0].message() and rule in caught[0].message()
    if rule == "type":
        # The type error speaks for the column; no rule reads its values.
        assert {f.rule for f in report.errors if f.column == column} == {"type"}


def test_an_event_after_the_recorded_build_time_fails_though_it_is_in_the_past(
    clean: dict, tmp_path: Path
) -> None:
    # A set recorded as built an hour after its last event (weeks ago): valid as it is.
    built = (clean["frame"][S.EVENT_TIMESTAMP].max() + pd.Timedelta(hours=1)).to_pydatetime()
    report = validate(
        _write(clean["frame"], tmp_path / "ok.parquet", built),
        clean["contract"],
        ValidationConfig(),
    )
    assert report.success, _errors(report)

    late = _after_the_build(clean["frame"], built)
    assert late[S.EVENT_TIMESTAMP].max() < datetime.now(UTC) - timedelta(days=1)
    broken = _write(late, tmp_path / "late.parquet", built)
    report = validate(broken, clean["contract"], ValidationConfig())
    caught = [f for f in report.errors if (f.column, f.rule) == (S.EVENT_TIMESTAMP, "not_future")]
    assert caught, _errors(report)
    assert "the set was built" in caught[0].description

    # Without a recorded build time the bound is the validation's own now, which it meets.
    unrecorded = _write(late, tmp_path / "unrecorded.parquet", None)
    report = validate(unrecorded, clean["contract"], ValidationConfig())
    assert report.success, _errors(report)
    assert report.latest_time.startswith("this validation began")


def test_a_build_time_in_the_future_is_not_trusted(clean: dict, tmp_path: Path) -> None:
    future = datetime.now(UTC) + timedelta(days=365 * 70)
    events = _set_in_search(
        S.EVENT_TIMESTAMP, lambda t: pd.Timestamp(future) - pd.Timedelta(days=1)
    )
    broken = _write(events(clean["frame"]), tmp_path / "broken.parquet", future)
    report = validate(broken, clean["contract"], ValidationConfig())
    assert report.latest_time.startswith("this validation began")
    assert any((f.column, f.rule) == (S.EVENT_TIMESTAMP, "not_future") for f in report.errors)


def test_an_unreadable_build_time_is_an_input_error(clean: dict, tmp_path: Path) -> None:
    table = pa.Table.from_pandas(clean["frame"], preserve_index=False)
    path = tmp_path / "odd.parquet"
    pq.write_table(table.replace_schema_metadata({S.BUILT_AT: "yesterday"}), path)
    with pytest.raises(InputError, match=S.BUILT_AT):
        validate(path, clean["contract"], ValidationConfig())


def test_repeated_column_names_are_an_input_error(clean: dict, tmp_path: Path) -> None:
    table = pa.Table.from_pandas(clean["frame"].iloc[:100], preserve_index=False)
    table = table.append_column(S.LABEL, table.column(S.LABEL))
    path = tmp_path / "twice.parquet"
    pq.write_table(table, path)
    with pytest.raises(InputError, match="repeated"):
        validate(path, clean["contract"], ValidationConfig())


def test_an_index_written_by_pandas_is_just_another_column(clean: dict, tmp_path: Path) -> None:
    path = tmp_path / "indexed.parquet"
    # pandas records search_id as the index; the file still has it as a column.
    clean["frame"].set_index(S.SEARCH_ID).to_parquet(path)
    report = validate(path, clean["contract"], ValidationConfig())
    assert report.success, _errors(report)


def test_non_finite_values_make_a_standard_json_result(clean: dict, tmp_path: Path) -> None:
    plant, _, _ = DEFECTS["+inf in a count"]
    broken = _write(plant(clean["frame"]), tmp_path / "broken.parquet", clean["built"])
    report = validate(broken, clean["contract"], ValidationConfig())
    write_result(report, tmp_path / "result.json")

    def reject(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    result = json.loads((tmp_path / "result.json").read_text(), parse_constant=reject)
    assert not result["success"]


@pytest.mark.parametrize(
    ("defect", "column", "rule"),
    [
        ("+inf in a count", "item_stats__impressions_7d", "finite"),
        ("timezone-naive event times", S.EVENT_TIMESTAMP, "type"),
    ],
)
def test_the_command_line_fails_a_planted_defect_by_name(
    clean: dict, tmp_path: Path, defect: str, column: str, rule: str
) -> None:
    plant, _, _ = DEFECTS[defect]
    broken = _write(plant(clean["frame"]), tmp_path / "broken.parquet", clean["built"])
    shutil.copyfile(contract_beside(clean["path"]), contract_beside(broken))
    result = CliRunner().invoke(app, ["validate", "--data", str(broken), "--json"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    failed = json.loads(result.output.strip().splitlines()[-1])["failed"]
    assert {"column": column, "rule": rule} in [
        {"column": f["column"], "rule": f["rule"]} for f in failed
    ]
