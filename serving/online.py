"""Online features for one search, encoded for the ranker without building a DataFrame.

A ranker's feature service mixes three kinds of features, and each is fetched the fastest way
that still reads the Feast online store:

- **item features** (views keyed by the item alone: catalogue metadata, daily item statistics)
  are the same for every request. The :class:`ItemCache` loads them from the online store at
  start-up in large batches, reloads them every ``refresh_seconds`` in the background, and keeps
  them twice: as read (for metadata, the explicit-content flag and the debug frame) and already
  encoded, a float32 matrix in the model's input order. A request gathers its candidates' rows
  by index. An id the cache lacks is looked up on the request that asks for it;
- **request features** (views keyed by the user, the query or the user × item pair) are read
  per request by :class:`RequestReader` through Feast's online-store interface
  (``OnlineStore.online_read``), one batched read per feature view, decoding only the fields the
  contract names: no Python dict of protos → dict of lists → DataFrame round trip. The embedded
  SQLite store is read by serialized key (:meth:`BulkSqliteOnlineStore.read_keys`), without an
  entity-key proto per candidate;
- **request-time features** (the query–item text match, a Feast on-demand view) are computed by
  :func:`~searchrank.core.text.text_match`, the function that view calls in training.

Every lookup a request makes waits at most a deadline (:mod:`searchrank.serving.dependencies`):
a store that is down or slow costs the request a 503, never a hang.

Encoding goes column by column through the feature processor saved with the model
(:meth:`~searchrank.core.features.FeatureProcessor.dense_columns` and
:meth:`~searchrank.core.features.FeatureProcessor.code_column`, the functions its ``transform``
applies to training data), so the served inputs equal the offline ones by construction.
:meth:`Fetched.frame` shows a request's rows shaped like a training set's, for the tests that
compare the two and for debugging.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from feast.infra.online_stores.helpers import get_online_store_from_config
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from feast.value_type import ValueType

from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract, Role
from searchrank.core.features import FeatureProcessor, is_query_column
from searchrank.core.model import Encoded
from searchrank.core.text import text_match
from searchrank.features import tables as T
from searchrank.features.online_store import BulkSqliteOnlineStore, EntityKeys
from searchrank.serving.dependencies import STORE_DEPENDENCY, Deadline, DependencyUnavailableError

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

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
    listener_market: str | None = None
    """The ``view:feature`` reference of the listener's market, where the contract serves it:
    retrieval puts that market's items ahead among a prefix's completions."""

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
            listener_market=next(
                (f"{c.view}:{c.feature}" for c in contract.columns if c.column == T.MARKET_COLUMN),
                None,
            ),
        )


PRIMITIVE_VALUES = frozenset(
    {"int32_val", "int64_val", "float_val", "double_val", "bool_val", "string_val"}
)
"""ValueProto fields whose Python value is the field itself; others go through Feast's own
conversion (:func:`decode`)."""
ENTITY_VALUE_FIELDS = {
    ValueType.INT64: "int64_val",
    ValueType.INT32: "int32_val",
    ValueType.STRING: "string_val",
}
"""The ValueProto field of each entity key type the service looks up."""


def decode(value: ValueProto | None) -> Any:
    """The Python value of a stored feature value, as Feast's ``to_dict`` gives it; None when
    missing."""
    if value is None:
        return None
    kind = value.WhichOneof("val")
    if kind in PRIMITIVE_VALUES:
        return getattr(value, kind)
    if kind is None or kind == "null_val":
        return None
    return feast_value_type_to_python_type(value)


class RequestReader:
    """Reads ``view:feature`` references for entity rows through the online store's own
    interface (``OnlineStore.online_read``, or ``read_keys`` of the embedded SQLite store): one
    batched read per feature view, each distinct entity key read once, only the named fields
    decoded (see the module docstring)."""

    def __init__(self, store: FeatureStore, references: Sequence[str]) -> None:
        self._config = store.config
        self._online = get_online_store_from_config(store.config.online_store)
        by_view: dict[str, list[str]] = {}
        for reference in references:
            name, feature = reference.split(":", 1)
            by_view.setdefault(name, []).append(feature)
        self._views: list[tuple[FeatureView, list[str], list[tuple[str, str]], EntityKeys]] = []
        for name, features in by_view.items():
            view = store.get_feature_view(name)
            keys, types = [], []
            for column in view.entity_columns:
                value_type = column.dtype.to_value_type()
                field = ENTITY_VALUE_FIELDS.get(value_type)
                if field is None:
                    raise ValueError(f"{name}: entity key {column.name} of type {column.dtype}")
                keys.append((column.name, field))
                types.append((column.name, value_type.value))
            self._views.append((view, features, keys, EntityKeys(types)))

    @property
    def references(self) -> list[str]:
        """The ``view:feature`` references read, by view."""
        return [
            f"{view.name}:{feature}" for view, features, *_ in self._views for feature in features
        ]

    def read(self, entities: Mapping[str, Sequence[object]], n: int) -> dict[str, list[Any]]:
        """The features of ``n`` entity rows, by ``view__feature`` column.

        Args:
            entities: each join key's values, one per row (a key every row shares may be given
                once, as a one-element sequence).
            n: the number of rows.
        """
        out: dict[str, list[Any]] = {}
        for view, features, keys, serialized in self._views:
            columns = [entities[name] for name, _ in keys]
            shared = all(len(c) == 1 for c in columns)  # one key for every row (user, query)
            rows = [tuple(c[0] for c in columns)] if shared else _rows(columns, n)
            unique = list(dict.fromkeys(rows))
            if isinstance(self._online, BulkSqliteOnlineStore):
                found = self._online.read_keys(self._config, view, serialized.encode(unique))
            else:
                protos = [_entity_key(keys, row) for row in unique]
                # A copy: Feast's Redis store appends its timestamp field to the list it is given.
                read = self._online.online_read(self._config, view, protos, list(features))
                found = [stored for _, stored in read]
            stored = [(row, values) for row, values in zip(unique, found, strict=True) if values]
            prefix = view.projection.name_to_use()
            for feature in features:
                decoded = {row: decode(values.get(feature)) for row, values in stored}
                column = f"{prefix}__{feature}"
                out[column] = (
                    [decoded.get(rows[0])] * n if shared else [decoded.get(r) for r in rows]
                )
        return out


def _rows(columns: Sequence[Sequence[object]], n: int) -> list[tuple[object, ...]]:
    """``n`` entity rows from key columns, a one-element column repeated in every row."""
    full = [list(c) * n if len(c) == 1 else c for c in columns]
    return list(zip(*full, strict=True))


def _entity_key(keys: Sequence[tuple[str, str]], row: Sequence[object]) -> EntityKeyProto:
    """The entity key of one row: ``keys`` are (join key, ValueProto field) pairs."""
    proto = EntityKeyProto(join_keys=[name for name, _ in keys])
    for (_, field), value in zip(keys, row, strict=True):
        proto.entity_values.add(**{field: value})
    return proto


@dataclass(frozen=True)
class InputPlan:
    """Where each input of a feature processor comes from: the item cache's encoded matrix
    (features of views keyed by the item alone) or the request (everything else)."""

    item_dense: np.ndarray
    """Indices of the dense inputs read from item columns, in the item matrix's order."""
    item_codes: np.ndarray
    """Indices of the categorical inputs read from item columns."""
    request_dense: list[int]
    request_codes: list[int]

    @classmethod
    def of(cls, processor: FeatureProcessor, layout: ServiceLayout) -> InputPlan:
        """The plan of ``processor`` over ``layout``.

        Raises:
            ValueError: an input the service cannot produce (neither a contract column nor
                one computed from the query).
        """
        items = set(layout.item_columns)
        served = {*layout.columns}
        sources = [role.source for role in processor.numeric]
        for source in [*sources, *processor.categorical]:
            if source not in served and not is_query_column(source):
                raise ValueError(f"model input {source!r} is not served by the feature contract")
        dense = [j for j, source in enumerate(sources) if source in items]
        codes = [j for j, column in enumerate(processor.categorical) if column in items]
        return cls(
            item_dense=np.asarray(dense, dtype=np.int64),
            item_codes=np.asarray(codes, dtype=np.int64),
            request_dense=[j for j in range(len(sources)) if j not in dense],
            request_codes=[j for j in range(len(processor.categorical)) if j not in codes],
        )


