"""The closed value sets of the production data contract.

Each categorical column of the parquet tables (:mod:`searchrank.features.tables`) may only hold
values from one of the sets below; the Feast fields carry them as domain tags and
``validate_data`` rejects data outside them. The contract owns these vocabularies: every data
producer (the synthetic generator, the real-data adapters) must draw its values from here, and
nothing here comes from a producer.

A set's order carries no meaning for the contract, but the synthetic generator lays out its
weight tables (genre shares, genre-mood affinities, market shares) and its integer codes in the
order given here. Changing a set therefore changes the synthetic data for a seed; extend the
generator's tables with it.
"""

from __future__ import annotations

ITEM_TYPES: tuple[str, ...] = ("track", "album", "artist", "show", "episode")
"""What a searchable item is (catalogue ``item_type``)."""

GENRES: tuple[str, ...] = (
    "pop",
    "rock",
    "hip hop",
    "electronic",
    "jazz",
    "classical",
    "country",
    "latin",
    "r&b",
    "metal",
    "indie",
    "folk",
)
"""Music genres: the catalogue ``genre`` of music items and a listener's ``top_genre``."""

PODCAST_TOPICS: tuple[str, ...] = (
    "true crime",
    "history",
    "comedy",
    "technology",
    "business",
    "news",
    "health",
    "science",
    "sports",
    "education",
)
"""Podcast topics: the catalogue ``genre`` of shows and episodes."""

CATALOGUE_GENRES: tuple[str, ...] = (*GENRES, *PODCAST_TOPICS)
"""Every value of the catalogue ``genre`` column: a music genre or a podcast topic."""

MOODS: tuple[str, ...] = (
    "chill",
    "workout",
    "sad",
    "happy",
    "focus",
    "party",
    "sleep",
    "romantic",
    "road trip",
    "study",
)
"""Moods a track may be tagged with (catalogue ``mood``; missing for most items)."""

MARKETS: tuple[str, ...] = ("US", "GB", "DE", "SE", "BR", "MX", "JP", "FR")
"""Markets (ISO 3166-1 alpha-2 country codes) of items and listeners."""

LANGUAGES: tuple[str, ...] = ("de", "en", "es", "fr", "ja", "pt", "sv")
"""Languages (ISO 639-1 codes) of catalogue items."""

VERSION_TYPES: tuple[str, ...] = ("original", "live", "remaster", "acoustic", "remix", "cover")
"""Which version of a recording an item is (catalogue ``version_type``)."""

ACTIVITY_BUCKETS: tuple[str, ...] = ("cold_start", "light", "medium", "heavy")
"""The observed activity bucket of a listener (``user_stats``), from account age and searches."""
