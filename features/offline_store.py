"""A Feast offline store that does point-in-time joins as DuckDB ``ASOF JOIN`` s.

Feast's own DuckDB store expresses the point-in-time join as an inequality join followed by a
window de-duplication, through ibis; on a million entity rows it runs at about a quarter of the
speed of a hand-written ``ASOF JOIN`` and keys its de-duplication on the join keys and
timestamp, so entity rows that share both are multiplied. This store keeps Feast's definitions
and API (``FeatureStore.get_historical_features``, materialization, feature services, on-demand
views) and replaces only the query: every feature view becomes one ``ASOF LEFT JOIN`` on its
join keys and event time, TTLs are applied to the matched row, ties on (keys, timestamp) are
broken by the created timestamp, and every entity row comes out exactly once, in input order.

Configure it in ``feature_store.yaml``::

    offline_store:
      type: searchrank.features.offline_store.AsofDuckDBOfflineStore
      data_root: data          # where relative FileSource paths live (default: the repo);
                               # s3://bucket/prefix reads object storage (core/storage.py)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore
from feast.infra.offline_stores.file_source import FileSource, SavedDatasetFileStorage
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from pydantic import StrictStr

from searchrank.core import storage
from searchrank.core.errors import InputError

ROW_ID = "__searchrank_row"
"""A column added to the entity table so that each entity row is joined and returned once."""
EVENT_TIMESTAMP = "event_timestamp"


class AsofDuckDBOfflineStoreConfig(FeastConfigBaseModel):
    """Configuration of :class:`AsofDuckDBOfflineStore`.

    Attributes:
        data_root: folder or URI that relative ``FileSource`` paths resolve against; relative to
            the feature repository; the repository itself when not set.
        threads: DuckDB worker threads; DuckDB's default (all cores) when not set.
        memory_limit: DuckDB memory limit such as ``"4GB"``; DuckDB's default when not set.
    """

    type: StrictStr = "searchrank.features.offline_store.AsofDuckDBOfflineStore"
    reads_entity_query: ClassVar[bool] = True
    """Its ``entity_df`` may be a DuckDB query (see :func:`entity_table`)."""
    data_root: StrictStr | None = None
    threads: int | None = None
    memory_limit: StrictStr | None = None


@dataclass(frozen=True)
class ViewJoin:
    """How one feature view joins onto the entity table.

    Attributes:
        path: the resolved parquet path or URI of the view's batch source.
        keys: source column -> entity column, for each join key.
        timestamp: the source's event-time column.
        created: the source's created-time column, or "" when it has none.
        features: source column -> output column name, for each requested feature.
        ttl: how old a matched row may be, or None when it never expires.
    """

    path: str
    keys: dict[str, str]
    timestamp: str
    created: str
    features: dict[str, str]
    ttl: timedelta | None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _interval(ttl: timedelta) -> str:
    return f"INTERVAL {int(ttl.total_seconds() * 1_000_000)} MICROSECONDS"


def view_rows_sql(source: str, view: ViewJoin, window: tuple[datetime, datetime] | None) -> str:
    """SQL selecting the rows of one feature view that a point-in-time join can match.

    The columns are renamed to ``k0, k1, …`` (join keys), ``__ts`` (event time) and ``f0, f1, …``
    (features); among rows with the same keys and event time only the one created last is kept.

    Args:
        source: the SQL relation reading the view's data (see :func:`source_relation`).
        view: the feature view to read.
        window: (earliest, latest) entity event time, to skip source rows that cannot match.
    """
    view_ts = f"CAST({_quote(view.timestamp)} AS TIMESTAMPTZ)"
    filters = []
    if window is not None:
        filters.append(f"{view_ts} <= {_literal(window[1].isoformat())}::TIMESTAMPTZ")
        if view.ttl:
            earliest = window[0] - view.ttl
            filters.append(f"{view_ts} >= {_literal(earliest.isoformat())}::TIMESTAMPTZ")
    where = f" WHERE {' AND '.join(filters)}" if filters else ""
    dedupe = ""
    if view.created:
        partition = ", ".join([*(f"k{i}" for i in range(len(view.keys))), "__ts"])
        dedupe = (
            f" QUALIFY row_number() OVER (PARTITION BY {partition} "
            f"ORDER BY {_quote(view.created)} DESC NULLS LAST) = 1"
        )
    columns = [
        *(f"{_quote(src)} AS k{i}" for i, src in enumerate(view.keys)),
        f"{view_ts} AS __ts",
        *(f"{_quote(src)} AS f{i}" for i, src in enumerate(view.features)),
        *([_quote(view.created)] if view.created else []),
    ]
    return f"SELECT {', '.join(columns)} FROM {source}{where}{dedupe}"


def asof_join_sql(entity: str, rows: str, view: ViewJoin, event_timestamp: str) -> str:
    """SQL joining the prepared rows of one feature view point-in-time onto ``entity``.

    For each entity row, the matched feature row is the latest one whose event time is at or
    before the entity row's, among rows with the same join keys. A matched row older than the
    view's TTL yields nulls. The query returns :data:`ROW_ID` and the view's features, one row
    per entity row, ordered by :data:`ROW_ID`. Only the keys and the event time of the entity
    table are read, so each view's join stays narrow.

    Args:
        entity: the name of a registered table carrying :data:`ROW_ID`.
        rows: a relation with the columns of :func:`view_rows_sql` (a table name or a
            parenthesized query).
        view: the feature view joined.
        event_timestamp: the entity table's event-time column.
    """
    ts = _quote(event_timestamp)
    entity_columns = [_quote(ROW_ID), *(_quote(c) for c in view.keys.values()), ts]
    on = [f"e.{_quote(ent)} = v.k{i}" for i, ent in enumerate(view.keys.values())]
    on.append(f"e.{ts} >= v.__ts")
    fresh = f"v.__ts >= e.{ts} - {_interval(view.ttl)}" if view.ttl else None
    selected = [f"e.{_quote(ROW_ID)}"]
    for i, out in enumerate(view.features.values()):
        value = f"v.f{i}"
        selected.append(
            f"{f'CASE WHEN {fresh} THEN {value} END' if fresh else value} AS {_quote(out)}"
        )
    return (
        f"SELECT {', '.join(selected)} "
        f"FROM (SELECT {', '.join(entity_columns)} FROM {_quote(entity)}) e "
        f"ASOF LEFT JOIN {rows} v ON {' AND '.join(on)} ORDER BY e.{_quote(ROW_ID)}"
    )


def view_join_sql(
    entity: str,
    source: str,
    view: ViewJoin,
    event_timestamp: str,
    window: tuple[datetime, datetime] | None,
) -> str:
    """SQL joining one feature view point-in-time onto the table named ``entity``.

    :func:`view_rows_sql` then :func:`asof_join_sql`: the latest row at or before each entity
    row, among rows with its join keys; ties on (keys, event time) go to the row created last;
    a match older than the TTL yields nulls. One row per entity row, ordered by
    :data:`ROW_ID`.
    """
    rows = f"({view_rows_sql(source, view, window)})"
    return asof_join_sql(entity, rows, view, event_timestamp)


def point_in_time_join(
    con: duckdb.DuckDBPyConnection,
    entity: pa.Table,
    views: list[ViewJoin],
    event_timestamp: str,
) -> pa.Table:
    """The entity table (in its order) followed by every view's point-in-time features.

    Each view is joined on its own narrow query (see :func:`view_join_sql`); on a million entity
    rows that is about 40 % faster than chaining all ASOF joins in one query, which drags every
    entity column through every join.
    """
    numbered = entity.append_column(ROW_ID, pa.array(range(entity.num_rows), type=pa.int64()))
    con.register("entity_df", numbered)
    timestamps = entity.column(event_timestamp)
    window = None
    if entity.num_rows:
        window = (pc.min(timestamps).as_py(), pc.max(timestamps).as_py())
    names, columns = list(entity.column_names), list(entity.columns)
    for view in views:
        source = source_relation(con, view.path)
        sql = view_join_sql("entity_df", source, view, event_timestamp, window)
        part = con.sql(sql).to_arrow_table()
        if part.num_rows != entity.num_rows:
            raise RuntimeError(
                f"joining {view.path} returned {part.num_rows} rows for {entity.num_rows} entities"
            )
        names += part.column_names[1:]
        columns += part.columns[1:]
    return pa.Table.from_arrays(columns, names=names)


def resolve_path(config: RepoConfig, source: DataSource) -> str:
    """Where a ``FileSource``'s data lives, with relative paths resolved against the data root."""
    if not isinstance(source, FileSource):
        raise InputError(
            "feature view source",
            type(source).__name__,
            "AsofDuckDBOfflineStore reads FileSource (parquet) sources only",
        )
    path = source.path
    if urlparse(path).scheme or Path(path).is_absolute():
        return path
    root = getattr(config.offline_store, "data_root", None) or "."
    if urlparse(root).scheme:
        return f"{root.rstrip('/')}/{path}"
    return str((Path(config.repo_path or ".") / root / path).resolve())