@dataclass(frozen=True)
class ItemSnapshot:
    """The item cache at one moment, replaced whole and never mutated: each item's features as
    read and as encoded, by position (see :attr:`position`)."""

    position: dict[int, int]
    """Item id → row of every array here."""
    columns: dict[str, np.ndarray]
    """Each item column's values as read (object arrays; None when missing)."""
    dense: np.ndarray
    """(items, len(plan.item_dense)) float32: the item inputs, encoded."""
    codes: np.ndarray
    """(items, len(plan.item_codes)) int64."""
    popularity: np.ndarray
    """Each item's popularity (float64, NaN when missing)."""
    by_popularity: np.ndarray
    """Positions, most popular first."""

    @classmethod
    def of(
        cls,
        values: Mapping[str, Sequence[Any]],
        item_ids: Sequence[int],
        processor: FeatureProcessor,
        plan: InputPlan,
    ) -> ItemSnapshot:
        """Encode the items ``item_ids`` whose columns hold ``values``."""
        columns = {name: np.asarray(v, dtype=object) for name, v in values.items()}
        n = len(item_ids)
        sources = [columns[processor.numeric[j].source] for j in plan.item_dense]
        dense = processor.dense_columns(plan.item_dense.tolist(), sources, n)
        codes = np.empty((n, len(plan.item_codes)), dtype=np.int64)
        for k, j in enumerate(plan.item_codes):
            codes[:, k] = processor.code_column(int(j), columns[processor.categorical[j]])
        popularity = pd.to_numeric(
            pd.Series(columns.get(T.POPULARITY_COLUMN, [None] * n), dtype=object), errors="coerce"
        ).to_numpy(np.float64)
        return cls(
            position={int(i): k for k, i in enumerate(item_ids)},
            columns=columns,
            dense=dense,
            codes=codes,
            popularity=popularity,
            by_popularity=_most_popular_first(popularity),
        )

    def extended(self, new: ItemSnapshot) -> ItemSnapshot:
        """This snapshot with the items of ``new`` it lacks appended: only those were encoded,
        so an item looked up on demand costs its own rows, not the whole catalogue's."""
        new_ids = new.item_ids
        added = [k for k, i in enumerate(new_ids) if i not in self.position]
        ids = self.item_ids + [new_ids[k] for k in added]
        popularity = np.concatenate([self.popularity, new.popularity[added]])
        return ItemSnapshot(
            position={i: k for k, i in enumerate(ids)},
            columns={
                name: np.concatenate([column, new.columns[name][added]])
                for name, column in self.columns.items()
            },
            dense=np.concatenate([self.dense, new.dense[added]]),
            codes=np.concatenate([self.codes, new.codes[added]]),
            popularity=popularity,
            by_popularity=_most_popular_first(popularity),
        )

    def __len__(self) -> int:
        return len(self.position)

    @property
    def item_ids(self) -> list[int]:
        return list(self.position)


