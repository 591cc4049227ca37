"""The Ray side of the Ray offline store: point-in-time joins and pulls as Ray Data plans.

:mod:`searchrank.features.ray_offline_store` plugs these into Feast; everything here runs (or
is shipped to) Ray's workers, so it imports neither Feast nor, at module level, Ray: a worker
that unpickles these functions imports only DuckDB, Arrow and NumPy. Each partition runs the
DuckDB point-in-time join of :mod:`searchrank.features.asof_join`.

Each feature view is joined with one of two strategies (Feast's, fixed), chosen from its size:
the uncompressed size of the columns the join reads, from the parquet footers.

- **broadcast** (size ≤ ``broadcast_join_threshold_mb``): the view's rows are read, windowed,
  de-duplicated and put in Ray's object store once, by one task; every block of entity rows
  joins against them where it is. No entity row moves.
- **partitioned** (larger views): every block of each side is split by a hash of the view's
  join keys into pieces, one per partition; Ray Data's shuffle (``groupby``) brings each
  partition's pieces together, and each partition is joined on its own. Feast's own
  alternative, a time-windowed join, only matches rows in the same window (an hour by default),
  so it loses matches across window edges.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from searchrank.core import storage
from searchrank.features.asof_join import (
    ROW_ID,
    ViewJoin,
    asof_join_sql,
    pull_sql,
    source_relation,
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


@dataclass(frozen=True)
class Sizing:
    """The settings that size a join (Feast's Ray settings, in ``feature_store.ray.yaml``).

    Attributes:
        broadcast_mb: views up to this size are broadcast, larger ones partitioned.
        partition_mb: a partitioned join takes one partition per this much view data...
        parallelism: ...and at most this many partitions per CPU of the cluster.
        cpus: the cluster's CPUs.
    """

    broadcast_mb: int
    partition_mb: int
    parallelism: int
    cpus: int

    def partitions(self, size_bytes: int) -> int:
        """Feast's estimate: one per ``partition_mb``, at most CPUs × ``parallelism``, at
        least one."""
        most = max(1, self.cpus * self.parallelism)
        return max(1, min(most, size_bytes // (self.partition_mb * 1024**2)))


def plan_join(view: ViewJoin, sizing: Sizing) -> JoinPlan:
    """Choose the join strategy of one view from its size (see the module docstring)."""
    size = read_size_bytes(view.path, _source_columns(view))
    if size <= sizing.broadcast_mb * 1024**2:
        return JoinPlan(view, "broadcast", size, 1)
    return JoinPlan(view, "partitioned", size, sizing.partitions(size))


def sort_by_row(block: pa.Table) -> pa.Table:
    return block.take(pc.sort_indices(block, [(ROW_ID, "ascending")]))


def join_block(block: pa.Table, rows: pa.Table, view: ViewJoin, event_timestamp: str) -> pa.Table:
    """One block of entity rows (all their columns, in their order) followed by the view's
    features.

    Args:
        block: entity rows carrying :data:`ROW_ID`.
        rows: the view's prepared rows (:func:`view_rows_sql`'s columns).
    Returns:
        ``block`` with the view's feature columns appended.
    """
    with _worker_connection() as con:
        con.register("entity_block", block)
        con.register("view_rows", rows)
        part = con.sql(asof_join_sql("entity_block", "view_rows", view, event_timestamp))
        joined = part.to_arrow_table()  # in ROW_ID order
    row_ids = block.column(ROW_ID).to_numpy()
    if len(row_ids) > 1 and not np.all(row_ids[1:] > row_ids[:-1]):
        # Back to the block's order: only the new (narrow) columns move, never the block.
        rank = np.empty(len(row_ids), dtype=np.int64)
        rank[np.argsort(row_ids, kind="stable")] = np.arange(len(row_ids))
        joined = joined.take(pa.array(rank))
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


def entity_dataset(entity: pa.Table, cpus: int) -> Any:
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


def _broadcast(entity_ds: Any, view: ViewJoin, rows: Any, event_timestamp: str) -> Any:
    """Broadcast join: every block of entity rows joins against the view's prepared ``rows``
    (an object reference: they reach each node through the object store, never through this
    process)."""
    return entity_ds.map_batches(
        _join_broadcast,
        fn_kwargs={"rows": rows, "view": view, "event_timestamp": event_timestamp},
        batch_format="pyarrow",
        batch_size=None,
    )


def _join_broadcast(block: pa.Table, rows: Any, view: ViewJoin, event_timestamp: str) -> pa.Table:
    import ray

    return join_block(block, ray.get(rows), view, event_timestamp)


def _by_partition(
    pieces: list[tuple[Any, list[str], int]],
    partitions: int,
    kernel: Callable[..., pa.Table],
    kwargs: dict[str, Any],
) -> Any:
    """``kernel(group, **kwargs)`` for each partition's group of pieces: the datasets in
    ``pieces`` (dataset, its key columns, its side) split by :func:`split_block`, shuffled by
    partition. With one partition there is nothing to shuffle: the pieces are put in one block,
    which skips the start-up of Ray Data's shuffle (seconds)."""
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
    if partitions == 1:
        return union.repartition(1).map_batches(
            kernel, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=None
        )
    return union.groupby(BUCKET, num_partitions=partitions).map_groups(
        kernel, fn_kwargs=kwargs, batch_format="pyarrow"
    )


