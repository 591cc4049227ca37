"""Names and time conventions of the parquet tables behind the Feast feature repository.

The generator and the real-data adapters write these files into one data folder; the Feast
definitions read them from there. Keeping the names here means neither side spells them twice.
"""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

from searchrank.core import schema as S
from searchrank.core.contract import feature_column
from searchrank.core.domain import Domain, count, one_of, rate
from searchrank.core.schema import ENTITY_SCHEMA, TIMESTAMP_TYPE
from searchrank.features import vocabulary as V

CATALOGUE = "catalogue"
"""One row per item, stamped with its release time (the ``item_catalogue`` feature view)."""
USERS = "users"
"""One row per listener with public profile fields."""
SEARCHES = "searches"
"""One row per search: who, when, the typed and normalized query, the hidden intent."""
IMPRESSIONS = "impressions"
"""One row per shown candidate with its position and graded label: the entity dataframe."""
GROUND_TRUTH = "ground_truth"
"""Simulated data only, for evaluation: each impression's hidden relevance and true grade
(:mod:`searchrank.features.generator.environment`). Never a feature source."""
USER_STATS = "user_stats"
ITEM_STATS = "item_stats"
QUERY_STATS = "query_stats"
USER_ITEM_STATS = "user_item_stats"
ITEM_CATALOGUE = "item_catalogue"
"""The feature view over :data:`CATALOGUE`."""
QUERY_ITEM_MATCH = "query_item_match"
"""The on-demand view of query–item text-match features (computed, no table)."""

SNAPSHOT_TABLES: tuple[str, ...] = (USER_STATS, ITEM_STATS, QUERY_STATS, USER_ITEM_STATS)
ALL_TABLES: tuple[str, ...] = (
    CATALOGUE,
    USERS,
    SEARCHES,
    IMPRESSIONS,
    GROUND_TRUTH,
    *SNAPSHOT_TABLES,
)

MANIFEST = "manifest.json"

SNAPSHOT_DELAY = timedelta(hours=2)
"""A daily snapshot covers events up to midnight and becomes available two hours later; it is
stamped with the time it became available, so a search at 01:00 still sees the day before's."""

POPULARITY_COLUMN = feature_column(ITEM_STATS, "popularity")
NAME_COLUMN = feature_column(ITEM_CATALOGUE, "name")
ARTIST_COLUMN = feature_column(ITEM_CATALOGUE, "artist_name")
ITEM_TYPE_COLUMN = feature_column(ITEM_CATALOGUE, "item_type")
GENRE_COLUMN = feature_column(ITEM_CATALOGUE, "genre")
MARKET_COLUMN = feature_column(USER_STATS, "market")
ACTIVITY_COLUMN = feature_column(USER_STATS, "activity_bucket")
EXPLICIT_COLUMN = feature_column(ITEM_CATALOGUE, "explicit")
EXPLICIT_FILTER_COLUMN = feature_column(USER_STATS, "explicit_filter")
"""Training-set columns that code reads by name: baselines, evaluation slices, the service's
response fields and the explicit-content policy (:mod:`searchrank.core.content`). Everything
else is read through the feature contract."""

CREATED_COLUMN = "created"
TIMESTAMP_COLUMN = "event_timestamp"
FEATURE_TIMESTAMP = S.FEATURE_TIMESTAMP


def file_name(table: str) -> str:
    """The file name of a table inside a data folder."""
    return f"{table}.parquet"


def _timestamps() -> list[pa.Field]:
    return [
        pa.field(TIMESTAMP_COLUMN, TIMESTAMP_TYPE),
        pa.field(CREATED_COLUMN, TIMESTAMP_TYPE),
        pa.field(FEATURE_TIMESTAMP, TIMESTAMP_TYPE),
    ]