def _most_popular_first(popularity: np.ndarray) -> np.ndarray:
    """Positions by popularity, highest first (missing last, ties in item order)."""
    return np.argsort(-np.nan_to_num(popularity, nan=-np.inf), kind="stable")


class ItemCache:
    """Item features of known items, read and encoded (see the module docstring), refreshed
    from the online store."""

    def __init__(
        self,
        store: FeatureStore,
        layout: ServiceLayout,
        processor: FeatureProcessor,
        item_ids: Sequence[int],
        deadline: Deadline,
    ) -> None:
        self._reader = RequestReader(store, layout.item_features)
        self._columns = layout.item_columns
        self._processor = processor
        self._plan = InputPlan.of(processor, layout)
        self._deadline = deadline
        self._lock = threading.Lock()
        self._snapshot = self._load(np.asarray(item_ids, dtype=np.int64))
        self.loaded_at = time.time()

    def __len__(self) -> int:
        return len(self._snapshot)

    @property
    def snapshot(self) -> ItemSnapshot:
        return self._snapshot

    def positions(self, item_ids: Sequence[int]) -> tuple[ItemSnapshot, np.ndarray]:
        """A snapshot and the rows of ``item_ids`` in it, -1 for an id that neither the cache nor
        the online store knows; ids missing from the cache are looked up once (within the
        deadline) and kept.

        Raises:
            DependencyUnavailableError: the lookup failed or timed out.
        """
        snapshot = self._snapshot
        rows = [snapshot.position.get(int(i), -1) for i in item_ids]
        missing = [int(i) for i, row in zip(item_ids, rows, strict=True) if row < 0]
        if missing:
            values, found = self._deadline.call(self._read, np.asarray(missing, dtype=np.int64))
            if found:
                new = ItemSnapshot.of(values, found, self._processor, self._plan)
                with self._lock:
                    self._snapshot = snapshot = self._snapshot.extended(new)
                rows = [snapshot.position.get(int(i), -1) for i in item_ids]
        return snapshot, np.asarray(rows, dtype=np.int64)

    def refresh(self) -> None:
        """Reload every cached item from the online store."""
        fresh = self._load(np.asarray(self._snapshot.item_ids, dtype=np.int64))
        with self._lock:
            self._snapshot = fresh
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

    def _load(self, item_ids: np.ndarray) -> ItemSnapshot:
        values, found = self._read(item_ids)
        return ItemSnapshot.of(values, found, self._processor, self._plan)

    def _read(self, item_ids: np.ndarray) -> tuple[dict[str, list[Any]], list[int]]:
        """Item features of ``item_ids`` from the online store, by column, and the ids they
        belong to: items the store lacks (every feature missing) are left out."""
        values: dict[str, list[Any]] = {name: [] for name in self._columns}
        found: list[int] = []
        for start in range(0, len(item_ids), LOOKUP_BATCH):
            chunk = item_ids[start : start + LOOKUP_BATCH].tolist()
            read = self._reader.read({S.ITEM_ID: chunk}, len(chunk))
            rows = [
                k for k in range(len(chunk)) if any(read[c][k] is not None for c in self._columns)
            ]
            for name in self._columns:
                values[name] += [read[name][k] for k in rows]
            found += [int(chunk[k]) for k in rows]
        return values, found


