"""The embedded online store's own read: the same key bytes as Feast's, the same values back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import get_online_store_from_config
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.protos.feast.types.Value_pb2 import ValueType

from searchrank.features import tables as T
from searchrank.features.online_store import BulkSqliteOnlineStore, EntityKeys
from searchrank.features.store import open_store


def feast_key(names: list[str], values: list[ValueProto]) -> bytes:
    return serialize_entity_key(EntityKeyProto(join_keys=names, entity_values=values), 3)


def test_entity_keys_are_feasts_serialized_keys() -> None:
    # Two keys given out of name order: Feast sorts them by name.
    pairs = EntityKeys([("user_id", ValueType.INT64), ("item_id", ValueType.INT64)])
    rows = [(7, 3), (-1, 2**40), (0, 0)]
    assert pairs.encode(rows) == [
        feast_key(["user_id", "item_id"], [ValueProto(int64_val=u), ValueProto(int64_val=i)])
        for u, i in rows
    ]
    queries = EntityKeys([("query", ValueType.STRING)])
    texts = ["daft punk", "beyoncé", ""]
    assert queries.encode([(q,) for q in texts]) == [
        feast_key(["query"], [ValueProto(string_val=q)]) for q in texts
    ]
    counts = EntityKeys([("day", ValueType.INT32)])
    assert counts.encode([(5,), (-3,)]) == [
        feast_key(["day"], [ValueProto(int32_val=v)]) for v in (5, -3)
    ]


def test_entity_keys_refuse_a_type_the_service_does_not_look_up() -> None:
    with pytest.raises(ValueError, match="only INT64, INT32 and STRING"):
        EntityKeys([("at", ValueType.UNIX_TIMESTAMP)])


def test_read_keys_returns_what_feasts_online_read_returns(fresh_repo: Path) -> None:
    store = open_store(fresh_repo)
    online = get_online_store_from_config(store.config.online_store)
    assert isinstance(online, BulkSqliteOnlineStore)
    view = store.get_feature_view(T.USER_ITEM_STATS)
    names = ["user_id", "item_id"]

    def proto(user: int, item: int) -> EntityKeyProto:
        return EntityKeyProto(
            join_keys=names, entity_values=[ValueProto(int64_val=user), ValueProto(int64_val=item)]
        )

    at = datetime(2026, 11, 1, tzinfo=UTC)

    def values(user: int, item: int) -> dict[str, ValueProto]:
        return {"clicks": ValueProto(int64_val=user * item), "saves": ValueProto(int64_val=user)}

    written = [(proto(u, i), values(u, i), at, None) for u, i in [(1, 10), (1, 11), (2, 10)]]
    online.online_write_batch(store.config, view, written, None)

    asked = [(1, 10), (2, 10), (3, 10), (1, 11)]  # (3, 10) was never written
    keys = EntityKeys([("user_id", ValueType.INT64), ("item_id", ValueType.INT64)])
    found = online.read_keys(store.config, view, keys.encode(asked))
    expected = online.online_read(store.config, view, [proto(u, i) for u, i in asked])
    assert found == [values for _, values in expected]
    assert found[2] is None
    assert found[3] == {"clicks": ValueProto(int64_val=11), "saves": ValueProto(int64_val=1)}
