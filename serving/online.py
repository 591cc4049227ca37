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

Every lookup a request makes waits at most a deadline (:mod:`searchrank.serving.dependencies`):
a store that is down or slow costs the request a 503, never a hang.

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
from searchrank.core.contract import FeatureContract, Role
from searchrank.core.text import text_match
from searchrank.features import tables as T
from searchrank.serving.dependencies import STORE_DEPENDENCY, Deadline, DependencyUnavailableError

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

TEXT_INPUTS = ("name", "artist_name", "keywords")
"""The catalogue fields the text match reads, in :func:`text_match`'s argument order."""
LOOKUP_BATCH = 5_000
DEFAULT_TIMEOUT_S = 1.0
"""The longest one request waits on the online store (``SEARCHRANK_ONLINE_TIMEOUT_MS``)."""
POLICY_COLUMNS = (T.EXPLICIT_COLUMN, T.EXPLICIT_FILTER_COLUMN)
"""The columns the explicit-content policy reads (:mod:`searchrank.core.content`): the item's
flag and the listener's setting. Every feature contract the service runs on must serve them."""


@dataclass(frozen=True)
class ServiceLayout:
    """Which feature columns of a feature contract come from where (see the module docstring)."""

    item_features: tuple[str, ...]
    """``view:feature`` references served from the item cache."""
    item_columns: tuple[str, ...]
    """Their columns."""
    request_features: tuple[str, ...]
    """``view:feature`` references fetched per request."""
    user_columns: tuple[str, ...]
    """The columns of views keyed by the user alone: all empty means the listener is new."""
    text_match: tuple[tuple[str, str], ...]
    """(column, :func:`text_match` feature) of the request-time text-match columns."""
    columns: tuple[str, ...]
    """Every feature column of the contract, in its order."""
    catalogue_columns: tuple[str, ...]
    """The item columns holding :data:`TEXT_INPUTS`, in that order."""
    explicit_setting: str
    """The ``view:feature`` reference of the listener's explicit-content setting."""

    @classmethod
    def of(cls, contract: FeatureContract) -> ServiceLayout:
        """The layout of a model's feature contract.

        Raises:
            ValueError: a request-time column without an online implementation, or a
                contract without the catalogue fields the text match reads or the columns of
                the explicit-content policy.
        """
        item, request, user, matched = [], [], [], []
        for column in contract.columns:
            if column.role is Role.REQUEST_TIME:
                if column.view != T.QUERY_ITEM_MATCH:
                    raise ValueError(f"on-demand view {column.view!r} has no online implementation")
                matched.append((column.column, column.feature))
                continue
            reference = f"{column.view}:{column.feature}"
            if column.entities == ("item",):
                item.append((reference, column))
            else:
                request.append(reference)
            if column.entities == ("user",):
                user.append(column.column)
        catalogue = {c.feature: c.column for _, c in item if c.view == T.ITEM_CATALOGUE}
        if not set(TEXT_INPUTS) <= set(catalogue):
            raise ValueError(
                f"{contract.feature_service} must serve {TEXT_INPUTS} of {T.ITEM_CATALOGUE}"
            )
        policy = [c for c in POLICY_COLUMNS if c not in contract.names]
        if policy:
            raise ValueError(
                f"{contract.feature_service} must serve {policy}: the explicit-content policy "
                "reads them (searchrank.core.content)"
            )
        return cls(
            item_features=tuple(reference for reference, _ in item),
            item_columns=tuple(c.column for _, c in item),
            request_features=tuple(request),
            user_columns=tuple(user),
            text_match=tuple(matched),
            columns=tuple(contract.names),
            catalogue_columns=tuple(catalogue[name] for name in TEXT_INPUTS),
            explicit_setting=next(
                f"{c.view}:{c.feature}"
                for c in contract.columns
                if c.column == T.EXPLICIT_FILTER_COLUMN
            ),
        )