@dataclass(frozen=True)
class Fetched:
    """One request's features as read: its known candidates' rows in the item cache and the
    values of its request features."""

    query: str
    user_id: int
    item_ids: list[int]
    items: ItemSnapshot
    positions: np.ndarray
    request: dict[str, list[Any]]
    """Request features by column, one value per candidate."""
    matched: dict[str, np.ndarray]
    """The text-match columns."""
    layout: ServiceLayout

    def __len__(self) -> int:
        return len(self.item_ids)

    def column(self, name: str, query: Mapping[str, float]) -> Sequence[Any] | np.ndarray:
        """A request-side column's values: text match, request feature, or one of ``query``'s
        features (the intent model's and the rewriter's)."""
        if name in self.matched:
            return self.matched[name]
        if name in self.request:
            return self.request[name]
        return [query.get(name)] * len(self)

    def item_column(self, name: str) -> np.ndarray:
        """An item column's values as read, for the candidates."""
        return self.items.columns[name][self.positions]

    @property
    def explicit(self) -> np.ndarray:
        """The candidates' explicit-content flags."""
        return self.item_column(T.EXPLICIT_COLUMN)

    @property
    def explicit_setting(self) -> Any:
        """The listener's stored explicit-content setting (None when the store has none)."""
        return self.request[T.EXPLICIT_FILTER_COLUMN][0]

    @property
    def user_known(self) -> bool:
        """Whether the user had any user features online (False means the cold-start path)."""
        return any(self.request[c][0] is not None for c in self.layout.user_columns)

    def frame(self, query: Mapping[str, float] | None = None) -> pd.DataFrame:
        """The rows shaped like a training set's: its entity columns (event time now, label
        and position unknown), every feature column of the contract and the query's columns
        (the online-equals-offline tests compare them with training's)."""
        n = len(self)
        columns: dict[str, Any] = {
            S.SEARCH_ID: np.zeros(n, dtype=np.int64),
            S.USER_ID: np.full(n, self.user_id, dtype=np.int64),
            S.ITEM_ID: np.asarray(self.item_ids, dtype=np.int64),
            S.QUERY: [self.query] * n,
            S.EVENT_TIMESTAMP: pd.Timestamp.now(tz="UTC"),
            S.POSITION: np.arange(n, dtype=np.int32),
            S.LABEL: np.zeros(n, dtype=np.int32),
        }
        for name in self.layout.columns:
            columns[name] = (
                self.item_column(name) if name in self.items.columns else self.column(name, {})
            )
        for name, value in (query or {}).items():
            columns[name] = np.full(n, value)
        return pd.DataFrame(columns)


