"""The generated expectation suites, in Great Expectations 1.x expectation objects.

Nothing here is hand-listed per column: types and nullability come from the feature service's
schema (the feature contract) and the entity schema (:mod:`searchrank.core.schema`), ranges and
value sets from the features' domains (Feast tags) or, failing those, from a profile of the
reference dataset, and the ranking rules from :class:`ValidationConfig`. Every invariant a
search log and its features must hold is an error, whether or not a reference is given; only
what may legitimately vary (drift, a new category, a value beyond the reference's range) warns.

Expectations are all column aggregates (minimum, maximum, share of non-null values, distinct
values), except one uniqueness check: on a million rows an aggregate costs milliseconds where a
row-by-row expectation costs about a second. Row-level rules are therefore checked on small
derived tables, still by Great Expectations, each expectation naming the training-set column it
is about:

- ``schema``: one row naming the Arrow type of every column of the file.
- ``training_set``: the data as fetched.
- ``searches``: one row per search: candidates, repeated items, whether any was positive, its
  positions (first, skipped, repeated), in how many blocks its rows lie, and how many users,
  queries and event times it has (one each).
- ``row_counts``: one row: per column, how many rows break a row-level rule: non-finite
  numbers, fractions in an integer feature, a view's values without its feature timestamp.
- ``feature_time``: per row and feature view, seconds from the event to the feature's own
  timestamp; any value above zero is leakage.
- ``drift``: one row, the population stability index of each feature against the reference.

A column of the wrong Arrow type (text for a number, a naive or non-UTC timestamp) gets its
``type`` error and nothing else: every later rule skips it (:func:`typed_columns`), since
comparing it would fail or mean nothing. Aggregate bounds skip an optional column without a single
value: its null rate is the rule that speaks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
from searchrank.core.contract import ContractColumn, Role

E = gx.expectations
ERROR, WARNING = FailureSeverity.CRITICAL, FailureSeverity.WARNING
SCHEMA, TRAINING_SET, SEARCHES = "schema", "training_set", "searches"
ROW_COUNTS, FEATURE_TIME, DRIFT = "row_counts", "feature_time", "drift"
INTEGER_TYPES = frozenset({"Int64", "Int32"})
TIMESTAMP_TYPE = "UnixTimestamp"


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


def _at_most(rule: str, column: str, limit: float, description: str, reported: str) -> Expectation:
    """An error when a derived column's largest value exceeds ``limit``."""
    return _expect(
        E.ExpectColumnMaxToBeBetween,
        rule,
        column,
        ERROR,
        description,
        reported=reported,
        max_value=limit,
    )


def _is_numeric(dtype: Any) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _is_float(dtype: Any) -> bool:
    return pd.api.types.is_float_dtype(dtype)


def _has_values(values: pd.Series) -> bool:
    """Whether a column holds at least one value: the minimum or maximum of an all-null column
    is no value at all, and Great Expectations fails any bound on it."""
    return bool(values.notna().any())


@dataclass(frozen=True)
class Batch:
    """One table and the expectations Great Expectations checks on it."""

    name: str
    frame: pd.DataFrame
    expectations: list[Expectation]


@dataclass(frozen=True)
class Horizon:
    """The latest moment any timestamp of a training set may carry.

    It is the set's recorded build time (``fetch_features`` writes it into the file, see
    :data:`searchrank.core.schema.BUILT_AT`) when there is one and it is not in the future;
    otherwise the moment the validation began: nothing in a log can have happened after either.

    Attributes:
        moment: the bound, timezone-aware.
        recorded: True when it is the recorded build time, False when the validation's own now.
    """

    moment: datetime
    recorded: bool

    @classmethod
    def of(cls, built: datetime | None, now: datetime) -> Horizon:
        if built is not None and built <= now:
            return cls(built, True)
        return cls(now, False)

    def describe(self) -> str:
        when = "the set was built" if self.recorded else "this validation began"
        return f"{when} ({self.moment.isoformat()})"