def source_relation(con: duckdb.DuckDBPyConnection, path: str) -> str:
    """The SQL relation that reads the parquet data at ``path`` on the connection ``con``.

    Local files go to DuckDB's own ``read_parquet``, its fastest path. Object storage is read
    through :mod:`searchrank.core.storage` as an Arrow dataset registered with the
    connection: DuckDB's ``httpfs`` extension would be downloaded at run time, which a pod
    without egress cannot do. DuckDB pushes filters and projections down to the dataset, so a
    view's join still reads only its columns and time window.

    Raises:
        InputError: a remote path that cannot be read (see ``storage.require_readable``).
    """
    local = storage.local_path(path)
    if local is not None:
        return f"read_parquet({_literal(str(local))})"
    # Named by its path, so registering the same source twice on a connection is harmless.
    name = "source_" + hashlib.sha1(path.encode()).hexdigest()[:16]
    con.register(name, storage.parquet_dataset(path, field="FileSource path"))
    return _quote(name)


def _connect(config: RepoConfig) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    store = config.offline_store
    if getattr(store, "threads", None):
        con.execute(f"SET threads = {int(store.threads)}")
    if getattr(store, "memory_limit", None):
        con.execute(f"SET memory_limit = {_literal(store.memory_limit)}")
    return con


def view_join(config: RepoConfig, view: FeatureView, refs: list[str], full_names: bool) -> ViewJoin:
    """How ``view`` joins: its resolved source, key and feature columns (with Feast's field
    mapping and projection applied), and the names the requested features get in the result."""
    source = view.batch_source
    assert source is not None, f"feature view {view.name} has no batch source"
    prefix = view.projection.name_to_use()
    requested = [r.split(":", 1)[1] for r in refs if r.startswith(f"{prefix}:")]
    to_source = {feature: src for src, feature in source.field_mapping.items()}
    base = view.projection.name_alias or view.name
    join_key_map = view.projection.join_key_map or {}
    keys = {}
    for column in view.entity_columns:
        keys[to_source.get(column.name, column.name)] = join_key_map.get(column.name, column.name)
    features = {to_source.get(f, f): (f"{base}__{f}" if full_names else f) for f in requested}
    return ViewJoin(
        path=resolve_path(config, source),
        keys=keys,
        timestamp=source.timestamp_field,
        created=source.created_timestamp_column or "",
        features=features,
        ttl=view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None,
    )


