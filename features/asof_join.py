"""The point-in-time join of searchrank's offline stores, as DuckDB SQL over Arrow and parquet.

Both offline stores run it: the DuckDB store (:mod:`searchrank.features.offline_store`) on a whole
entity table in one process, the Ray store (:mod:`searchrank.features.ray_offline_store`) on each
block or partition of it in Ray's workers. It imports neither Feast nor Ray, so a Ray worker
that runs it starts in about a second instead of the ten that importing Feast takes.

Every feature view becomes one ``ASOF LEFT JOIN`` on its join keys and event time
(:func:`view_rows_sql` then :func:`asof_join_sql`): the latest row at or before each entity row,
ties on (keys, event time) broken by the created timestamp, a match older than the TTL giving
nulls, and every entity row exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from searchrank.core import storage
from searchrank.core.errors import InputError

ROW_ID = "__searchrank_row"
"""A column added to the entity table so that each entity row is joined and returned once."""
EVENT_TIMESTAMP = "event_timestamp"


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


def literal(text: str) -> str:
    """``text`` as an SQL string literal."""
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
        filters.append(f"{view_ts} <= {literal(window[1].isoformat())}::TIMESTAMPTZ")
        if view.ttl:
            earliest = window[0] - view.ttl
            filters.append(f"{view_ts} >= {literal(earliest.isoformat())}::TIMESTAMPTZ")
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
        return f"read_parquet({literal(str(local))})"
    # Named by its path, so registering the same source twice on a connection is harmless.
    name = "source_" + hashlib.sha1(path.encode()).hexdigest()[:16]
    con.register(name, storage.parquet_dataset(path, field="FileSource path"))
    return _quote(name)


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
    filters = [f"{ts} >= {literal(_utc(start).isoformat())}::TIMESTAMPTZ"] if start else []
    if end:
        filters.append(f"{ts} <= {literal(_utc(end).isoformat())}::TIMESTAMPTZ")
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


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
