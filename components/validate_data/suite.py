"""The generated expectation suites, in Great Expectations 1.x expectation objects.

Nothing here is hand-listed per column: types and nullability come from the feature service's
schema, ranges and value sets from the features' domains (Feast tags) or, failing those, from a
profile of the reference dataset, and the ranking rules from :class:`ValidationConfig`.

Expectations are all column aggregates (minimum, maximum, share of non-null values, distinct
values), except one uniqueness check: on a million rows an aggregate costs milliseconds where a
row-by-row expectation costs about a second. Row-level rules are therefore checked on small
derived tables (one row per search; one lead time per feature view and row), still by Great
Expectations:

- ``schema``: one row naming the Arrow type of every column of the file.
- ``training_set``: the data as fetched.
- ``searches``: one row per search: candidates, repeated items, whether any was positive.
- ``feature_time``: per row and feature view, seconds from the event to the feature's own
  timestamp; any value above zero is leakage.
- ``drift``: one row, the population stability index of each feature against the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import great_expectations as gx
import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metadata_types import FailureSeverity

from searchrank.components.validate_data.config import ValidationConfig
from searchrank.components.validate_data.profiles import (
    ARROW_TYPES,
    ENTITY_TYPES,
    ColumnProfile,
    population_stability,
    sample,
)
from searchrank.core import schema as S
from searchrank.core.contract import ContractColumn

E = gx.expectations
ERROR, WARNING = FailureSeverity.CRITICAL, FailureSeverity.WARNING
SCHEMA, TRAINING_SET, SEARCHES = "schema", "training_set", "searches"
FEATURE_TIME, DRIFT = "feature_time", "drift"


def _expect(
    kind: type[Expectation],
    rule: str,
    column: str | None,
    severity: FailureSeverity,
    description: str,
    reported: str | None = None,
    **kwargs: Any,
) -> Expectation:
    """One expectation, tagged with the rule it checks and the training-set column it is about
    (``reported``, when the checked table is a derived one)."""
    meta = {"rule": rule, "column": reported or column or ""}
    if column is not None and "column" in kind.__fields__:
        kwargs["column"] = column
    return kind(severity=severity, meta=meta, description=description, **kwargs)


def _required(column: str) -> Expectation:
    # The share of non-null values is a column aggregate; ExpectColumnValuesToNotBeNull would
    # list offending rows, at about ten times the cost on a million rows.
    return _expect(
        E.ExpectColumnProportionOfNonNullValuesToBeBetween,
        "required",
        column,
        ERROR,
        f"{column} is never missing",
        min_value=1.0,
    )


def _is_numeric(dtype: Any) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


@dataclass(frozen=True)
class Batch:
    """One table and the expectations Great Expectations checks on it."""

    name: str
    frame: pd.DataFrame
    expectations: list[Expectation]


def training_set_batch(
    frame: pd.DataFrame,
    specs: list[ContractColumn],
    config: ValidationConfig,
    profiles: dict[str, ColumnProfile],
) -> Batch:
    """Expectations on the training set itself."""
    expected = [*S.ENTITY_COLUMNS, *(s.column for s in specs)]
    present = set(frame.columns)
    out = [
        _expect(
            E.ExpectTableRowCountToBeBetween,
            "not_empty",
            None,
            ERROR,
            "a training set has at least one row",
            min_value=1,
        ),
    ]
    out += [
        _expect(
            E.ExpectColumnToExist,
            "present",
            c,
            ERROR,
            f"column {c} is part of the training-set schema",
        )
        for c in expected
    ]
    out += [_required(c) for c in S.ENTITY_COLUMNS if c in present]
    if S.LABEL in present:
        out.append(
            _expect(
                E.ExpectColumnDistinctValuesToBeInSet,
                "label_grades",
                S.LABEL,
                ERROR,
                f"labels lie in the graded set {list(S.GRADES)}",
                value_set=list(S.GRADES),
            )
        )
    if S.POSITION in present:
        out.append(
            _expect(
                E.ExpectColumnMinToBeBetween,
                "range",
                S.POSITION,
                ERROR,
                "positions start at 0",
                min_value=0,
            )
        )
    if S.EVENT_TIMESTAMP in present:
        if config.window_start is not None:
            out.append(
                _expect(
                    E.ExpectColumnMinToBeBetween,
                    "event_window",
                    S.EVENT_TIMESTAMP,
                    ERROR,
                    f"events happen at or after {config.window_start.isoformat()}",
                    min_value=pd.Timestamp(config.window_start),
                )
            )
        if config.window_end is not None:
            latest = pd.Timestamp(config.window_end) - pd.Timedelta(microseconds=1)
            out.append(
                _expect(
                    E.ExpectColumnMaxToBeBetween,
                    "event_window",
                    S.EVENT_TIMESTAMP,
                    ERROR,
                    f"events happen before {config.window_end.isoformat()}",
                    max_value=latest,
                )
            )
    for spec in (s for s in specs if s.column in present):
        out += _feature_expectations(
            spec, frame[spec.column].dtype, config, profiles.get(spec.column)
        )
    return Batch(TRAINING_SET, frame, out)


def _feature_expectations(
    spec: ContractColumn, dtype: Any, config: ValidationConfig, profile: ColumnProfile | None
) -> list[Expectation]:
    column, domain = spec.column, spec.domain
    out = []
    if domain.required:
        out.append(_required(column))
    elif not domain.audit:
        limit = domain.max_null_rate if domain.max_null_rate is not None else config.max_null_rate
        out.append(
            _expect(
                E.ExpectColumnProportionOfNonNullValuesToBeBetween,
                "null_rate",
                column,
                ERROR,
                f"at most {limit:.0%} of {column} is missing",
                min_value=1.0 - limit,
            )
        )
    if spec.numeric and _is_numeric(dtype):
        low, high = domain.min, domain.max
        if low is not None:
            out.append(
                _expect(
                    E.ExpectColumnMinToBeBetween,
                    "range",
                    column,
                    ERROR,
                    f"{column} is at least {low:g}",
                    min_value=low,
                )
            )
        if high is not None:
            out.append(
                _expect(
                    E.ExpectColumnMaxToBeBetween,
                    "range",
                    column,
                    ERROR,
                    f"{column} is at most {high:g}",
                    max_value=high,
                )
            )
        if profile is not None and profile.low is not None and profile.high is not None:
            slack = config.reference_slack * max(
                profile.high - profile.low, abs(profile.high), 1e-9
            )
            if low is None:
                out.append(
                    _expect(
                        E.ExpectColumnMinToBeBetween,
                        "reference_range",
                        column,
                        WARNING,
                        f"{column} stays near the reference's minimum {profile.low:g}",
                        min_value=profile.low - slack,
                    )
                )
            if high is None:
                out.append(
                    _expect(
                        E.ExpectColumnMaxToBeBetween,
                        "reference_range",
                        column,
                        WARNING,
                        f"{column} stays near the reference's maximum {profile.high:g}",
                        max_value=profile.high + slack,
                    )
                )
    if domain.values is not None:
        out.append(
            _expect(
                E.ExpectColumnDistinctValuesToBeInSet,
                "value_set",
                column,
                ERROR,
                f"{column} takes one of {len(domain.values)} known values",
                value_set=list(domain.values),
            )
        )
    elif profile is not None and profile.categories and not domain.audit:
        out.append(
            _expect(
                E.ExpectColumnDistinctValuesToBeInSet,
                "reference_values",
                column,
                WARNING,
                f"{column} takes the values seen in the reference",
                value_set=list(profile.categories),
            )
        )
    return out


def schema_batch(schema: pa.Schema, specs: list[ContractColumn]) -> Batch:
    """One row naming each column's Arrow type, checked against the feature service's types.

    Types come from the file's schema, not from pandas, which would turn an integer column with
    missing values into floats and hide a string column behind ``object``.
    """
    row = {name: [str(schema.field(name).type)] for name in schema.names}
    accepted = {**ENTITY_TYPES, **{s.column: ARROW_TYPES.get(s.dtype, ()) for s in specs}}
    expectations = [
        _expect(
            E.ExpectColumnValuesToBeInSet,
            "type",
            column,
            ERROR,
            f"{column} has an Arrow type of {', '.join(types)}",
            value_set=list(types),
        )
        for column, types in accepted.items()
        if column in row and types
    ]
    return Batch(SCHEMA, pd.DataFrame(row), expectations)


def searches_batch(frame: pd.DataFrame, config: ValidationConfig) -> Batch:
    """One row per search: list length, repeated items, whether anything was positive."""
    if {S.SEARCH_ID, S.ITEM_ID, S.LABEL} <= set(frame.columns) and len(frame):
        by_search = frame.groupby(S.SEARCH_ID, sort=False)
        candidates = by_search.size()
        positive = (frame[S.LABEL] >= config.positive_label).groupby(frame[S.SEARCH_ID], sort=False)
        searches = pd.DataFrame(
            {
                "candidates": candidates,
                "repeated_items": candidates - by_search[S.ITEM_ID].nunique(),
                "has_positive": positive.any().astype(np.float64),
            }
        )
    else:
        searches = pd.DataFrame(
            {
                "candidates": pd.Series(dtype=np.int64),
                "repeated_items": pd.Series(dtype=np.int64),
                "has_positive": pd.Series(dtype=np.float64),
            }
        )
    expectations = [
        _expect(
            E.ExpectColumnMaxToBeBetween,
            "unique_pair",
            "repeated_items",
            ERROR,
            "no (search_id, item_id) pair appears twice",
            reported=S.ITEM_ID,
            max_value=0,
        ),
        _expect(
            E.ExpectColumnMinToBeBetween,
            "list_length",
            "candidates",
            ERROR,
            f"every search has at least {config.min_list_length} candidates",
            reported=S.SEARCH_ID,
            min_value=config.min_list_length,
        ),
        _expect(
            E.ExpectColumnMaxToBeBetween,
            "list_length",
            "candidates",
            ERROR,
            f"no search has more than {config.max_list_length} candidates",
            reported=S.SEARCH_ID,
            max_value=config.max_list_length,
        ),
        _expect(
            E.ExpectColumnMeanToBeBetween,
            "positive_share",
            "has_positive",
            ERROR,
            f"at least {config.min_positive_share:.0%} of searches have a label "
            f">= {config.positive_label}",
            reported=S.LABEL,
            min_value=config.min_positive_share,
        ),
    ]
    return Batch(SEARCHES, searches.reset_index(drop=True), expectations)


def feature_time_batch(frame: pd.DataFrame, specs: list[ContractColumn]) -> Batch:
    """Seconds from each row's event to each view's feature timestamp; positive means leakage."""
    audit = [s for s in specs if s.domain.audit and s.column in frame.columns]
    leads = {}
    if S.EVENT_TIMESTAMP in frame.columns:
        event = frame[S.EVENT_TIMESTAMP]
        for spec in audit:
            if pd.api.types.is_datetime64_any_dtype(frame[spec.column]):
                leads[spec.view] = (frame[spec.column] - event).dt.total_seconds()
    expectations = [
        _expect(
            E.ExpectColumnMaxToBeBetween,
            "leakage",
            spec.view,
            ERROR,
            f"no {spec.view} value is stamped after its row's event (no leakage)",
            reported=spec.column,
            max_value=0.0,
        )
        for spec in audit
        if spec.view in leads
    ]
    return Batch(FEATURE_TIME, pd.DataFrame(leads), expectations)


def drift_scores(
    frame: pd.DataFrame, profiles: dict[str, ColumnProfile], config: ValidationConfig
) -> dict[str, float]:
    """The PSI of every profiled feature, on a sample of ``config.drift_sample`` rows."""
    current = sample(frame, config.drift_sample, seed=1)
    return {
        column: population_stability(profile, current[column])
        for column, profile in profiles.items()
        if column in current.columns and profile.shares
    }


def drift_batch(scores: dict[str, float], config: ValidationConfig) -> Batch:
    """One row of PSI scores; a warning and an error threshold per feature."""
    out = []
    for column in scores:
        out.append(
            _expect(
                E.ExpectColumnMaxToBeBetween,
                "drift",
                column,
                WARNING,
                f"{column} has not shifted (PSI at most {config.drift_warning:g})",
                max_value=config.drift_warning,
            )
        )
        out.append(
            _expect(
                E.ExpectColumnMaxToBeBetween,
                "drift",
                column,
                ERROR,
                f"{column} has not shifted much (PSI at most {config.drift_error:g})",
                max_value=config.drift_error,
            )
        )
    return Batch(DRIFT, pd.DataFrame({c: [v] for c, v in scores.items()}), out)
