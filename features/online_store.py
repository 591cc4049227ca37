"""The embedded online store: Feast's SQLite store, written in bulk.

Feast's ``SqliteOnlineStore.online_write_batch`` upserts one (entity, feature) row per
``execute`` call. Materializing the demo's data (400,000 entity rows, 2.5 million feature rows)
spent 35 of its 80 profiled seconds in those calls. :class:`BulkSqliteOnlineStore` writes the same
rows, to the same tables, in one ``executemany`` per batch; reading is Feast's own. Select it in
``feature_store.yaml`` with::

    online_store:
      type: searchrank.features.online_store.BulkSqliteOnlineStore
      path: data/online_store.db

Feast accepts a store whose name ends in ``SqliteOnlineStore`` wherever it expects SQLite. The
store falls back to Feast's row-by-row write where Feast's write does more than store a value
(vector search or the numeric column of the OpenAI-compatible store), which searchrank's
repositories do not enable.

The search service reads it through :meth:`BulkSqliteOnlineStore.read_keys` as well as Feast's
``online_read``: a search's 200 user × item lookups spent 1.6 ms building and serializing
Feast's entity-key protos and 1.3 ms in a query that also converts every row's timestamp, which
the service never reads. :class:`EntityKeys` writes the same key bytes from plain values.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from feast import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
)
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.protos.feast.types.Value_pb2 import ValueType
from feast.repo_config import RepoConfig
from feast.utils import to_naive_utc

STORE_TYPE = "searchrank.features.online_store.BulkSqliteOnlineStore"

WRITE_CACHE_KIB = 512 * 1024
"""SQLite's page cache while writing (KiB): room for the demo's largest table and its index."""

Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

_COUNT = struct.Struct("<I")
_INT64 = struct.Struct("<IIq")
_INT32 = struct.Struct("<IIi")
_LENGTH = struct.Struct("<II")


def _int64(value: object) -> bytes:
    return _INT64.pack(ValueType.INT64, 8, value)


def _int32(value: object) -> bytes:
    return _INT32.pack(ValueType.INT32, 4, value)


def _string(value: object) -> bytes:
    encoded = str(value).encode("utf8")
    return _LENGTH.pack(ValueType.STRING, len(encoded)) + encoded


VALUE_WRITERS: dict[int, Callable[[object], bytes]] = {
    ValueType.INT64: _int64,
    ValueType.INT32: _int32,
    ValueType.STRING: _string,
}
"""The bytes of one entity value (its type, its length, the value) by Feast value type."""


class EntityKeys:
    """Feast's serialized entity keys (``serialize_entity_key``, version 3) for rows of plain
    values, without building an ``EntityKey`` proto per row.

    Feast writes the number of join keys, each key's name (sorted by name) as a string value,
    then each value in the same order: type, length and bytes, little-endian.

    Args:
        keys: the join keys as (name, Feast value type) pairs, in the order rows give values.

    Raises:
        ValueError: a value type other than INT64, INT32 or STRING.
    """

    def __init__(self, keys: Sequence[tuple[str, int]]) -> None:
        unsupported = [(name, kind) for name, kind in keys if kind not in VALUE_WRITERS]
        if unsupported:
            raise ValueError(f"entity keys {unsupported}: only INT64, INT32 and STRING are read")
        order = sorted(range(len(keys)), key=lambda j: keys[j][0])
        header = [_COUNT.pack(len(keys))]
        for j in order:
            header.append(_string(keys[j][0]))
        self._header = b"".join(header)
        self._order = order
        self._writers = [VALUE_WRITERS[keys[j][1]] for j in order]

    def encode(self, rows: Sequence[Sequence[object]]) -> list[bytes]:
        """Each row's key bytes (a row holds one value per join key, in the constructor's
        order)."""
        header, order, writers = self._header, self._order, self._writers
        if len(order) == 1:
            write = writers[0]
            return [header + write(row[0]) for row in rows]
        return [
            header + b"".join(write(row[j]) for j, write in zip(order, writers, strict=True))
            for row in rows
        ]


class BulkSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Feast's SQLite settings, under this store's type."""

    type: Literal["searchrank.features.online_store.BulkSqliteOnlineStore"] = STORE_TYPE  # type: ignore[assignment]


class BulkSqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite online store with a bulk write (see the module docstring)."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: Sequence[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        store = config.online_store
        if store.vector_enabled or store.enable_openai_compatible_store:
            super().online_write_batch(config, table, list(data), progress)
            return
        version = config.entity_key_serialization_version
        rows = []
        for key, values, event_ts, created_ts in data:
            serialized = serialize_entity_key(key, entity_key_serialization_version=version)
            event, created = to_naive_utc(event_ts), created_ts and to_naive_utc(created_ts)
            rows += [
                (
                    serialized,
                    name,
                    value.SerializeToString(),
                    extract_text_and_num(value, False)[0],
                    event,
                    created,
                )
                for name, value in values.items()
            ]
        # In key order, each insert lands next to the previous one in the table's index.
        rows.sort(key=lambda row: (row[0], row[1]))
        name = _table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        upsert = (
            f"INSERT INTO {_quote_id(name)} "
            "(entity_key, feature_name, value, value_text, event_ts, created_ts) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
            "value = excluded.value, value_text = excluded.value_text, "
            "event_ts = excluded.event_ts, created_ts = excluded.created_ts;"
        )
        connection = self._get_conn(config)
        # The table and its key index outgrow SQLite's default 2 MB page cache at some 100,000
        # rows, after which every insert reads pages back; a large cache keeps them in memory.
        connection.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
        with connection:
            connection.executemany(upsert, rows)
        if progress:
            progress(len(data))

    def read_keys(
        self, config: RepoConfig, table: FeatureView, keys: Sequence[bytes]
    ) -> list[dict[str, ValueProto] | None]:
        """The stored features of each serialized entity key (:class:`EntityKeys`), None for
        a key the store lacks: what ``online_read`` gives, without the event timestamps."""
        name = _table_id(
            config.project, table, config.registry.enable_online_feature_view_versioning
        )
        select = (
            f"SELECT entity_key, feature_name, value FROM {_quote_id(name)} "
            f"WHERE entity_key IN ({','.join('?' * len(keys))})"
        )
        stored: dict[bytes, dict[str, ValueProto]] = {}
        for key, feature, blob in self._get_conn(config).execute(select, list(keys)).fetchall():
            value = ValueProto()
            value.ParseFromString(blob)
            stored.setdefault(key, {})[feature] = value
        return [stored.get(key) for key in keys]
