"""The search-event schema: the columns every stage after ``fetch_features`` reads and writes.

A training set is one parquet table with one row per (search, candidate) pair. Its leading columns
are fixed and listed in :data:`ENTITY_COLUMNS`; the feature columns follow, named as the Feast
feature service names them (``<feature view>__<feature>``). The same table without feature
columns is the *entity dataframe* that ``fetch_features`` takes as input.

The ranking-dataset format that the real-data adapters write is a subset of the same schema:
:data:`RANKING_REQUIRED_COLUMNS` plus float feature columns, with the other entity columns
optional. So one trainer reads the synthetic logs, LETOR files and the Last.fm adapter alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import IntEnum

import numpy as np
import pandas as pd
import pyarrow as pa

from searchrank.core.errors import InputError

SEARCH_ID = "search_id"
USER_ID = "user_id"
ITEM_ID = "item_id"
QUERY = "query"
EVENT_TIMESTAMP = "event_timestamp"
POSITION = "position"
LABEL = "label"

ENTITY_COLUMNS: tuple[str, ...] = (
    SEARCH_ID,
    USER_ID,
    ITEM_ID,
    QUERY,
    EVENT_TIMESTAMP,
    POSITION,
    LABEL,
)
"""The leading columns of every training set, in this order."""

JOIN_KEYS: tuple[str, ...] = (USER_ID, ITEM_ID, QUERY)
"""The Feast entity join keys present in an entity dataframe."""

TRUE_GRADE = "true_grade"
"""Evaluation only: the label an item would earn on average once looked at, free of position
bias (known for simulated data alone, from the generator's ground truth). Never a model input:
:func:`feature_columns` leaves it out wherever it appears."""
HIDDEN_RELEVANCE = "relevance"
"""Evaluation only: the simulator's hidden relevance score that drew an impression's label."""
SAVE_SCALE = "save_scale"
"""Evaluation only: how readily the simulated listener saves what they stream."""
EVALUATION_ONLY_COLUMNS: tuple[str, ...] = (TRUE_GRADE, HIDDEN_RELEVANCE, SAVE_SCALE)
"""The generator's ground truth (``ground_truth.parquet``): never model inputs."""

QUERY_TEXT = "query_text"
"""The request-time copy of :data:`QUERY` that on-demand features read.

Feast treats a column named in a request source as request data and no longer as a join key,
so the query text cannot be both the ``query`` entity key and the text-match input. Callers of
Feast add this column (a copy of ``query``) to entity rows; it never appears in a training set.
"""

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

ENTITY_SCHEMA = pa.schema(
    [
        pa.field(SEARCH_ID, pa.int64(), nullable=False),
        pa.field(USER_ID, pa.int64(), nullable=False),
        pa.field(ITEM_ID, pa.int64(), nullable=False),
        pa.field(QUERY, pa.string(), nullable=False),
        pa.field(EVENT_TIMESTAMP, TIMESTAMP_TYPE, nullable=False),
        pa.field(POSITION, pa.int32(), nullable=False),
        pa.field(LABEL, pa.int32(), nullable=False),
    ]
)
"""Arrow types of :data:`ENTITY_COLUMNS` as the generator and ``fetch_features`` write them."""

FEATURE_TIMESTAMP = "feature_timestamp"
"""Every batch feature view carries, as a feature, the time its values became valid. In a training
set it appears as ``<view>__feature_timestamp``: bookkeeping for the leakage check (it must never
lie after the row's event time), never a model input."""
AUDIT_SUFFIX = f"__{FEATURE_TIMESTAMP}"

BUILT_AT = "searchrank.built_at"
"""The parquet key-value metadata key under which ``fetch_features`` records when it built a
training set: ISO 8601 in UTC, the moment ``fetch_features`` began. No timestamp of the set
(event or feature) may lie after it. The feature contract does not carry it, so that the
contract's ``schema_hash`` keeps describing columns only."""

RANKING_REQUIRED_COLUMNS: tuple[str, ...] = (SEARCH_ID, ITEM_ID, LABEL)
"""Columns every ranking dataset has; rows of one search are contiguous (:func:`search_bounds`)."""


class Grade(IntEnum):
    """Graded relevance labels from the click model of a streaming service's search."""

    SKIP = 0
    """Shown, not clicked."""
    CLICK = 1
    """Clicked, but streamed for less than 30 seconds."""
    STREAM = 2
    """Streamed for at least 30 seconds (the royalty-bearing play)."""
    SAVE = 3
    """Saved to the library or added to a playlist."""


GRADES: tuple[int, ...] = tuple(int(g) for g in Grade)


def feature_columns(columns: list[str]) -> list[str]:
    """The columns of a training set after the entity columns, audit columns included, and
    without the evaluation-only ground truth (:data:`EVALUATION_ONLY_COLUMNS`)."""
    return [c for c in columns if c not in ENTITY_COLUMNS and c not in EVALUATION_ONLY_COLUMNS]


def model_feature_columns(columns: list[str]) -> list[str]:
    """The feature columns a model may read: without the ``__feature_timestamp`` audit columns."""
    return [c for c in feature_columns(columns) if not c.endswith(AUDIT_SUFFIX)]


def check_entity_schema(schema: pa.Schema, *, where: str) -> None:
    """Check that a table can serve as an entity dataframe for point-in-time joins.

    Args:
        schema: the Arrow schema of the candidate entity dataframe.
        where: a name for the input in error messages (for example a file path).

    Raises:
        InputError: a join key or the event timestamp is missing, or the timestamp is naive or
            not a timestamp at all.
    """
    missing = [c for c in ENTITY_COLUMNS if c not in schema.names]
    if missing:
        raise InputError(
            f"{where} columns",
            list(schema.names),
            f"an entity dataframe needs the columns {list(ENTITY_COLUMNS)}; missing {missing}",
        )
    ts_type = schema.field(EVENT_TIMESTAMP).type
    if not pa.types.is_timestamp(ts_type):
        raise InputError(
            f"{where} column {EVENT_TIMESTAMP!r}",
            str(ts_type),
            "event timestamps must be an Arrow/pandas timestamp type",
        )
    if ts_type.tz is None:
        raise InputError(
            f"{where} column {EVENT_TIMESTAMP!r}",
            str(ts_type),
            "event timestamps must be timezone-aware (UTC); naive timestamps are ambiguous "
            "in a point-in-time join",
        )


def search_bounds(
    search_ids: np.ndarray,
    *,
    field: str = SEARCH_ID,
    where: Callable[[int], str] | None = None,
) -> np.ndarray:
    """Where each search's rows begin and end, checking that they are contiguous.

    Every ranking dataset keeps the rows of one search together, in any order of searches:
    metrics, slates and LightGBM's group sizes all cut the rows into searches at the places
    where the id changes, so a search whose rows are split in two would count twice.

    Args:
        search_ids: (n,) the search (query) id of every row.
        field: the name of the ids in error messages, e.g. ``"groups"``.
        where: optional, the name of row i's place in the input (``"rank.txt:12"``); an error
            then names the offending row's place instead of ``field``.

    Returns:
        (Q + 1,) int64 row offsets, searches in order of first appearance: search j's rows are
        ``bounds[j]:bounds[j + 1]``. Without rows, ``[0]``.

    Raises:
        InputError: an id is null, or an id comes back after another search's rows.
    """
    ids = np.asarray(search_ids)
    null = np.flatnonzero(pd.isna(ids))
    if len(null):
        row = int(null[0])
        raise InputError(where(row) if where else field, ids[row], "search ids must not be null")
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, int)
    repeated = np.flatnonzero(pd.Index(ids[starts]).duplicated())
    if len(repeated):
        row = int(starts[repeated[0]])
        raise InputError(
            where(row) if where else field,
            ids[row],
            "the rows of one search must be contiguous; this id comes back after another "
            "search's rows (sort or group the rows by search first)",
        )
    return np.append(starts, len(ids)).astype(np.int64)


