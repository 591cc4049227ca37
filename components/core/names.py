"""Names that cross component, pipeline, Feast and serving boundaries, defined once.

Everything another stage looks up by name lives here: the Feast project and feature service
names, the container image every component runs in, and the metadata keys that components write
on their output artifacts. Import this module freely: it needs only the standard library.
"""

from __future__ import annotations

from enum import StrEnum
from importlib import metadata

PACKAGE_VERSION = metadata.version("searchrank")

FEAST_PROJECT = "searchrank"

RANKER_FEATURE_SERVICE = "ranker_v1"
"""The features the transformer ranker and its baselines train and serve on."""

RETRIEVER_FEATURE_SERVICE = "retriever_v1"
"""The features of the two-tower retriever's user and item towers."""

IMAGE_REPOSITORY = "searchrank/components"
COMPONENT_IMAGE = f"{IMAGE_REPOSITORY}:{PACKAGE_VERSION}"
"""The one base image of every component: the searchrank package installed, tagged by version."""


class MetadataKey(StrEnum):
    """Keys of the metadata that components set on their output artifacts (shown in the KFP UI)."""

    ROWS = "rows"
    COLUMNS = "columns"
    FEATURE_SERVICE = "feature_service"
    EVENT_TIME_MIN = "event_time_min"
    EVENT_TIME_MAX = "event_time_max"
    ROWS_WITH_MISSING_FEATURES = "rows_with_missing_features"
    FEATURE_VIEWS = "feature_views"
    MATERIALIZED_UNTIL = "materialized_until"
