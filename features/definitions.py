"""The Feast feature repository of searchrank: entities, sources, feature views, the request-time
text-match view and the versioned feature services.

``feast apply`` in this folder registers everything defined here (Feast imports this file as a
plain module; ``.feastignore`` keeps it away from the package's other modules). The pipeline
components apply the same objects through :func:`searchrank.features.store.apply_definitions`.

Source paths are relative: the offline store resolves them against its configured data root
(``features/data`` on the embedded default, object storage on a cluster), so the same
definitions serve every environment.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, FeastType, Float32, Int64, String, UnixTimestamp

from searchrank.core import schema as S
from searchrank.core.domain import rate
from searchrank.core.names import RANKER_FEATURE_SERVICE
from searchrank.core.text import TEXT_MATCH_FEATURES
from searchrank.features import tables as T

SNAPSHOT_TTL = timedelta(days=2)
"""Daily snapshots older than this are stale: a point-in-time join returns nulls instead."""
PAIR_TTL = timedelta(days=90)

_FEAST_TYPES: dict[pa.DataType, FeastType] = {
    pa.int64(): Int64,
    pa.float32(): Float32,
    pa.string(): String,
    pa.bool_(): Bool,
    S.TIMESTAMP_TYPE: UnixTimestamp,
}


def _fields(table: str) -> list[Field]:
    """Feast fields for the feature columns of ``table``: those given a domain in ``tables``.

    Each field carries its value domain as tags, which the data contract of ``validate_data``
    reads back from the feature service.
    """
    schema = T.SCHEMAS[table]
    return [
        Field(name=name, dtype=_FEAST_TYPES[schema.field(name).type], tags=domain.to_tags())
        for name, domain in T.DOMAINS[table].items()
    ]


def _source(
    table: str, timestamp_field: str = T.TIMESTAMP_COLUMN, created: str = T.CREATED_COLUMN
) -> FileSource:
    return FileSource(
        name=table,
        path=T.file_name(table),
        timestamp_field=timestamp_field,
        created_timestamp_column=created,
    )


user = Entity(
    name="user", join_keys=[S.USER_ID], value_type=ValueType.INT64, description="A listener."
)
item = Entity(
    name="item",
    join_keys=[S.ITEM_ID],
    value_type=ValueType.INT64,
    description="A track, album, artist, podcast show or episode.",
)
query = Entity(
    name="query",
    join_keys=[S.QUERY],
    value_type=ValueType.STRING,
    description="A normalized search text (see searchrank.core.text).",
)

user_stats = FeatureView(
    name=T.USER_STATS,
    entities=[user],
    ttl=SNAPSHOT_TTL,
    schema=_fields(T.USER_STATS),
    source=_source(T.USER_STATS),
    description="Daily listener activity, taste and cold-start bucket.",
)

item_catalogue = FeatureView(
    name=T.ITEM_CATALOGUE,
    entities=[item],
    ttl=timedelta(0),  # catalogue metadata never expires
    schema=_fields(T.CATALOGUE),
    source=_source(T.CATALOGUE, timestamp_field="release_timestamp", created=""),
    description="Static item metadata, valid from the release time.",
)

item_stats = FeatureView(
    name=T.ITEM_STATS,
    entities=[item],
    ttl=SNAPSHOT_TTL,
    schema=_fields(T.ITEM_STATS),
    source=_source(T.ITEM_STATS),
    description="Daily item popularity and search engagement.",
)

query_stats = FeatureView(
    name=T.QUERY_STATS,
    entities=[query],
    ttl=SNAPSHOT_TTL,
    schema=_fields(T.QUERY_STATS),
    source=_source(T.QUERY_STATS),
    description="Daily volume and success rates of a search text.",
)

user_item_stats = FeatureView(
    name=T.USER_ITEM_STATS,
    entities=[user, item],
    ttl=PAIR_TTL,
    schema=_fields(T.USER_ITEM_STATS),
    source=_source(T.USER_ITEM_STATS),
    description="The listener's history with the item, its artist and its genre.",
)

search_request = RequestSource(
    name="search_request",
    schema=[Field(name=S.QUERY_TEXT, dtype=String)],
    description="The search text, known only when the request arrives.",
)


@on_demand_feature_view(
    sources=[item_catalogue[["name", "artist_name", "keywords"]], search_request],
    schema=[Field(name=f, dtype=Float32) for f in TEXT_MATCH_FEATURES],
    # Feast rejects tags on on-demand fields, so the domain of all of them is a view tag.
    tags=rate(required=True).to_tags(),
    mode="pandas",
    description="Query–item text match, computed by the same code in training and serving.",
)
def query_item_match(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function's source in the registry and rebuilds it from there, so
    # everything it uses is imported in its body.
    import pandas as pd

    from searchrank.core.text import text_match

    features = text_match(
        inputs["query_text"].tolist(),
        inputs["name"].tolist(),
        inputs["artist_name"].tolist(),
        inputs["keywords"].tolist(),
    )
    return pd.DataFrame(features, index=inputs.index)


ranker_v1 = FeatureService(
    name=RANKER_FEATURE_SERVICE,
    features=[
        user_stats,
        item_catalogue,
        item_stats,
        query_stats,
        user_item_stats,
        query_item_match,
    ],
    description="Everything the listwise ranker and its baselines see, version 1.",
)

ENTITIES = [user, item, query]
FEATURE_VIEWS = [user_stats, item_catalogue, item_stats, query_stats, user_item_stats]
ON_DEMAND_FEATURE_VIEWS = [query_item_match]
FEATURE_SERVICES = [ranker_v1]
ALL_OBJECTS = [
    *ENTITIES,
    *FEATURE_VIEWS,
    search_request,
    *ON_DEMAND_FEATURE_VIEWS,
    *FEATURE_SERVICES,
]
"""Everything to register, in an order ``FeatureStore.apply`` accepts."""