def parse_time(field: str, value: str) -> datetime | None:
    """A moment given as text (a step parameter, a command-line option), in UTC: empty means
    none (unbounded, or now, as the field says), anything else ISO 8601 with a time zone.

    Raises:
        InputError: not ISO 8601, or without a time zone.
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise InputError(
            field, value, "must be an ISO 8601 time such as 2026-11-01T00:00:00+00:00"
        ) from error
    if moment.tzinfo is None:
        raise InputError(field, value, "must carry a time zone (for example +00:00)")
    return moment.astimezone(UTC)


def with_built_at(table: pa.Table, moment: datetime) -> pa.Table:
    """``table`` with its build time (timezone-aware) recorded as :data:`BUILT_AT` metadata."""
    if moment.tzinfo is None:
        raise InputError("built_at", moment.isoformat(), "must carry a time zone (UTC)")
    metadata = dict(table.schema.metadata or {})
    metadata[BUILT_AT.encode()] = moment.astimezone(UTC).isoformat().encode()
    return table.replace_schema_metadata(metadata)


def built_at(schema: pa.Schema) -> datetime | None:
    """When the training set with this (file) schema was built, or None when not recorded
    (files written by other tools, or rewritten through pandas, which drops the metadata).

    Raises:
        InputError: the recorded value is not an ISO 8601 time with a time zone.
    """
    raw = (schema.metadata or {}).get(BUILT_AT.encode())
    if raw is None:
        return None
    return parse_time(f"parquet metadata {BUILT_AT!r}", raw.decode(errors="replace"))