SCHEMAS: dict[str, pa.Schema] = {
    CATALOGUE: pa.schema(
        [
            ("item_id", pa.int64()),
            ("item_type", pa.string()),
            ("name", pa.string()),
            ("artist_name", pa.string()),
            ("genre", pa.string()),
            ("keywords", pa.string()),
            ("mood", pa.string()),
            ("market", pa.string()),
            ("language", pa.string()),
            ("release_timestamp", TIMESTAMP_TYPE),
            (FEATURE_TIMESTAMP, TIMESTAMP_TYPE),
            ("duration_s", pa.int64()),
            ("explicit", pa.bool_()),
            ("version_type", pa.string()),
            ("original_item_id", pa.int64()),
            ("creator_item_id", pa.int64()),
        ]
    ),
    USERS: pa.schema(
        [("user_id", pa.int64()), ("market", pa.string()), ("signup_timestamp", TIMESTAMP_TYPE)]
    ),
    SEARCHES: pa.schema(
        [
            ("search_id", pa.int64()),
            ("user_id", pa.int64()),
            (TIMESTAMP_COLUMN, TIMESTAMP_TYPE),
            ("raw_query", pa.string()),
            ("query", pa.string()),
            ("intent", pa.string()),
            ("query_form", pa.string()),
            ("target_item_id", pa.int64()),
            ("n_candidates", pa.int32()),
        ]
    ),
    IMPRESSIONS: ENTITY_SCHEMA,
    GROUND_TRUTH: pa.schema(
        [
            (S.SEARCH_ID, pa.int64()),
            (S.ITEM_ID, pa.int64()),
            (S.HIDDEN_RELEVANCE, pa.float64()),
            (S.SAVE_SCALE, pa.float64()),
            (S.TRUE_GRADE, pa.float32()),
        ]
    ),
    USER_STATS: pa.schema(
        [
            ("user_id", pa.int64()),
            ("account_age_days", pa.float32()),
            ("searches_7d", pa.int64()),
            ("clicks_7d", pa.int64()),
            ("streams_7d", pa.int64()),
            ("saves_30d", pa.int64()),
            ("clicks_per_search_30d", pa.float32()),
            ("podcast_share_30d", pa.float32()),
            ("top_genre", pa.string()),
            ("top_genre_share", pa.float32()),
            ("activity_bucket", pa.string()),
            ("market", pa.string()),
            ("explicit_filter", pa.bool_()),
            *_timestamps(),
        ]
    ),
    ITEM_STATS: pa.schema(
        [
            ("item_id", pa.int64()),
            ("popularity", pa.float32()),
            ("impressions_7d", pa.int64()),
            ("clicks_7d", pa.int64()),
            ("streams_7d", pa.int64()),
            ("saves_30d", pa.int64()),
            ("ctr_7d", pa.float32()),
            ("days_since_release", pa.float32()),
            *_timestamps(),
        ]
    ),
    QUERY_STATS: pa.schema(
        [
            ("query", pa.string()),
            ("searches_7d", pa.int64()),
            ("searches_30d", pa.int64()),
            ("click_rate_30d", pa.float32()),
            ("stream_rate_30d", pa.float32()),
            *_timestamps(),
        ]
    ),
    USER_ITEM_STATS: pa.schema(
        [
            ("user_id", pa.int64()),
            ("item_id", pa.int64()),
            ("clicks", pa.int64()),
            ("streams", pa.int64()),
            ("saves", pa.int64()),
            ("artist_affinity", pa.float32()),
            ("genre_affinity", pa.float32()),
            *_timestamps(),
        ]
    ),
}
"""The Arrow schema of every table; the Feast feature views declare the same types."""

_AUDIT = Domain(audit=True, required=False)

DOMAINS: dict[str, dict[str, Domain]] = {
    CATALOGUE: {
        "item_type": one_of(V.ITEM_TYPES, required=True),
        "name": Domain(required=True),
        "artist_name": Domain(required=True),
        "genre": one_of(V.CATALOGUE_GENRES, required=True),
        "keywords": Domain(required=True),
        "mood": one_of(V.MOODS, max_null_rate=0.95),
        "market": one_of(V.MARKETS, required=True),
        "language": one_of(V.LANGUAGES, required=True),
        "duration_s": count(required=True),
        "explicit": Domain(required=True),
        "version_type": one_of(V.VERSION_TYPES, required=True),
        FEATURE_TIMESTAMP: _AUDIT,
    },
    USER_STATS: {
        "account_age_days": count(),
        "searches_7d": count(),
        "clicks_7d": count(),
        "streams_7d": count(),
        "saves_30d": count(),
        "clicks_per_search_30d": count(),
        "podcast_share_30d": rate(),
        "top_genre": one_of(V.GENRES),
        "top_genre_share": rate(),
        "activity_bucket": one_of(V.ACTIVITY_BUCKETS),
        "market": one_of(V.MARKETS),
        # The listener's setting: on, the service never shows them explicit items.
        "explicit_filter": Domain(),
        FEATURE_TIMESTAMP: _AUDIT,
    },
    ITEM_STATS: {
        "popularity": rate(0.0, 100.0),
        "impressions_7d": count(),
        "clicks_7d": count(),
        "streams_7d": count(),
        "saves_30d": count(),
        "ctr_7d": rate(),
        "days_since_release": count(),
        FEATURE_TIMESTAMP: _AUDIT,
    },
    QUERY_STATS: {
        # Most queries are new: long-tail misspellings and prefixes have no history.
        "searches_7d": count(max_null_rate=0.95),
        "searches_30d": count(max_null_rate=0.95),
        "click_rate_30d": Domain(min=0.0, max=1.0, max_null_rate=0.95),
        "stream_rate_30d": Domain(min=0.0, max=1.0, max_null_rate=0.95),
        FEATURE_TIMESTAMP: _AUDIT,
    },
    USER_ITEM_STATS: {
        # Null until a listener has been shown the item once: most pairs are first impressions.
        "clicks": count(max_null_rate=0.99),
        "streams": count(max_null_rate=0.99),
        "saves": count(max_null_rate=0.99),
        "artist_affinity": Domain(min=0.0, max=1.0, max_null_rate=0.99),
        "genre_affinity": Domain(min=0.0, max=1.0, max_null_rate=0.99),
        FEATURE_TIMESTAMP: _AUDIT,
    },
}
"""The value domain of every feature column; the Feast fields carry them as tags. The closed
value sets come from :mod:`searchrank.features.vocabulary`."""