def _partitioned(
    entity_ds: Any, view: ViewJoin, partitions: int, window: Window, event_timestamp: str
) -> Any:
    """Partitioned join: entity rows and feature rows hash-partitioned by the join keys, then
    each partition joined on its own."""
    source = _read(view.path, _source_columns(view))
    return _by_partition(
        [(entity_ds, list(view.keys.values()), 0), (source, list(view.keys), 1)],
        partitions,
        join_partition,
        {
            "view": view,
            "source": _source_schema(view.path, _source_columns(view)),
            "window": window,
            "event_timestamp": event_timestamp,
        },
    )


def point_in_time_join(
    entity: pa.Table,
    plans: list[JoinPlan],
    event_timestamp: str,
    cpus: int,
) -> Any:
    """The lazy Ray dataset of the entity rows with every view's point-in-time features.

    The rows carry :data:`ROW_ID` (their position in ``entity``) and come in no particular
    order; ``ray_offline_store.AsofRayRetrievalJob`` restores it. ``entity`` must hold a row:
    Ray Data skips empty blocks, so no row would reach a partitioned join (see
    :func:`empty_result`).
    """
    import ray

    timestamps = entity.column(event_timestamp)
    window = (pc.min(timestamps).as_py(), pc.max(timestamps).as_py())
    # A small view is read and prepared by one Ray task (Ray Data's start-up of a read, seconds,
    # would outweigh the reading), all of them at once and done before any entity block starts:
    # a block task waiting on one would hold its place while the task it waits for queues.
    prepared = {
        plan.view.path: ray.remote(prepare_view).remote(plan.view, window)
        for plan in plans
        if plan.strategy == "broadcast"
    }
    ray.wait(list(prepared.values()), num_returns=len(prepared), fetch_local=False)
    dataset = entity_dataset(entity, cpus)
    for plan in plans:
        if plan.strategy == "broadcast":
            dataset = _broadcast(dataset, plan.view, prepared[plan.view.path], event_timestamp)
        else:
            dataset = _partitioned(dataset, plan.view, plan.partitions, window, event_timestamp)
    return dataset


def empty_result(entity: pa.Table, views: list[ViewJoin], event_timestamp: str) -> pa.Table:
    """The result's columns and types without a row: the entity columns, then each view's
    features as its DuckDB join types them."""
    table = entity.slice(0, 0).append_column(ROW_ID, pa.array([], pa.int64()))
    for view in views:
        source = _source_schema(view.path, _source_columns(view)).empty_table()
        table = join_block(table, prepare_rows(source, view, None), view, event_timestamp)
    return table.drop_columns([ROW_ID])


@dataclass(frozen=True)
class PulledColumns:
    """The columns a materialization pull reads (source names)."""

    keys: list[str]
    features: list[str]
    timestamp: str
    created: str | None

    @property
    def all(self) -> list[str]:
        return [
            *self.keys,
            *self.features,
            self.timestamp,
            *([self.created] if self.created else []),
        ]


def select_pulled(
    block: pa.Table,
    columns: PulledColumns,
    interval: tuple[datetime | None, datetime | None],
    latest: bool,
) -> pa.Table:
    """The rows of ``block`` in the interval; with ``latest``, only the newest per key."""
    start, end = interval
    with _worker_connection() as con:
        con.register("pulled", block)
        sql = pull_sql(
            "pulled",
            columns.keys,
            columns.features,
            columns.timestamp,
            columns.created,
            start,
            end,
            latest=latest,
        )
        return con.sql(sql).to_arrow_table()