def _ready(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its index's lookup table built, before other threads read it.

    pandas builds an index's hash table and its uniqueness flag lazily, on first use, and not
    thread-safely: requests reindexing a freshly published frame at once could see it half-built
    (a spurious "cannot reindex on an axis with duplicate labels").
    """
    if not frame.index.is_unique:  # computing the flag caches it too
        raise ValueError("the item cache must hold one row per item id")
    frame.index.get_indexer(frame.index[:1])
    return frame


class ItemCache:
    """Item features of known items, by item id, refreshed from the online store."""

    def __init__(
        self,
        store: FeatureStore,
        layout: ServiceLayout,
        item_ids: Sequence[int],
        deadline: Deadline,
    ) -> None:
        self._store = store
        self._layout = layout
        self._deadline = deadline
        self._lock = threading.Lock()
        self._frame = _ready(self._fetch(np.asarray(item_ids, dtype=np.int64)))
        self.loaded_at = time.time()

    def __len__(self) -> int:
        return len(self._frame)

    @property
    def frame(self) -> pd.DataFrame:
        """The cached rows (item id index, ``view__feature`` columns); replaced, never mutated."""
        return self._frame

    def rows(self, item_ids: Sequence[int]) -> pd.DataFrame:
        """The rows of ``item_ids`` in order; ids missing from the cache are looked up once (within
        the deadline), and those the online store does not know either come back as rows of
        nulls.

        Raises:
            DependencyUnavailableError: the lookup failed or timed out.
        """
        frame = self._frame
        ids = pd.Index(np.asarray(item_ids, dtype=np.int64))
        missing = ids.difference(frame.index)
        if len(missing):
            found = self._deadline.call(self._fetch, missing.to_numpy())
            if len(found):
                with self._lock:
                    frame = pd.concat([self._frame, found])
                    self._frame = frame = _ready(frame[~frame.index.duplicated(keep="last")])
        return frame.reindex(ids)

    def refresh(self) -> None:
        """Reload every cached item from the online store."""
        fresh = _ready(self._fetch(self._frame.index.to_numpy()))
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
        columns = list(self._layout.item_columns)
        if not parts:
            return pd.DataFrame(columns=columns, index=pd.Index([], dtype=np.int64, name=S.ITEM_ID))
        frame = pd.concat(parts)[columns]
        return frame[frame.notna().any(axis=1)]


class OnlineFeatures:
    """Feature rows for (query, user, candidates), built as the module docstring describes."""

    def __init__(
        self,
        store: FeatureStore,
        contract: FeatureContract,
        item_ids: Sequence[int],
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Load the item cache (without a deadline: at start-up the service waits for its
        store); afterwards a request's lookups wait at most ``timeout_s`` together (within the
        deadline's :meth:`~searchrank.serving.dependencies.Deadline.budget`)."""
        self.store = store
        self.contract = contract
        self.layout = ServiceLayout.of(contract)
        self.deadline = Deadline(STORE_DEPENDENCY, timeout_s)
        self.items = ItemCache(store, self.layout, item_ids, self.deadline)

    def rows(self, query: str, user_id: int, item_ids: Sequence[int]) -> pd.DataFrame:
        """One row per candidate: the entity columns a training set has (event time now, label
        and position unknown) and every feature column of the feature service.

        Args:
            query: the normalized query text.
            user_id: the listener.
            item_ids: the candidates, all known to the catalogue (see :meth:`known`).
        """
        n = len(item_ids)
        request = self.deadline.call(
            lambda: self.store.get_online_features(
                features=list(self.layout.request_features),
                entity_rows=[
                    {S.USER_ID: user_id, S.ITEM_ID: int(i), S.QUERY: query} for i in item_ids
                ],
                full_feature_names=True,
            ).to_dict()
        )
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
        matched = text_match(
            [query] * n, *(items[column].tolist() for column in self.layout.catalogue_columns)
        )
        computed = dict(self.layout.text_match)
        features: dict[str, Any] = {}
        for column in self.layout.columns:
            if column in computed:
                features[column] = matched[computed[column]]
            elif column in items.columns:
                features[column] = items[column].to_numpy()
            else:
                features[column] = request[column]
        return pd.concat([frame, pd.DataFrame(features)], axis=1)

    def explicit_setting(self, user_id: int) -> object:
        """The listener's stored explicit-content setting, None when the store has none (for
        a request without a known candidate, whose rows would have carried it)."""
        values = self.deadline.call(
            lambda: self.store.get_online_features(
                features=[self.layout.explicit_setting],
                entity_rows=[{S.USER_ID: user_id}],
                full_feature_names=True,
            ).to_dict()
        )
        return values[T.EXPLICIT_FILTER_COLUMN][0]

    def ping(self) -> bool:
        """Whether the online store answers a one-row lookup within the deadline (readiness)."""
        item = int(self.items.frame.index[0]) if len(self.items) else 0
        try:
            self.deadline.call(
                self.store.get_online_features,
                features=list(self.layout.item_features[:1]),
                entity_rows=[{S.ITEM_ID: item}],
            )
        except DependencyUnavailableError:
            return False
        return True

    def known(self, item_ids: Sequence[int]) -> np.ndarray:
        """A mask of the ids the catalogue knows (looked up online when not cached)."""
        names = self.items.rows(item_ids)[self.layout.catalogue_columns[0]]
        return names.notna().to_numpy()

    def user_known(self, frame: pd.DataFrame) -> bool:
        """Whether the user had any user features online (False means the cold-start path)."""
        return bool(frame[list(self.layout.user_columns)].notna().to_numpy().any())