class AsofRetrievalJob(RetrievalJob):
    """A lazily executed DuckDB query; Feast applies on-demand views on top of its result."""

    def __init__(
        self,
        run: Callable[[], pa.Table],
        on_demand_feature_views: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata | None,
    ) -> None:
        super().__init__()
        self._run = run
        self._odfvs = on_demand_feature_views
        self._full_feature_names = full_feature_names
        self._metadata = metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._run()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._run().to_pandas()

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def persist(
        self, storage: Any, allow_overwrite: bool = False, timeout: int | None = None
    ) -> None:
        if not isinstance(storage, SavedDatasetFileStorage):
            raise InputError("storage", type(storage).__name__, "only file storage is supported")
        path = Path(storage.file_options.uri)
        if path.exists() and not allow_overwrite:
            raise InputError(
                "storage", str(path), "exists; pass allow_overwrite=True to replace it"
            )
        pq.write_table(self.to_arrow(), path)


def entity_table(con: duckdb.DuckDBPyConnection, entity_df: pd.DataFrame | str) -> pa.Table:
    """The entity rows as Arrow: a pandas frame converted, or a DuckDB query run (on this
    machine: a query such as ``SELECT … FROM read_parquet('entities.parquet')`` skips two
    conversions of every row between Arrow and pandas)."""
    if isinstance(entity_df, pd.DataFrame):
        return pa.Table.from_pandas(entity_df, preserve_index=False)
    try:
        return con.sql(entity_df).to_arrow_table()
    except duckdb.Error as error:
        raise InputError(
            "entity_df", entity_df, f"must be a valid DuckDB query ({error})"
        ) from error


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store with ASOF-join retrieval and data-root path resolution."""

    @staticmethod
    def get_historical_features(  # type: ignore[override]
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        if filter_by_created_timestamp:
            raise InputError(
                "filter_by_created_timestamp",
                True,
                "AsofDuckDBOfflineStore joins on event time only; created times break ties",
            )
        views = [view_join(config, v, feature_refs, full_feature_names) for v in feature_views]
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        with _connect(config) as con:
            entity = entity_table(con, entity_df)
        if EVENT_TIMESTAMP not in entity.column_names:
            raise InputError(
                "entity_df columns",
                entity.column_names,
                f"an entity dataframe needs an {EVENT_TIMESTAMP!r} column",
            )
        timestamps = entity.column(EVENT_TIMESTAMP)
        low, high = pc.min(timestamps).as_py(), pc.max(timestamps).as_py()

        def run() -> pa.Table:
            with _connect(config) as con:
                return point_in_time_join(con, entity, views, EVENT_TIMESTAMP)

        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=[c for c in entity.column_names if c != EVENT_TIMESTAMP],
            min_event_timestamp=low,
            max_event_timestamp=high,
        )
        live_odfvs = [o for o in odfvs if o.mode != "substrait"]
        return AsofRetrievalJob(run, live_odfvs, full_feature_names, metadata)

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        return _pull(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
            latest=True,
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        return _pull(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
            latest=False,
        )


def pull_sql(
    source: str,
    keys: list[str],
    features: list[str],
    timestamp: str,
    created: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    latest: bool,
) -> str:
    """SQL reading a source's rows with event time in [start, end], as materialization needs.

    Args:
        source: the SQL relation reading the source (see :func:`source_relation`).
        latest: keep only the latest row per join key (by event time, then created time), as
            ``pull_latest_from_table_or_query`` must; otherwise every row in the interval.
    """
    columns = [*keys, *features, timestamp, *([created] if created else [])]
    ts = f"CAST({_quote(timestamp)} AS TIMESTAMPTZ)"
    filters = [f"{ts} >= {_literal(_utc(start).isoformat())}::TIMESTAMPTZ"] if start else []
    if end:
        filters.append(f"{ts} <= {_literal(_utc(end).isoformat())}::TIMESTAMPTZ")
    where = f" WHERE {' AND '.join(filters)}" if filters else ""
    qualify = ""
    if latest:
        order = [f"{_quote(timestamp)} DESC", *([f"{_quote(created)} DESC"] if created else [])]
        partition = ", ".join(_quote(k) for k in keys) or "1"
        qualify = (
            f" QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {', '.join(order)}) = 1"
        )
    select = ", ".join(_quote(c) for c in columns)
    return f"SELECT {select} FROM {source}{where}{qualify}"


def _pull(
    config: RepoConfig,
    source: DataSource,
    keys: list[str],
    features: list[str],
    timestamp: str,
    created: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    latest: bool,
) -> RetrievalJob:
    path = resolve_path(config, source)

    def run() -> pa.Table:
        with _connect(config) as con:
            relation = source_relation(con, path)
            sql = pull_sql(relation, keys, features, timestamp, created, start, end, latest=latest)
            return con.sql(sql).to_arrow_table()

    return AsofRetrievalJob(run, [], False, None)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
