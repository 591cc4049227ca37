"""Point-in-time joins and materialization on a Ray cluster, through Feast's Ray integration.

Feast 0.67 ships a Ray offline store and a Ray compute engine (contrib). They connect to a Ray
cluster, read parquet with Ray Data and write the online store from the workers, but their
joins are not point-in-time correct. On six entity rows (tests/features/test_ray_store.py) the
offline store, unchanged:

- drops entity rows that share their join keys and event time (its broadcast join
  de-duplicates the entity batch on them);
- ignores the feature view's TTL, so expired values come back;
- breaks ties on (keys, event time) by file order instead of the created timestamp;
- returns the rows in event-time order instead of the entity order.

Its windowed join for large views only matches feature rows in the same time window (one hour
by default) as the entity row, and runs per batch of the union of both sides, so rows of one key
in two batches never meet. Its compute engine filters materialized rows by TTL against the
wall clock, not against the window being materialized, and swallows online-store write errors.

So searchrank keeps Feast's pieces (its configuration, Ray initialisation in local, remote and
KubeRay modes, retrieval job, engine and online-store writers) and replaces only the join, the
way :mod:`searchrank.features.offline_store` does for DuckDB: through Feast's documented
extension points, a custom offline store (:class:`AsofRayOfflineStore`) and a custom batch
engine (:class:`AsofRayComputeEngine`). Ray distributes the work; each partition runs the
DuckDB ASOF join of the embedded store (:func:`~searchrank.features.offline_store.view_rows_sql`
and :func:`~searchrank.features.offline_store.asof_join_sql`), so both stores share one
definition of "the value at that moment".

Each feature view is joined with one of Feast's two strategies, chosen from its size (the
uncompressed size of the columns the join reads, from the parquet footers):

- **broadcast** (size ≤ ``broadcast_join_threshold_mb``): the view's rows are read, de-duplicated
  and put in Ray's object store once; every block of entity rows joins against them in place.
  No entity row moves.
- **partitioned** (larger views): both sides are hash-partitioned by the view's join keys into
  ``size / target_partition_size_mb`` partitions (at most the cluster's CPUs ×
  ``max_parallelism_multiplier``) with Ray Data's sort shuffle, and each partition is joined on
  its own. This replaces Feast's time windows, whose edges lose matches; ``window_size_for_joins``
  is not used.

Configure it in ``feature_store.ray.yaml``::

    offline_store:
      type: searchrank.features.ray_offline_store.AsofRayOfflineStore
      data_root: s3://bucket/features     # as the DuckDB store's data_root
      ray_address: ray://head:10001       # unset: a local Ray on this machine
      broadcast_join_threshold_mb: 100
    batch_engine:
      type: searchrank.features.ray_offline_store.AsofRayComputeEngine
      ray_address: ray://head:10001
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.common.materialization_job import (
    MaterializationJob,
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.compute_engines.ray.compute import RayComputeEngine
from feast.infra.compute_engines.ray.config import RayComputeEngineConfig
from feast.infra.compute_engines.ray.job import RayMaterializationJob
from feast.infra.offline_stores.contrib.ray_offline_store.ray import (
    RayOfflineStore,
    RayOfflineStoreConfig,
    RayResourceManager,
    RayRetrievalJob,
)
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from pydantic import StrictStr

from searchrank.core import storage
from searchrank.core.errors import InputError
from searchrank.features.offline_store import (
    EVENT_TIMESTAMP,
    ROW_ID,
    ViewJoin,
    asof_join_sql,
    entity_table,
    pull_sql,
    resolve_path,
    source_relation,
    view_join,
    view_rows_sql,
)

BUCKET = "__searchrank_bucket"
"""The hash partition of a shuffled piece of rows, by their join keys."""
SIDE = "__searchrank_side"
"""0 for a piece of entity rows, 1 for a piece of feature rows."""
PIECE = "__searchrank_rows"
"""A piece of rows (Arrow IPC bytes): what one input block holds of one partition."""
ENTITY_ROWS_PER_BLOCK = 250_000
"""Entity rows per Ray block: large enough that each block's DuckDB join amortizes its set-up."""

Window = tuple[datetime, datetime] | None