def _latest_in_partition(
    group: pa.Table, columns: PulledColumns, interval: tuple[datetime | None, datetime | None]
) -> pa.Table:
    return select_pulled(_side(group, 1), columns, interval, latest=True)


def pull_empty(
    path: str, columns: PulledColumns, interval: tuple[datetime | None, datetime | None]
) -> pa.Table:
    """The empty table of the rows :func:`pull` gives."""
    return select_pulled(_source_schema(path, columns.all).empty_table(), columns, interval, False)


def pull(
    path: str,
    columns: PulledColumns,
    interval: tuple[datetime | None, datetime | None],
    latest: bool,
    sizing: Sizing,
) -> Any:
    """The rows materialization reads, as a lazy Ray dataset.

    Every block is filtered to the interval where it is read; for the latest row per key, the
    blocks are then hash-partitioned by key so that each key's rows meet in one partition.
    """
    interval_kwargs = {"columns": columns, "interval": interval}
    dataset = _read(path, columns.all).map_batches(
        select_pulled,
        fn_kwargs={**interval_kwargs, "latest": False},
        batch_format="pyarrow",
        batch_size=None,
    )
    if latest:
        partitions = sizing.partitions(read_size_bytes(path, columns.all))
        dataset = _by_partition(
            [(dataset, columns.keys, 1)], partitions, _latest_in_partition, interval_kwargs
        )
    return dataset


Plan = Callable[[], Any]
"""A picklable function building a lazy Ray dataset (a ``functools.partial`` of this module's
plan builders): it is built where it runs, inside a task on the cluster."""


def on_cluster(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, run as a Ray task on the cluster; its result comes back here.

    Ray Data cannot run in a Ray Client driver (``ray://``, how a pod outside the cluster
    connects: it fails with "'Worker' object has no attribute 'core_worker'"), so every plan is
    built and executed inside a task, which drives Ray Data from the cluster. The task takes no
    CPU of its own: the work it starts does. It drives Ray Data with this process's settings
    (Feast's shuffle strategy, progress bars off), which Ray Data otherwise takes per process.
    """
    import ray
    from ray.data import DataContext

    task = ray.remote(num_cpus=0)(_with_context)
    return ray.get(task.remote(DataContext.get_current(), function, *args))


def _with_context(context: Any, function: Callable[..., Any], *args: Any) -> Any:
    from ray.data import DataContext

    DataContext._set_current(context)
    return function(*args)


def collect(plan: Plan, ordered: bool, empty: pa.Table) -> pa.Table:
    """Run ``plan`` and gather its rows into one table (in :data:`ROW_ID` order, without it,
    when ``ordered``); ``empty`` when no block holds a row (Ray Data drops empty blocks, and
    with them the schema)."""
    import ray

    tables = [t for t in ray.get(plan().to_arrow_refs()) if t.num_rows]
    if not tables:
        return empty
    table = pa.concat_tables(tables)
    return sort_by_row(table).drop_columns([ROW_ID]) if ordered else table


def ordered_dataset(plan: Plan, ordered: bool) -> Any:
    """The dataset of ``plan``, sorted by Ray in :data:`ROW_ID` order when ``ordered``."""
    dataset = plan()
    return dataset.sort(ROW_ID).drop_columns([ROW_ID]) if ordered else dataset


def write_parquet(plan: Plan, ordered: bool, uri: str) -> None:
    """Write the rows of ``plan`` as a folder of parquet files at ``uri``, from the workers."""
    fs, path = storage.filesystem(uri, field="storage")
    ordered_dataset(plan, ordered).write_parquet(path, filesystem=fs)


def for_each_block(plan: Plan, function: Callable[[pa.Table], int]) -> int:
    """Apply ``function`` to every block of ``plan`` where the block is; the sum of what it
    returns."""
    counts = plan().map_batches(
        lambda block: pa.table({"n": [function(block)]}), batch_format="pyarrow", batch_size=None
    )
    return sum(int(t.column("n").to_numpy().sum()) for t in _gather(counts))


def _gather(dataset: Any) -> list[pa.Table]:
    import ray

    return list(ray.get(dataset.to_arrow_refs()))