def accepted_types(specs: list[ContractColumn]) -> dict[str, tuple[str, ...]]:
    """The Arrow type names each entity and contract column may have (empty: not checked)."""
    return {**ENTITY_TYPES, **{s.column: ARROW_TYPES.get(s.dtype, ()) for s in specs}}


def typed_columns(schema: pa.Schema, specs: list[ContractColumn]) -> frozenset[str]:
    """The file's columns whose values later rules may read: those with an accepted Arrow type,
    and those without a type rule. A column of another type is reported by the ``type`` rule of
    :func:`schema_batch` alone."""
    accepted = accepted_types(specs)
    return frozenset(
        name
        for name in schema.names
        if not accepted.get(name) or str(schema.field(name).type) in accepted[name]
    )


def training_set_batch(
    frame: pd.DataFrame,
    specs: list[ContractColumn],
    config: ValidationConfig,
    profiles: dict[str, ColumnProfile],
    typed: frozenset[str],
    horizon: Horizon,
) -> Batch:
    """Expectations on the training set itself (column aggregates only)."""
    expected = [*S.ENTITY_COLUMNS, *(s.column for s in specs)]
    usable = set(frame.columns) & typed
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
    out += [_required(c) for c in S.ENTITY_COLUMNS if c in usable]
    if S.LABEL in usable:
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
    if S.POSITION in usable and _has_values(frame[S.POSITION]):
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
    if S.EVENT_TIMESTAMP in usable and _has_values(frame[S.EVENT_TIMESTAMP]):
        out += _window(config)
    timestamps = [S.EVENT_TIMESTAMP, *(s.column for s in specs if s.dtype == TIMESTAMP_TYPE)]
    out += [
        _expect(
            E.ExpectColumnMaxToBeBetween,
            "not_future",
            column,
            ERROR,
            f"no {column} lies after {horizon.describe()}",
            max_value=pd.Timestamp(horizon.moment),
        )
        for column in timestamps
        if column in usable
        and pd.api.types.is_datetime64_any_dtype(frame[column])
        and _has_values(frame[column])
    ]
    for spec in (s for s in specs if s.column in usable):
        out += _feature_expectations(spec, frame[spec.column], config, profiles.get(spec.column))
    return Batch(TRAINING_SET, frame, out)


def _window(config: ValidationConfig) -> list[Expectation]:
    """Event times inside the requested window ``[window_start, window_end)``."""
    out = []
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
    return out