class AsofRayOfflineStoreConfig(RayOfflineStoreConfig):
    """Feast's Ray offline store settings, plus the data root of the DuckDB store.

    Attributes:
        data_root: folder or URI that relative ``FileSource`` paths resolve against, as in
            :class:`~searchrank.features.offline_store.AsofDuckDBOfflineStoreConfig`. With a
            ``ray_address`` it must be object storage (``s3://``): the workers of a remote
            cluster cannot read this machine's files.
    """

    type: StrictStr = "searchrank.features.ray_offline_store.AsofRayOfflineStore"  # type: ignore[assignment]
    reads_entity_query: ClassVar[bool] = True
    """Its ``entity_df`` may be a DuckDB query, run here (see ``offline_store.entity_table``)."""
    data_root: StrictStr | None = None


class AsofRayComputeEngineConfig(RayComputeEngineConfig):
    """Feast's Ray compute engine settings, under this engine's type."""

    type: StrictStr = "searchrank.features.ray_offline_store.AsofRayComputeEngine"  # type: ignore[assignment]


@dataclass(frozen=True)
class JoinPlan:
    """How one feature view is joined on Ray.

    Attributes:
        view: the view's columns and TTL (shared with the DuckDB store).
        strategy: "broadcast" or "partitioned".
        size_bytes: the uncompressed size of the columns the join reads.
        partitions: how many hash partitions a partitioned join uses (1 for broadcast).
    """

    view: ViewJoin
    strategy: str
    size_bytes: int
    partitions: int


@functools.cache
def _process_database() -> duckdb.DuckDBPyConnection:
    """This process's in-memory DuckDB database, with one thread: Ray schedules one task per
    CPU, so DuckDB must not take every core of the node itself."""
    database = duckdb.connect()
    database.execute("SET threads = 1")
    return database


def _worker_connection() -> duckdb.DuckDBPyConnection:
    """A fresh connection (cursor) to this process's database: opening a database costs some
    40 ms, a cursor 0.5 ms, and a join opens one or more per block."""
    cursor = _process_database().cursor()
    # Per cursor: a cursor inherits the time zone as "Etc/UTC", which Arrow keeps as a
    # different type from the DuckDB store's "UTC".
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor


def _read(view_path: str, columns: list[str]) -> Any:
    """A lazy Ray dataset over the parquet data at ``view_path``, reading only ``columns``."""
    import ray.data

    fs, path = storage.filesystem(view_path, field="FileSource path")
    return ray.data.read_parquet(path, filesystem=fs).select_columns(columns)


def _source_columns(view: ViewJoin) -> list[str]:
    return [*view.keys, view.timestamp, *view.features, *([view.created] if view.created else [])]


def read_size_bytes(view_path: str, columns: list[str]) -> int:
    """The uncompressed size of ``columns`` in the parquet data at ``view_path``, from the
    footers alone (no row is read)."""
    dataset = storage.parquet_dataset(view_path, field="FileSource path")
    wanted = set(columns)
    total = 0
    for fragment in dataset.get_fragments():
        metadata: pq.FileMetaData = fragment.metadata
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            for c in range(group.num_columns):
                column = group.column(c)
                if column.path_in_schema in wanted:
                    total += column.total_uncompressed_size
    return total


def plan_join(view: ViewJoin, config: AsofRayOfflineStoreConfig, cpus: int) -> JoinPlan:
    """Choose the join strategy of one view from its size (see the module docstring)."""
    size = read_size_bytes(view.path, _source_columns(view))
    threshold = (config.broadcast_join_threshold_mb or 0) * 1024**2
    if size <= threshold:
        return JoinPlan(view, "broadcast", size, 1)
    return JoinPlan(view, "partitioned", size, partition_count(size, config, cpus))


