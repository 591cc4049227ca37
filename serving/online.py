"""Online features for one search, in the columns and values ``fetch_features`` gives training.

A ranker's feature service mixes three kinds of features, and each is fetched the fastest way
that still reads the Feast online store:

- **item features** (views keyed by the item alone: catalogue metadata, daily item statistics)
  are the same for every request. They live in an in-process cache, loaded from the online store
  at start-up in large batches and reloaded every ``refresh_seconds`` in the background; an id
  the cache lacks is looked up on the request that asks for it;
- **request features** (views keyed by the user, the query or the user × item pair) are fetched
  in one batched ``get_online_features`` call per request, one entity row per candidate;
- **request-time features** (the query–item text match, a Feast on-demand view) are computed by
  :func:`~searchrank.core.text.text_match`, the function that view calls in training.

The result is a frame shaped like a training set's rows, so the feature processor saved with
the model encodes it exactly as it encoded training data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.text import text_match

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

TEXT_MATCH_VIEW = "query_item_match"
"""The on-demand view whose features :func:`text_match` computes (``features/definitions.py``)."""
TEXT_INPUTS = ("name", "artist_name", "keywords")
"""The catalogue fields the text match reads, in :func:`text_match`'s argument order."""
LOOKUP_BATCH = 5_000


@dataclass(frozen=True)
class ServiceLayout:
    """Which feature references of a feature service come from where (see the module docstring)."""

    item_views: tuple[str, ...]
    user_views: tuple[str, ...]
    """Views keyed by the user alone: when all are empty, the listener is new to us."""
    item_features: tuple[str, ...]
    """``view:feature`` references served from the item cache."""
    request_features: tuple[str, ...]
    """``view:feature`` references fetched per request."""
    columns: tuple[str, ...]
    """Every feature column of the service, as ``view__feature``, in the service's order."""
    catalogue_view: str
    """The item view holding the text-match inputs."""

    @classmethod
    def of(cls, store: FeatureStore, feature_service: str) -> ServiceLayout:
        service = store.get_feature_service(feature_service)
        on_demand = {v.name for v in store.list_on_demand_feature_views()}
        item_views, user_views, item_features, request_features, columns = [], [], [], [], []
        catalogue_view = ""
        for projection in service.feature_view_projections:
            view = projection.name_to_use()
            names = [f.name for f in projection.features]
            columns += [f"{view}__{n}" for n in names]
            if projection.name in on_demand:
                if projection.name != TEXT_MATCH_VIEW:
                    raise ValueError(
                        f"on-demand view {projection.name!r} has no online implementation"
                    )
                continue
            refs = [f"{projection.name}:{n}" for n in names]
            entities = store.get_feature_view(projection.name).entities
            if entities == ["user"]:
                user_views.append(view)
            if entities == ["item"]:
                item_views.append(view)
                item_features += refs
                if set(TEXT_INPUTS) <= set(names):
                    catalogue_view = view
            else:
                request_features += refs
        return cls(
            tuple(item_views),
            tuple(user_views),
            tuple(item_features),
            tuple(request_features),
            tuple(columns),
            catalogue_view,
        )