def _feature_expectations(
    spec: ContractColumn, values: pd.Series, config: ValidationConfig, profile: ColumnProfile | None
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
    if spec.numeric and _is_numeric(values.dtype) and _has_values(values):
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
    missing values into floats and hide a string column behind ``object``. Timestamps must be
    in UTC: a naive one fails here, by name.
    """
    row = {name: [str(schema.field(name).type)] for name in schema.names}
    expectations = [
        _expect(
            E.ExpectColumnValuesToBeInSet,
            "type",
            column,
            ERROR,
            f"{column} has an Arrow type of {', '.join(types)}",
            value_set=list(types),
        )
        for column, types in accepted_types(specs).items()
        if column in row and types
    ]
    return Batch(SCHEMA, pd.DataFrame(row), expectations)


def searches_batch(frame: pd.DataFrame, config: ValidationConfig, typed: frozenset[str]) -> Batch:
    """One row per search: its list, its positions, its rows' blocks, its user, query and time.

    Only columns of the right type take part; without a usable ``search_id`` there is no table.
    """
    usable = set(frame.columns) & typed
    table: dict[str, pd.Series] = {}
    if S.SEARCH_ID in usable and len(frame):
        ids = frame[S.SEARCH_ID]
        by_search = frame.groupby(S.SEARCH_ID, sort=False)
        candidates = by_search.size()
        table["candidates"] = candidates
        # Rows of one search lie together (core.schema.search_bounds): one block each.
        raw = ids.to_numpy()
        starts = np.ones(len(raw), dtype=np.int64)
        starts[1:] = raw[1:] != raw[:-1]
        table["row_blocks"] = pd.Series(starts, index=frame.index).groupby(ids, sort=False).sum()
        if S.ITEM_ID in usable:
            table["repeated_items"] = candidates - by_search[S.ITEM_ID].nunique()
        if S.LABEL in usable:
            positive = (frame[S.LABEL] >= config.positive_label).groupby(ids, sort=False)
            table["has_positive"] = positive.any().astype(np.float64)
        if S.POSITION in usable:
            positions = by_search[S.POSITION].agg(["min", "max", "nunique"])
            table["first_position"] = positions["min"]
            table["skipped_positions"] = (
                positions["max"] - positions["min"] + 1 - positions["nunique"]
            )
            table["repeated_positions"] = candidates - positions["nunique"]
        for column, name in (
            (S.USER_ID, "mixed_users"),
            (S.QUERY, "mixed_queries"),
            (S.EVENT_TIMESTAMP, "mixed_event_times"),
        ):
            if column in usable:
                table[name] = _mixed(by_search, frame[column], ids)
    searches = pd.DataFrame(table).reset_index(drop=True)
    if searches.empty:
        return Batch(SEARCHES, searches, [])
    rules = {
        "candidates": [
            _expect(
                E.ExpectColumnMinToBeBetween,
                "list_length",
                "candidates",
                ERROR,
                f"every search has at least {config.min_list_length} candidates",
                reported=S.SEARCH_ID,
                min_value=config.min_list_length,
            ),
            _at_most(
                "list_length",
                "candidates",
                config.max_list_length,
                f"no search has more than {config.max_list_length} candidates",
                S.SEARCH_ID,
            ),
        ],
        "row_blocks": [
            _at_most(
                "contiguous",
                "row_blocks",
                1,
                "the rows of each search lie together (one block per search)",
                S.SEARCH_ID,
            )
        ],
        "repeated_items": [
            _at_most(
                "unique_pair",
                "repeated_items",
                0,
                "no (search_id, item_id) pair appears twice",
                S.ITEM_ID,
            )
        ],
        "has_positive": [
            _expect(
                E.ExpectColumnMeanToBeBetween,
                "positive_share",
                "has_positive",
                ERROR,
                f"at least {config.min_positive_share:.0%} of searches have a label "
                f">= {config.positive_label}",
                reported=S.LABEL,
                min_value=config.min_positive_share,
            )
        ],
        "first_position": [
            _at_most(
                "positions", "first_position", 0, "every search's positions start at 0", S.POSITION
            )
        ],
        "skipped_positions": [
            _at_most(
                "positions",
                "skipped_positions",
                0,
                "no search skips a position (positions run 0..n-1)",
                S.POSITION,
            )
        ],
        "repeated_positions": [
            _at_most(
                "positions",
                "repeated_positions",
                0,
                "no position appears twice within a search",
                S.POSITION,
            )
        ],
        "mixed_users": [
            _at_most(
                "one_search", "mixed_users", 0, "all rows of a search share one user", S.USER_ID
            )
        ],
        "mixed_queries": [
            _at_most(
                "one_search", "mixed_queries", 0, "all rows of a search share one query", S.QUERY
            )
        ],
        "mixed_event_times": [
            _at_most(
                "one_search",
                "mixed_event_times",
                0,
                "all rows of a search share one event time",
                S.EVENT_TIMESTAMP,
            )
        ],
    }
    expectations = [e for name in searches.columns for e in rules[str(name)]]
    return Batch(SEARCHES, searches, expectations)


def _mixed(by_search: Any, values: pd.Series, ids: pd.Series) -> pd.Series:
    """Per search: 1 when its rows hold more than one value (nulls aside), else 0.

    A smallest and a largest value per search cost a fraction of counting distinct values; text
    is compared by its codes.
    """
    if _is_numeric(values.dtype) or pd.api.types.is_datetime64_any_dtype(values.dtype):
        bounds = by_search[values.name].agg(["min", "max"])
    else:
        codes = pd.factorize(values, use_na_sentinel=True)[0]
        coded = pd.Series(np.where(codes < 0, np.nan, codes), index=values.index)
        bounds = coded.groupby(ids, sort=False).agg(["min", "max"])
    return (bounds["min"] != bounds["max"]).astype(np.int64).where(bounds["min"].notna(), 0)


def row_counts_batch(
    frame: pd.DataFrame, specs: list[ContractColumn], typed: frozenset[str]
) -> Batch:
    """One row counting, per column, the rows that break a row-level rule; every count must be 0.

    - ``finite``: a float feature holds no ±inf (NaN is a missing value, which the null-rate
      rules count); a reference's range would only warn about it, and a model cannot use it.
    - ``whole``: an integer feature that arrived as floating point (missing values make it so)
      holds whole numbers only.
    - ``stamped``: a row with any value of a feature view carries that view's feature timestamp,
      without which the leakage check cannot see it.
    """
    usable = set(frame.columns) & typed
    counts: dict[str, int] = {}
    expectations: list[Expectation] = []

    def count(rule: str, column: str, value: int, description: str) -> None:
        name = f"{rule}:{column}"
        counts[name] = value
        expectations.append(_at_most(rule, name, 0, description, column))

    numeric = [s for s in specs if s.numeric and s.column in usable]
    for spec in numeric:
        values = frame[spec.column]
        if not _is_float(values.dtype):
            continue
        array = values.to_numpy()
        count("finite", spec.column, int(np.isinf(array).sum()), f"{spec.column} is finite")
        if spec.dtype in INTEGER_TYPES:
            # NaN differs from its own truncation; ±inf does not (it is not finite instead).
            fractions = np.count_nonzero(np.trunc(array) != array) - np.count_nonzero(
                np.isnan(array)
            )
            count(
                "whole",
                spec.column,
                int(fractions),
                f"{spec.column} holds whole numbers ({spec.dtype})",
            )
    for audit in (s for s in specs if s.domain.audit and s.column in usable):
        unstamped = frame[audit.column].isna().to_numpy()
        features = [
            s.column
            for s in specs
            if s.view == audit.view and s.role == Role.FEATURE and s.column in frame.columns
        ]
        broken = 0
        if features and unstamped.any():
            valued = np.zeros(len(frame), dtype=bool)
            for column in features:
                valued |= frame[column].notna().to_numpy()
            broken = int(np.count_nonzero(valued & unstamped))
        count(
            "stamped",
            audit.column,
            broken,
            f"every row with a {audit.view} value carries {audit.column}",
        )
    return Batch(ROW_COUNTS, pd.DataFrame({k: [v] for k, v in counts.items()}), expectations)


def feature_time_batch(
    frame: pd.DataFrame, specs: list[ContractColumn], typed: frozenset[str]
) -> Batch:
    """Seconds from each row's event to each view's feature timestamp; positive means leakage."""
    usable = set(frame.columns) & typed
    audit = [s for s in specs if s.domain.audit and s.column in usable]
    leads = {}
    if S.EVENT_TIMESTAMP in usable:
        event = frame[S.EVENT_TIMESTAMP]
        for spec in audit:
            if pd.api.types.is_datetime64_any_dtype(frame[spec.column]):
                lead = (frame[spec.column] - event).dt.total_seconds()
                if _has_values(lead):
                    leads[spec.view] = lead
    expectations = [
        _at_most(
            "leakage",
            spec.view,
            0.0,
            f"no {spec.view} value is stamped after its row's event (no leakage)",
            spec.column,
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