def partition_count(size_bytes: int, config: AsofRayOfflineStoreConfig, cpus: int) -> int:
    """Feast's partition estimate: one per ``target_partition_size_mb``, at most CPUs ×
    ``max_parallelism_multiplier``, at least one."""
    target = (config.target_partition_size_mb or 64) * 1024**2
    most = max(1, cpus * (config.max_parallelism_multiplier or 2))
    return max(1, min(most, size_bytes // target))


def _sort_by_row(block: pa.Table) -> pa.Table:
    return block.take(pc.sort_indices(block, [(ROW_ID, "ascending")]))


def join_block(block: pa.Table, rows: pa.Table, view: ViewJoin, event_timestamp: str) -> pa.Table:
    """One block of entity rows (all their columns) followed by the view's features.

    Args:
        block: entity rows carrying :data:`ROW_ID`.
        rows: the view's prepared rows (:func:`view_rows_sql`'s columns).
    Returns:
        ``block`` in :data:`ROW_ID` order with the view's feature columns appended.
    """
    block = _sort_by_row(block)
    with _worker_connection() as con:
        con.register("entity_block", block)
        con.register("view_rows", rows)
        part = con.sql(asof_join_sql("entity_block", "view_rows", view, event_timestamp))
        joined = part.to_arrow_table()
    for name in joined.column_names[1:]:
        block = block.append_column(name, joined.column(name))
    return block


def prepare_rows(table: pa.Table, view: ViewJoin, window: Window) -> pa.Table:
    """The rows of one view a join can match: renamed, windowed and de-duplicated."""
    with _worker_connection() as con:
        con.register("view_source", table)
        return con.sql(view_rows_sql("view_source", view, window)).to_arrow_table()


def bucket_of(block: pa.Table, keys: list[str], partitions: int) -> np.ndarray:
    """The hash partition of each row of ``block``, from its ``keys`` (int64 array)."""
    # Keys hash as text, so an INT32 key on one side and an INT64 key on the other agree.
    hashed = ", ".join(f'CAST("{k}" AS VARCHAR)' for k in keys)
    with _worker_connection() as con:
        con.register("keyed", block.select(keys))
        sql = f"SELECT CAST(hash({hashed}) % {partitions} AS BIGINT) AS b FROM keyed"
        return con.sql(sql).fetchnumpy()["b"]


def _to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _from_bytes(pieces: list[bytes], schema: pa.Schema | None) -> pa.Table:
    tables = [pa.ipc.open_stream(p).read_all() for p in pieces]
    if not tables and schema is not None:
        return schema.empty_table()
    return pa.concat_tables(tables)


def split_block(block: pa.Table, keys: list[str], partitions: int, side: int) -> pa.Table:
    """One row per partition: the piece of ``block`` whose keys hash there (maybe empty).

    Every block sends a piece, empty or not, to every partition, so each partition sees the
    schema of both sides even when it holds rows of only one. Ray Data shuffles these rows
    (``groupby(BUCKET)``), which moves each piece as one value instead of row by row.
    """
    buckets = bucket_of(block, keys, partitions) if block.num_rows else np.zeros(0, np.int64)
    order = np.argsort(buckets, kind="stable")
    ordered = block.take(pa.array(order))
    ends = np.cumsum(np.bincount(buckets, minlength=partitions))
    starts = ends - np.bincount(buckets, minlength=partitions)
    pieces = [_to_bytes(ordered.slice(s, e - s)) for s, e in zip(starts, ends, strict=True)]
    return pa.table(
        {
            BUCKET: pa.array(range(partitions), type=pa.int64()),
            SIDE: pa.array([side] * partitions, type=pa.int8()),
            PIECE: pa.array(pieces, type=pa.large_binary()),
        }
    )


def _side(group: pa.Table, side: int, schema: pa.Schema | None = None) -> pa.Table:
    """The rows one side sent to this partition; ``schema``'s empty table when it sent none
    (Ray Data skips empty blocks, so an empty source sends no piece at all)."""
    mask = pc.equal(group.column(SIDE), side)
    return _from_bytes(group.filter(mask).column(PIECE).to_pylist(), schema)


def join_partition(
    group: pa.Table, view: ViewJoin, source: pa.Schema, window: Window, event_timestamp: str
) -> pa.Table:
    """Join the entity rows and the feature rows of one hash partition (a partitioned join).

    Every non-empty entity block sends a piece to every partition, so the entity side is
    always there; the feature side is missing when the view has no rows (``source`` is its
    schema)."""
    rows = prepare_rows(_side(group, 1, source), view, window)
    return join_block(_side(group, 0), rows, view, event_timestamp)


class AsofRayRetrievalJob(RayRetrievalJob):
    """Feast's Ray retrieval job over a lazy Ray dataset whose rows carry :data:`ROW_ID`.

    ``to_arrow`` and ``to_df`` collect the blocks on this machine, put them back in entity order
    and apply the on-demand feature views there, exactly as the DuckDB store's job does.
    ``to_ray_dataset``, ``persist`` and ``to_remote_storage`` keep the rows on the cluster (sorted
    by Ray). A job without :data:`ROW_ID` (materialization's pulls) has no order to restore.
    ``empty`` is the result when no block holds a row: Ray Data drops empty blocks, and with them
    the schema.
    """

    def __init__(
        self,
        dataset: Any,
        config: AsofRayOfflineStoreConfig,
        on_demand_feature_views: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata | None,
        ordered: bool,
        empty: pa.Table,
    ) -> None:
        super().__init__(dataset, staging_location=config.storage_path, config=config)
        self._odfvs = on_demand_feature_views
        self._full_names = full_feature_names
        self._meta = metadata
        self._rows = dataset
        self._ordered = ordered
        self._empty = empty
        self._on_cluster: Any = None

    @property
    def full_feature_names(self) -> bool:
        return self._full_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._meta

    def _get_ray_dataset(self) -> Any:
        if self._on_cluster is None:
            dataset = self._rows
            if self._ordered:
                dataset = dataset.sort(ROW_ID).drop_columns([ROW_ID])
            self._on_cluster = dataset
        return self._on_cluster

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        import ray

        tables = [t for t in ray.get(self._rows.to_arrow_refs()) if t.num_rows]
        if not tables:
            return self._empty
        table = pa.concat_tables(tables)
        if self._ordered:
            table = _sort_by_row(table).drop_columns([ROW_ID])
        return table

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def to_arrow(self, validation_reference: Any = None, timeout: int | None = None) -> pa.Table:
        return RetrievalJob.to_arrow(self, validation_reference, timeout)

    def to_df(self, validation_reference: Any = None, timeout: int | None = None) -> pd.DataFrame:
        return RetrievalJob.to_df(self, validation_reference, timeout)


def connect_ray(config: Any) -> None:
    """Start or join the Ray cluster the configuration names, through Feast's initializer.

    Feast remembers that it initialised Ray even after something else shut Ray down (a training
    step in the same process); then it starts again.
    """
    import ray
    from feast.infra.ray_initializer import ensure_ray_initialized

    ensure_ray_initialized(config, force_reinit=not ray.is_initialized())


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _entity_dataset(entity: pa.Table, cpus: int) -> Any:
    import ray.data

    numbered = entity.append_column(ROW_ID, pa.array(range(entity.num_rows), type=pa.int64()))
    blocks = max(cpus, -(-numbered.num_rows // ENTITY_ROWS_PER_BLOCK))
    size = max(1, -(-numbered.num_rows // blocks))
    return ray.data.from_arrow(
        [numbered.slice(i, size) for i in range(0, max(numbered.num_rows, 1), size)]
    )


def _source_schema(path: str, columns: list[str]) -> pa.Schema:
    """The parquet schema of ``columns`` at ``path``, for the empty pieces of an empty source."""
    schema = storage.parquet_dataset(path, field="FileSource path").schema
    return pa.schema([schema.field(c) for c in columns])


def prepare_view(view: ViewJoin, window: Window) -> pa.Table:
    """All the rows of one view a join can match, read and prepared in one process (the
    DuckDB store's read: projection and time filter pushed down to the parquet files)."""
    with _worker_connection() as con:
        sql = view_rows_sql(source_relation(con, view.path), view, window)
        return con.sql(sql).to_arrow_table()


def _broadcast(entity_ds: Any, plan: JoinPlan, window: Window, event_timestamp: str) -> Any:
    """Broadcast join: the view's rows prepared once, by a Ray task, and shared with every
    block of entity rows through the object store (nothing passes through this process).

    A small view is read by that one task rather than by Ray Data, whose start-up of a read
    (several seconds) would outweigh the reading."""
    import ray

    view = plan.view
    rows = ray.remote(prepare_view).remote(view, window)

    def join(block: pa.Table) -> pa.Table:
        return join_block(block, ray.get(rows), view, event_timestamp)

    return entity_ds.map_batches(join, batch_format="pyarrow", batch_size=None)


def _shuffled(pieces: list[tuple[Any, list[str], int]], partitions: int) -> Any:
    """The union of datasets split by :func:`split_block`, grouped by partition."""
    parts = [
        dataset.map_batches(
            split_block,
            fn_kwargs={"keys": keys, "partitions": partitions, "side": side},
            batch_format="pyarrow",
            batch_size=None,
        )
        for dataset, keys, side in pieces
    ]
    union = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    return union.groupby(BUCKET, num_partitions=partitions)


def _partitioned(entity_ds: Any, plan: JoinPlan, window: Window, event_timestamp: str) -> Any:
    """Partitioned join: entity rows and feature rows hash-partitioned by the join keys, then
    each partition joined on its own."""
    view = plan.view
    source = _read(view.path, _source_columns(view))
    grouped = _shuffled(
        [(entity_ds, list(view.keys.values()), 0), (source, list(view.keys), 1)],
        plan.partitions,
    )
    schema = _source_schema(view.path, _source_columns(view))
    return grouped.map_groups(
        join_partition,
        fn_kwargs={
            "view": view,
            "source": schema,
            "window": window,
            "event_timestamp": event_timestamp,
        },
        batch_format="pyarrow",
    )


def ray_point_in_time_join(
    entity: pa.Table,
    plans: list[JoinPlan],
    event_timestamp: str,
    cpus: int,
) -> Any:
    """The lazy Ray dataset of the entity rows with every view's point-in-time features.

    The rows carry :data:`ROW_ID` (their position in ``entity``) and come in no particular
    order; :class:`AsofRayRetrievalJob` restores it. ``entity`` must hold a row: Ray Data
    skips empty blocks, so no row would reach a partitioned join (see :func:`empty_result`).
    """
    timestamps = entity.column(event_timestamp)
    window = (pc.min(timestamps).as_py(), pc.max(timestamps).as_py())
    dataset = _entity_dataset(entity, cpus)
    for plan in plans:
        join = _broadcast if plan.strategy == "broadcast" else _partitioned
        dataset = join(dataset, plan, window, event_timestamp)
    return dataset


def empty_result(entity: pa.Table, views: list[ViewJoin], event_timestamp: str) -> pa.Table:
    """The result's columns and types without a row: the entity columns, then each view's
    features as its DuckDB join types them."""
    table = entity.slice(0, 0).append_column(ROW_ID, pa.array([], pa.int64()))
    for view in views:
        source = _source_schema(view.path, _source_columns(view)).empty_table()
        table = join_block(table, prepare_rows(source, view, None), view, event_timestamp)
    return table.drop_columns([ROW_ID])


class AsofRayOfflineStore(RayOfflineStore):
    """Feast's Ray offline store with searchrank's point-in-time join (module docstring)."""

    @staticmethod
    def get_historical_features(  # type: ignore[override]
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        if kwargs.get("filter_by_created_timestamp"):
            raise InputError(
                "filter_by_created_timestamp",
                True,
                "AsofRayOfflineStore joins on event time only; created times break ties",
            )
        store_config = config.offline_store
        assert isinstance(store_config, AsofRayOfflineStoreConfig)
        views = [view_join(config, v, feature_refs, full_feature_names) for v in feature_views]
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            entity = entity_table(con, entity_df)
        if EVENT_TIMESTAMP not in entity.column_names:
            raise InputError(
                "entity_df columns",
                entity.column_names,
                f"an entity dataframe needs an {EVENT_TIMESTAMP!r} column",
            )
        connect_ray(config)
        RayResourceManager(store_config).configure_ray_context()
        cpus = _cluster_cpus()
        plans = [plan_join(v, store_config, cpus) for v in views]
        empty = empty_result(entity, views, EVENT_TIMESTAMP)
        if entity.num_rows:
            dataset = ray_point_in_time_join(entity, plans, EVENT_TIMESTAMP, cpus)
        else:
            dataset = _entity_dataset(empty, cpus)
        timestamps = entity.column(EVENT_TIMESTAMP)
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=[c for c in entity.column_names if c != EVENT_TIMESTAMP],
            min_event_timestamp=pc.min(timestamps).as_py(),
            max_event_timestamp=pc.max(timestamps).as_py(),
        )
        live_odfvs = [o for o in odfvs if o.mode != "substrait"]
        return AsofRayRetrievalJob(
            dataset, store_config, live_odfvs, full_feature_names, metadata, True, empty
        )

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
        return _pull_on_ray(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            (start_date, end_date),
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
        return _pull_on_ray(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            (start_date, end_date),
            latest=False,
        )


def _pull_on_ray(
    config: RepoConfig,
    source: DataSource,
    keys: list[str],
    features: list[str],
    timestamp: str,
    created: str | None,
    interval: tuple[datetime | None, datetime | None],
    *,
    latest: bool,
) -> RetrievalJob:
    """The rows materialization reads, on Ray: every block filtered to the interval; for the
    latest row per key, hash-partitioned by key first so each key's rows meet in one place."""
    store_config = config.offline_store
    assert isinstance(store_config, AsofRayOfflineStoreConfig)
    connect_ray(config)
    RayResourceManager(store_config).configure_ray_context()
    path = resolve_path(config, source)
    columns = [*keys, *features, timestamp, *([created] if created else [])]
    start, end = interval

    def select(block: pa.Table, latest: bool) -> pa.Table:
        with _worker_connection() as con:
            con.register("pulled", block)
            sql = pull_sql("pulled", keys, features, timestamp, created, start, end, latest=latest)
            return con.sql(sql).to_arrow_table()

    dataset = _read(path, columns).map_batches(
        select, fn_kwargs={"latest": False}, batch_format="pyarrow", batch_size=None
    )
    if latest:
        n = partition_count(read_size_bytes(path, columns), store_config, _cluster_cpus())
        dataset = _shuffled([(dataset, keys, 1)], n).map_groups(
            lambda group: select(_side(group, 1), True), batch_format="pyarrow"
        )
    empty = select(_source_schema(path, columns).empty_table(), False)
    return AsofRayRetrievalJob(dataset, store_config, [], False, None, False, empty)


class AsofRayComputeEngine(RayComputeEngine):
    """Feast's Ray compute engine, materializing what the offline store's latest-row pull returns.

    Feast's own materialization plan filters rows by TTL against the wall clock (so a window
    that ended more than one TTL ago writes nothing) and logs, rather than raises, online-store
    write errors. This engine pulls the latest row per key in the window through
    :meth:`AsofRayOfflineStore.pull_latest_from_table_or_query` (the local engine's semantics)
    and writes each block from the Ray worker that holds it, raising any write error.
    """

    def _materialize_one(
        self,
        registry: BaseRegistry,
        task: MaterializationTask,
        from_offline_store: bool = True,
        **kwargs: Any,
    ) -> MaterializationJob:
        """Materialize one view over the task's window (always from the offline store)."""
        from feast.utils import _get_column_names

        view = task.feature_view
        job_id = f"{view.name}-{task.start_time}-{task.end_time}"
        assert isinstance(view, FeatureView) and view.batch_source is not None
        try:
            entities = [registry.get_entity(name, task.project) for name in view.entities]
            keys, features, timestamp, created = _get_column_names(view, entities)
            pulled = self.offline_store.pull_latest_from_table_or_query(
                config=self.repo_config,
                data_source=view.batch_source,
                join_key_columns=keys,
                feature_name_columns=features,
                timestamp_field=timestamp,
                created_timestamp_column=created,
                start_date=task.start_time,
                end_date=task.end_time,
            )
            assert isinstance(pulled, AsofRayRetrievalJob)
            online_store, repo_config = self.online_store, self.repo_config

            def write(block: pa.Table) -> pa.Table:
                written = write_online(block, view, online_store, repo_config)
                return pa.table({"rows": [written]})

            pulled.to_ray_dataset().map_batches(
                write, batch_format="pyarrow", batch_size=None
            ).materialize()
            return RayMaterializationJob(job_id, MaterializationJobStatus.SUCCEEDED)
        except Exception as error:  # Feast's provider raises it
            return RayMaterializationJob(job_id, MaterializationJobStatus.ERROR, error=error)


def write_online(block: pa.Table, view: FeatureView, online_store: Any, config: RepoConfig) -> int:
    """Write one block of pulled rows (source column names) to the online store, as Feast's
    local engine does: field mapping applied, then ``online_write_batch`` per batch.

    Feast's Ray helpers convert only a table's first record batch and log write errors instead
    of raising them; this writes every batch and lets errors fail the materialization.

    Returns:
        The number of entity rows written.
    """
    from feast.utils import _convert_arrow_to_proto

    source = view.batch_source
    mapping = (source.field_mapping if source is not None else None) or {}
    block = block.rename_columns([mapping.get(c, c) for c in block.column_names])
    key_types = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    batch_size = config.materialization_config.online_write_batch_size or max(block.num_rows, 1)
    written = 0
    for batch in block.combine_chunks().to_batches(max_chunksize=batch_size):
        data = _convert_arrow_to_proto(batch, view, key_types)
        online_store.online_write_batch(config=config, table=view, data=data, progress=None)
        written += len(data)
    return written