class ItemCache:
    """Item features of known items, by item id, refreshed from the online store."""

    def __init__(self, store: FeatureStore, layout: ServiceLayout, item_ids: Sequence[int]) -> None:
        self._store = store
        self._layout = layout
        self._lock = threading.Lock()
        self._frame = self._fetch(np.asarray(item_ids, dtype=np.int64))
        self.loaded_at = time.time()

    def __len__(self) -> int:
        return len(self._frame)

    @property
    def frame(self) -> pd.DataFrame:
        """The cached rows (item id index, ``view__feature`` columns); replaced, never mutated."""
        return self._frame

    def rows(self, item_ids: Sequence[int]) -> pd.DataFrame:
        """The rows of ``item_ids`` in order; ids missing from the cache are looked up once, and
        those the online store does not know either come back as rows of nulls."""
        frame = self._frame
        ids = pd.Index(np.asarray(item_ids, dtype=np.int64))
        missing = ids.difference(frame.index)
        if len(missing):
            found = self._fetch(missing.to_numpy())
            if len(found):
                with self._lock:
                    frame = pd.concat([self._frame, found])
                    self._frame = frame = frame[~frame.index.duplicated(keep="last")]
        return frame.reindex(ids)

    def refresh(self) -> None:
        """Reload every cached item from the online store."""
        fresh = self._fetch(self._frame.index.to_numpy())
        with self._lock:
            self._frame = fresh
        self.loaded_at = time.time()

    def start_refreshing(self, every_seconds: float) -> threading.Thread:
        """Refresh in a daemon thread every ``every_seconds``; failures are logged and retried."""

        def loop() -> None:
            while True:
                time.sleep(every_seconds)
                try:
                    self.refresh()
                except Exception:  # a failed refresh keeps serving the last good cache
                    log.exception("refreshing the item feature cache failed")

        thread = threading.Thread(target=loop, name="item-cache-refresh", daemon=True)
        thread.start()
        return thread

    def _fetch(self, item_ids: np.ndarray) -> pd.DataFrame:
        """Item features of ``item_ids`` from the online store; items it lacks are left out."""
        parts = []
        for start in range(0, len(item_ids), LOOKUP_BATCH):
            chunk = item_ids[start : start + LOOKUP_BATCH]
            values = self._store.get_online_features(
                features=list(self._layout.item_features),
                entity_rows=[{S.ITEM_ID: int(i)} for i in chunk],
                full_feature_names=True,
            ).to_dict()
            parts.append(pd.DataFrame(values).set_index(S.ITEM_ID))
        columns = [c for c in self._layout.columns if c.split("__")[0] in self._layout.item_views]
        if not parts:
            return pd.DataFrame(columns=columns, index=pd.Index([], dtype=np.int64, name=S.ITEM_ID))
        frame = pd.concat(parts)[columns]
        return frame[frame.notna().any(axis=1)]


class OnlineFeatures:
    """Feature rows for (query, user, candidates), built as the module docstring describes."""

    def __init__(self, store: FeatureStore, feature_service: str, item_ids: Sequence[int]) -> None:
        self.store = store
        self.feature_service = feature_service
        self.layout = ServiceLayout.of(store, feature_service)
        self.items = ItemCache(store, self.layout, item_ids)

    def rows(self, query: str, user_id: int, item_ids: Sequence[int]) -> pd.DataFrame:
        """One row per candidate: the entity columns a training set has (event time now, label
        and position unknown) and every feature column of the feature service.

        Args:
            query: the normalized query text.
            user_id: the listener.
            item_ids: the candidates, all known to the catalogue (see :meth:`known`).
        """
        n = len(item_ids)
        request = self.store.get_online_features(
            features=list(self.layout.request_features),
            entity_rows=[{S.USER_ID: user_id, S.ITEM_ID: int(i), S.QUERY: query} for i in item_ids],
            full_feature_names=True,
        ).to_dict()
        items = self.items.rows(item_ids)
        frame = pd.DataFrame(
            {
                S.SEARCH_ID: np.zeros(n, dtype=np.int64),
                S.USER_ID: np.full(n, user_id, dtype=np.int64),
                S.ITEM_ID: np.asarray(item_ids, dtype=np.int64),
                S.QUERY: [query] * n,
                S.EVENT_TIMESTAMP: pd.Timestamp.now(tz="UTC"),
                S.POSITION: np.arange(n, dtype=np.int32),
                S.LABEL: np.zeros(n, dtype=np.int32),
            }
        )
        catalogue = self.layout.catalogue_view
        matched = text_match(
            [query] * n, *(items[f"{catalogue}__{field}"].tolist() for field in TEXT_INPUTS)
        )
        features: dict[str, Any] = {}
        for column in self.layout.columns:
            view, name = column.split("__", 1)
            if view == TEXT_MATCH_VIEW:
                features[column] = matched[name]
            elif column in items.columns:
                features[column] = items[column].to_numpy()
            else:
                features[column] = request[column]
        return pd.concat([frame, pd.DataFrame(features)], axis=1)

    def known(self, item_ids: Sequence[int]) -> np.ndarray:
        """A mask of the ids the catalogue knows (looked up online when not cached)."""
        catalogue = self.layout.catalogue_view
        names = self.items.rows(item_ids)[f"{catalogue}__name"]
        return names.notna().to_numpy()

    def user_known(self, frame: pd.DataFrame) -> bool:
        """Whether the user had any user features online (False means the cold-start path)."""
        views = self.layout.user_views
        user_columns = [c for c in frame.columns if c.split("__")[0] in views]
        return bool(frame[user_columns].notna().to_numpy().any())