class OnlineFeatures:
    """Encoded model inputs for (query, user, candidates), built as the module docstring
    describes."""

    def __init__(
        self,
        store: FeatureStore,
        contract: FeatureContract,
        processor: FeatureProcessor,
        item_ids: Sequence[int],
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Load the item cache (without a deadline: at start-up the service waits for its
        store); afterwards a request's lookups wait at most ``timeout_s`` together (within the
        deadline's :meth:`~searchrank.serving.dependencies.Deadline.budget`).

        Raises:
            ValueError: the contract cannot be served (:meth:`ServiceLayout.of`) or does not
                serve every input of ``processor``.
        """
        self.store = store
        self.contract = contract
        self.processor = processor
        self.layout = ServiceLayout.of(contract)
        self.plan = InputPlan.of(processor, self.layout)
        self.deadline = Deadline(STORE_DEPENDENCY, timeout_s)
        self.reader = RequestReader(store, self.layout.request_features)
        listener = [self.layout.explicit_setting, self.layout.listener_market]
        self.settings = RequestReader(store, [r for r in listener if r is not None])
        self.items = ItemCache(store, self.layout, processor, item_ids, self.deadline)

    def fetch(self, query: str, user_id: int, item_ids: Sequence[int]) -> Fetched:
        """The features of known candidates (one batched read per request view).

        Args:
            query: the normalized query text.
            user_id: the listener.
            item_ids: the candidates, all known to the catalogue (see :meth:`known`).

        Raises:
            ValueError: a candidate the catalogue does not know.
            DependencyUnavailableError: the online store failed or timed out.
        """
        items, positions = self.items.positions(item_ids)
        if (positions < 0).any():
            unknown = [i for i, p in zip(item_ids, positions, strict=True) if p < 0]
            raise ValueError(f"candidates unknown to the catalogue: {unknown[:10]}")
        n = len(positions)
        entities = {S.USER_ID: [user_id], S.ITEM_ID: item_ids, S.QUERY: [query]}
        request = self.deadline.call(self.reader.read, entities, n)
        text = [items.columns[c][positions].tolist() for c in self.layout.catalogue_columns]
        matched = text_match([query] * n, *text)
        return Fetched(
            query=query,
            user_id=user_id,
            item_ids=list(item_ids),
            items=items,
            positions=positions,
            request=request,
            matched={column: matched[feature] for column, feature in self.layout.text_match},
            layout=self.layout,
        )

    def encode(self, fetched: Fetched, query: Mapping[str, float]) -> Encoded:
        """The model's inputs for ``fetched``: ``dense`` (n, F) float32 and ``codes`` (n, C)
        int64, item inputs gathered from the cache's encoded matrix, the rest encoded here
        (``query``: the features computed from the query, by column)."""
        processor, plan, n = self.processor, self.plan, len(fetched)
        dense = np.empty((n, len(processor.numeric)), dtype=np.float32)
        dense[:, plan.item_dense] = fetched.items.dense[fetched.positions]
        sources = [fetched.column(processor.numeric[j].source, query) for j in plan.request_dense]
        dense[:, plan.request_dense] = processor.dense_columns(plan.request_dense, sources, n)
        codes = np.empty((n, len(processor.categorical)), dtype=np.int64)
        codes[:, plan.item_codes] = fetched.items.codes[fetched.positions]
        for j in plan.request_codes:
            codes[:, j] = processor.code_column(j, fetched.column(processor.categorical[j], query))
        return {"dense": dense, "codes": codes}

    def known(self, item_ids: Sequence[int]) -> np.ndarray:
        """A mask of the ids the catalogue knows (looked up online when not cached)."""
        _, positions = self.items.positions(item_ids)
        return positions >= 0

    def explicit_setting(self, user_id: int) -> object:
        """The listener's stored explicit-content setting, None when the store has none (for
        a request without a known candidate, whose features would have carried it)."""
        values = self.deadline.call(self.settings.read, {S.USER_ID: [user_id]}, 1)
        return values[T.EXPLICIT_FILTER_COLUMN][0]

    def listener_market(self, user_id: int) -> str | None:
        """The listener's market from the online store; ``None`` when the contract does not
        serve it or the store has none for the listener."""
        if self.layout.listener_market is None:
            return None
        values = self.deadline.call(self.settings.read, {S.USER_ID: [user_id]}, 1)
        market = values[T.MARKET_COLUMN][0]
        return market if isinstance(market, str) and market else None

    def ping(self) -> bool:
        """Whether the online store answers a one-row lookup within the deadline (readiness)."""
        try:
            self.deadline.call(self.settings.read, {S.USER_ID: [0]}, 1)
        except DependencyUnavailableError:
            return False
        return True
