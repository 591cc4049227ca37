"""Point-in-time-correct training sets from an entity dataframe and a Feast feature service.

The entity dataframe lists (search, candidate) pairs with their event time and label; the
result adds, for every row, each feature's latest value at or before the event time (within the
feature view's TTL), named as the feature service names it. Every entity row comes out exactly
once and in input order, whatever keys and timestamps it shares with other rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract, contract_beside
from searchrank.core.errors import InputError
from searchrank.core.io import write_parquet_atomically
from searchrank.core.names import MetadataKey

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class FetchSummary:
    """What ``fetch_features`` wrote, for artifact metadata and the run report."""

    rows: int
    columns: list[str]
    feature_service: str
    schema_hash: str
    feature_columns: list[str]
    event_time_min: str | None
    event_time_max: str | None
    rows_with_missing_features: int
    missing_by_feature: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The artifact metadata: scalars for the KFP UI plus the per-feature null counts."""
        return {
            MetadataKey.ROWS: self.rows,
            MetadataKey.COLUMNS: len(self.columns),
            MetadataKey.EVENT_TIME_MIN: self.event_time_min or "",
            MetadataKey.EVENT_TIME_MAX: self.event_time_max or "",
            MetadataKey.ROWS_WITH_MISSING_FEATURES: self.rows_with_missing_features,
            "missing_by_feature": self.missing_by_feature,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """A short summary for the KFP UI."""
        lines = [
            f"### Training set from feature service `{self.feature_service}` "
            f"(schema {self.schema_hash})",
            "",
            f"- rows: **{self.rows:,}**, feature columns: **{len(self.feature_columns)}**",
            f"- event time: {self.event_time_min} to {self.event_time_max}",
            f"- rows with at least one missing feature: **{self.rows_with_missing_features:,}**",
        ]
        if self.missing_by_feature:
            lines += ["", "| feature | missing | share |", "| --- | ---: | ---: |"]
            for name, count in sorted(self.missing_by_feature.items(), key=lambda kv: -kv[1]):
                lines.append(f"| {name} | {count:,} | {count / max(self.rows, 1):.1%} |")
        return "\n".join(lines) + "\n"


def check_entities(path: Path) -> int:
    """Check an entity dataframe file (parquet) without reading its rows.

    Returns:
        The number of entity rows.

    Raises:
        InputError: the file is missing or unreadable, or lacks a join key, the event
            timestamp, or has naive timestamps.
    """
    if not path.is_file():
        raise InputError("entities", str(path), "must be an existing parquet file")
    try:
        metadata = pq.read_metadata(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(
            "entities", str(path), f"must be a readable parquet file ({error})"
        ) from error
    S.check_entity_schema(metadata.schema.to_arrow_schema(), where=str(path))
    return int(metadata.num_rows)


def entity_input(store: FeatureStore, path: Path) -> pd.DataFrame | str:
    """The entity rows in the form the store's offline store reads fastest.

    Feast takes an entity dataframe or a query in the offline store's own dialect. searchrank's
    offline stores (DuckDB and Ray alike: ``reads_entity_query`` in their configuration) read
    the parquet file through a DuckDB query, which skips two conversions of every row between
    Arrow and pandas; other stores get a pandas frame. Either way the rows carry
    :data:`~searchrank.core.schema.QUERY_TEXT` for the text-match features.
    """
    if getattr(store.config.offline_store, "reads_entity_query", False):
        columns = ", ".join(f'"{c}"' for c in S.ENTITY_COLUMNS)
        source = "'" + str(path.resolve()).replace("'", "''") + "'"
        return f'SELECT {columns}, "{S.QUERY}" AS "{S.QUERY_TEXT}" FROM read_parquet({source})'
    frame = pq.read_table(path, columns=list(S.ENTITY_COLUMNS)).to_pandas()
    frame[S.QUERY_TEXT] = frame[S.QUERY]
    return frame


def join_features(store: FeatureStore, entities_path: Path, contract: FeatureContract) -> pa.Table:
    """The training set: the entity rows with the contract's point-in-time features.

    Returns:
        A table with :data:`~searchrank.core.schema.ENTITY_COLUMNS` first, then the
        contract's columns in its order, one row per entity row, in entity order.
    """
    rows = check_entities(entities_path)
    joined = store.get_historical_features(
        entity_df=entity_input(store, entities_path),
        features=store.get_feature_service(contract.feature_service),
        full_feature_names=True,
    ).to_arrow()
    features = contract.names
    missing = [c for c in features if c not in joined.column_names]
    if missing:
        raise RuntimeError(f"the point-in-time join lacks the contract's columns {missing}")
    if joined.num_rows != rows:
        raise RuntimeError(
            f"the point-in-time join returned {joined.num_rows} rows for {rows} entity rows; "
            "the offline store must return every entity row exactly once"
        )
    training_set = joined.select([*S.ENTITY_COLUMNS, *features])
    schema = pa.schema([*S.ENTITY_SCHEMA, *(training_set.schema.field(f) for f in features)])
    return training_set.cast(schema)


def summarize(training_set: pa.Table, contract: FeatureContract) -> FetchSummary:
    """Row counts, time range and missing-feature counts of a training set."""
    features = [c for c in training_set.column_names if c not in S.ENTITY_COLUMNS]
    missing = {c: training_set.column(c).null_count for c in features}
    any_missing = pa.array([False] * training_set.num_rows)
    for column in features:
        any_missing = pc.or_(any_missing, pc.is_null(training_set.column(column)))
    ts = training_set.column(S.EVENT_TIMESTAMP)
    low, high = pc.min(ts).as_py(), pc.max(ts).as_py()
    return FetchSummary(
        rows=training_set.num_rows,
        columns=training_set.column_names,
        feature_service=contract.feature_service,
        schema_hash=contract.schema_hash,
        feature_columns=features,
        event_time_min=low.isoformat() if low else None,
        event_time_max=high.isoformat() if high else None,
        rows_with_missing_features=int(pc.sum(any_missing).as_py() or 0),
        missing_by_feature={k: v for k, v in missing.items() if v},
    )


def fetch_features(
    entities_path: Path,
    feature_repo: Path,
    feature_service: str,
    output_path: Path,
    contract_path: Path | None = None,
) -> FetchSummary:
    """Build the training set for ``entities_path`` and write it to ``output_path`` (parquet),
    with its feature contract beside it.

    The file records when it was built (:data:`~searchrank.core.schema.BUILT_AT` parquet
    metadata: the moment this call began, before the join), so that ``validate_data`` can
    reject any timestamp after it.

    Args:
        entities_path: parquet entity dataframe with the columns of ``ENTITY_COLUMNS``.
        feature_repo: a Feast repository folder (``feature_store.yaml``), already applied.
        feature_service: the name of a registered feature service, e.g. ``ranker_v1``.
        output_path: where the training set goes; written only when everything succeeded.
        contract_path: where the feature contract goes; by default beside ``output_path``
            (:func:`~searchrank.core.contract.contract_beside`).

    Raises:
        InputError: bad entities, unknown repository or feature service.
    """
    from searchrank.features.contract import resolve_contract
    from searchrank.features.store import check_connections, open_store

    built = datetime.now(UTC)
    check_entities(entities_path)
    store = open_store(feature_repo)
    check_connections(store, online=False)
    contract = resolve_contract(store, feature_service)
    training_set = join_features(store, entities_path, contract)
    write_parquet_atomically(S.with_built_at(training_set, built), output_path)
    contract.save(contract_path or contract_beside(output_path))
    return summarize(training_set, contract)
