"""Point-in-time joins and materialization on a Ray cluster, through Feast's Ray integration.

Feast 0.67 ships a Ray offline store and a Ray compute engine (contrib). They connect to a Ray
cluster (local, remote or KubeRay), read parquet with Ray Data and write the online store from
the workers, but their joins are not point-in-time correct. On six entity rows, the offline
store unchanged:

- drops entity rows that share their join keys and event time (its broadcast join
  de-duplicates the entity batch on them);
- ignores the feature view's TTL, so expired values come back;
- breaks ties on (keys, event time) by file order instead of the created timestamp;
- returns the rows in event-time order instead of the entity order.

Its windowed join for large views matches only feature rows in the same time window (one hour
by default) as the entity row, per batch of the union of both sides, so rows of one key in two
batches never meet. Its compute engine filters materialized rows by TTL against the wall clock,
not against the window being materialized, and logs online-store write errors instead of
raising them.

So searchrank keeps Feast's pieces (configuration, Ray initialisation, retrieval job, engine,
online-store writers) and replaces the joins, through Feast's documented extension points: a
custom offline store (:class:`AsofRayOfflineStore`) and a custom batch engine
(:class:`AsofRayComputeEngine`). The Ray side lives in :mod:`searchrank.features.ray_join`
(broadcast or hash-partitioned joins, chosen per view from its size); each partition runs the
DuckDB join of the embedded store (:mod:`searchrank.features.asof_join`), so both stores share
one definition of "the value at that moment".

Configure it in ``feature_store.ray.yaml``::

    offline_store:
      type: searchrank.features.ray_offline_store.AsofRayOfflineStore
      data_root: s3://bucket/features     # as the DuckDB store's data_root
      ray_address: ray://head:10001       # unset: a local Ray on this machine
      broadcast_join_threshold_mb: 256
    batch_engine:
      type: searchrank.features.ray_offline_store.AsofRayComputeEngine
      ray_address: ray://head:10001
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any, ClassVar

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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

from searchrank.core.errors import InputError
from searchrank.features import ray_join
from searchrank.features.asof_join import EVENT_TIMESTAMP, entity_table
from searchrank.features.offline_store import resolve_path, view_join


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


class AsofRayRetrievalJob(RayRetrievalJob):
    """Feast's Ray retrieval job over a plan (:data:`ray_join.Plan`) run on the cluster.

    ``to_arrow`` and ``to_df`` run the plan in a task on the cluster (see
    :func:`ray_join.on_cluster`), bring its rows here in entity order and apply the on-demand
    feature views here, exactly as the DuckDB store's job does. ``persist`` writes the rows from
    the workers. ``to_ray_dataset`` builds the dataset in this process, which a local Ray allows
    and a Ray Client driver (``ray://``) does not. A job without :data:`ROW_ID` (materialization's
    pulls) has no order to restore; ``empty`` is the result without rows.
    """

    def __init__(
        self,
        plan: ray_join.Plan,
        config: AsofRayOfflineStoreConfig,
        on_demand_feature_views: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata | None,
        ordered: bool,
        empty: pa.Table,
    ) -> None:
        super().__init__(plan, staging_location=config.storage_path, config=config)
        self._plan = plan
        self._odfvs = on_demand_feature_views
        self._full_names = full_feature_names
        self._meta = metadata
        self._ordered = ordered
        self._empty = empty

    @property
    def plan(self) -> ray_join.Plan:
        return self._plan

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
        return ray_join.ordered_dataset(self._plan, self._ordered)

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return ray_join.on_cluster(ray_join.collect, self._plan, self._ordered, self._empty)

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def to_arrow(self, validation_reference: Any = None, timeout: int | None = None) -> pa.Table:
        return RetrievalJob.to_arrow(self, validation_reference, timeout)

    def to_df(self, validation_reference: Any = None, timeout: int | None = None) -> pd.DataFrame:
        return RetrievalJob.to_df(self, validation_reference, timeout)

    def persist(
        self, storage: Any, allow_overwrite: bool | None = False, timeout: int | None = None
    ) -> str:
        if self._odfvs:
            raise InputError(
                "persist",
                [o.name for o in self._odfvs],
                "on-demand views are applied in to_arrow; persist writes the joined rows only",
            )
        uri = storage.file_options.uri
        ray_join.on_cluster(ray_join.write_parquet, self._plan, self._ordered, uri)
        return str(uri)


CLIENT_ATTEMPTS = 3
"""Tries to open a Ray Client connection (``ray://``): its server forks a process per client
at start, which sometimes dies at once (seen on this machine; the fork is Ray's
ray-project/ray#63408), and a new connection then succeeds."""


def connect_ray(config: Any) -> None:
    """Start or join the Ray cluster the configuration names, through Feast's initializer.

    Feast remembers that it initialised Ray even after something else shut Ray down (a training
    step in the same process); then it starts again.
    """
    import ray
    from feast.infra.ray_initializer import ensure_ray_initialized, shutdown_ray

    settings = getattr(config, "offline_store", config)
    client = str(getattr(settings, "ray_address", None) or "").startswith("ray://")
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ensure_ray_initialized(config, force_reinit=not ray.is_initialized())
            return
        except ConnectionAbortedError:
            if not client or attempt == CLIENT_ATTEMPTS:
                raise
            shutdown_ray()


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
        sizing = _sizing(store_config)
        plans = [ray_join.plan_join(v, sizing) for v in views]
        empty = ray_join.empty_result(entity, views, EVENT_TIMESTAMP)
        plan: ray_join.Plan
        if entity.num_rows:
            plan = partial(ray_join.point_in_time_join, entity, plans, EVENT_TIMESTAMP, sizing.cpus)
        else:
            plan = partial(ray_join.entity_dataset, empty, sizing.cpus)
        timestamps = entity.column(EVENT_TIMESTAMP)
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=[c for c in entity.column_names if c != EVENT_TIMESTAMP],
            min_event_timestamp=pc.min(timestamps).as_py(),
            max_event_timestamp=pc.max(timestamps).as_py(),
        )
        live_odfvs = [o for o in odfvs if o.mode != "substrait"]
        return AsofRayRetrievalJob(
            plan, store_config, live_odfvs, full_feature_names, metadata, True, empty
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
    """The rows materialization reads, as a lazy Ray dataset (see :func:`ray_join.pull`)."""
    store_config = config.offline_store
    assert isinstance(store_config, AsofRayOfflineStoreConfig)
    connect_ray(config)
    RayResourceManager(store_config).configure_ray_context()
    path = resolve_path(config, source)
    columns = ray_join.PulledColumns(keys, features, timestamp, created)
    plan = partial(ray_join.pull, path, columns, interval, latest, _sizing(store_config))
    empty = ray_join.pull_empty(path, columns, interval)
    return AsofRayRetrievalJob(plan, store_config, [], False, None, False, empty)


def _sizing(config: AsofRayOfflineStoreConfig) -> ray_join.Sizing:
    import ray

    return ray_join.Sizing(
        broadcast_mb=config.broadcast_join_threshold_mb or 0,
        partition_mb=config.target_partition_size_mb or 64,
        parallelism=config.max_parallelism_multiplier or 2,
        cpus=max(1, int(ray.cluster_resources().get("CPU", 1))),
    )


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
            write = partial(
                write_online, view=view, online_store=self.online_store, config=self.repo_config
            )
            ray_join.on_cluster(ray_join.for_each_block, pulled.plan, write)
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
