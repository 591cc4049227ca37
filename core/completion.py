"""Search-as-you-type at the item level: the items whose name begins with what the listener
has typed so far, the most streamed first, those of the listener's market ahead.

A prefix such as "mi" or "midnight c" says little to BM25's trigrams and nothing to the query
tower, and the :class:`~searchrank.core.query_rewrite.QueryRewriter` completes it to one phrase
only, the most popular one, which is often not the one meant (a short prefix begins hundreds of
names). The :class:`PrefixIndex` lists every item such a query could be the start of, so a
prefix's candidates hold the item meant whenever it ranks among the first ``n``.

What orders them: the item's streams, plus, for a listener whose market is known, a bonus
(``market_weight``, in units of log streams) for the items of that market, since listeners
look for their local catalogue far more than its share of streams says; plus, for a listener
who streamed in the training window, their taste (``taste_weight`` times
:meth:`ListenerTaste.lift`: how much more of the item's genre they stream than listeners at
large). On 60k synthetic searches, at the weight validation chose (0.5), the taste raised the
routed fusion's Recall@10 from 0.836 to 0.841 (MRR 0.674 to 0.677; Recall@100 unchanged) and
track prefixes' Recall@100 from 0.912 to 0.918, and lowered album and artist prefixes' by
0.006 and 0.003 (``bench_retrieval``'s ``taste``). Ordering by the two-tower's (query,
listener) score instead had lowered the completions' recall at every weight: the query tower
reads a prefix badly, while the genres a listener streams say which of a prefix's
near-namesakes they are after. Only names are indexed:
an artist is an item whose name is the artist's, and indexing every track and album under its
artist's name too filled a short prefix's list with one artist's songs. On 60k synthetic
searches the prefix list alone held the item meant for 87 % of test prefixes with artists
indexed, 90 % by names only and 94 % with the market bonus.

It also tells a query typed partway from one typed whole (:meth:`PrefixIndex.is_partial`): the
query begins some catalogue name, equals none, and is not a genre, mood or topic of the
catalogue. ``/search`` routes such queries with their own fusion weights
(:func:`~searchrank.core.retrieval.route_key`), because the query tower, which reads whole
words, helps them far less than it helps a whole name. A topic is left out because it often
begins a name ("history" begins "History of Rome, Episode 3") while the listener who types it
alone describes what they want: on 60k synthetic searches a fifth of the descriptive podcast
queries were read as typed partway before, and routed as prefixes, while only 3 % of the
podcast prefixes are a topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.errors import InputError, require_columns
from searchrank.core.query_rewrite import WORD_COLUMNS
from searchrank.core.retrieval import log_stream_counts, retrieval_metrics
from searchrank.core.text import normalize_text

PREFIX_FIELD = "name"
"""The catalogue field a listener starts typing."""
MARKET_FIELD = "market"
"""The catalogue field naming an item's market (optional: without it no item is local)."""
MARKET_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""The market bonuses :func:`fit_completion_weights` chooses among, in units of log streams."""
TASTE_FIELD = "genre"
"""The catalogue field a listener's taste is counted in (a podcast's topic, for podcasts)."""
TASTE_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
"""The taste weights :func:`fit_completion_weights` chooses among."""
TASTE_SMOOTHING = 5.0
"""Streams, spread as listeners at large spread theirs, added to each listener's own: a
listener with 5 streams in the window sits halfway between their own shares and everyone's."""
PREFIX_FILE = "prefix_index.npz"
_LAST_CHARACTER = "\U0010ffff"
"""Sorts after every character, so ``[prefix, prefix + this)`` holds the phrases it begins."""


def begun_by(phrases: np.ndarray, prefix: str) -> slice:
    """The positions of the sorted ``phrases`` that begin with ``prefix`` (found by bisection)."""
    low = int(np.searchsorted(phrases, prefix, side="left"))
    high = int(np.searchsorted(phrases, prefix + _LAST_CHARACTER, side="left"))
    return slice(low, max(low, high))


@dataclass(frozen=True)
class ListenerTaste:
    """Each listener's streams in the training window, counted by the genre of what they
    streamed: which of a prefix's many names a listener is likely after.

    Attributes:
        genres: (g,) the catalogue's genres, sorted; "" (no genre) is one of them.
        user_ids: (u,) the listeners who streamed, sorted.
        counts: (u, g) each listener's streams of each genre.
        shares: (g,) every listener's streams together, one added to each genre, as shares.
    """

    genres: np.ndarray
    user_ids: np.ndarray
    counts: np.ndarray
    shares: np.ndarray

    @classmethod
    def from_streams(cls, item_genres: pd.Series, streams: pd.DataFrame | None) -> ListenerTaste:
        """The taste of the listeners in ``streams``.

        Args:
            item_genres: each item's genre ("" or missing: none), indexed by item id.
            streams: one row per stream (``user_id``, ``item_id``,
                :func:`~searchrank.core.retrieval.listener_streams`); ``None``: no listener.
        """
        genres = np.array(sorted(set(item_genres.fillna("").astype(str)) | {""}), dtype=str)
        if streams is None or streams.empty:
            streams = pd.DataFrame({S.USER_ID: [], S.ITEM_ID: []}, dtype=np.int64)
        require_columns(streams.columns, "streams", (S.USER_ID, S.ITEM_ID))
        genre = streams[S.ITEM_ID].map(item_genres).fillna("").astype(str)
        code = np.searchsorted(genres, genre.to_numpy())
        users, row = np.unique(streams[S.USER_ID].to_numpy(dtype=np.int64), return_inverse=True)
        counts = np.zeros((len(users), len(genres)), dtype=np.float32)
        np.add.at(counts, (row, code), 1.0)
        total = counts.sum(axis=0) + 1.0
        return cls(genres, users, counts, total / total.sum())

    def codes(self, genres: pd.Series) -> np.ndarray:
        """Each of ``genres``' position in :attr:`genres` (missing or unknown: "")."""
        values = genres.fillna("").astype(str).to_numpy()
        at = np.minimum(np.searchsorted(self.genres, values), len(self.genres) - 1)
        return np.where(self.genres[at] == values, at, 0)  # "" sorts first

    def lift(self, user_id: int | None) -> np.ndarray | None:
        """(g,) the log of how much more of each genre the listener streams than listeners at
        large, their counts smoothed by :data:`TASTE_SMOOTHING` streams spread as everyone's;
        ``None`` for a listener who never streamed (or ``user_id`` ``None``)."""
        if user_id is None:
            return None
        at = int(np.searchsorted(self.user_ids, user_id))
        if at == len(self.user_ids) or self.user_ids[at] != user_id:
            return None
        counts = self.counts[at]
        own = (counts + TASTE_SMOOTHING * self.shares) / (counts.sum() + TASTE_SMOOTHING)
        return np.log(own / self.shares)


@dataclass(frozen=True)
class PrefixIndex:
    """Every item's normalized name, sorted.

    Attributes:
        phrases: (r,) each row's normalized name, sorted.
        item_ids: (r,) the item each row describes.
        log_streams: (r,) ``log1p`` of that item's streams (0 when unknown): the order of
            :meth:`complete`.
        markets: (r,) that item's market ("" when unknown), for the market bonus.
        descriptive: the catalogue's genres, moods and topic keywords (its ``WORD_COLUMNS``),
            normalized, sorted and distinct: a query that is one of them is typed whole.
        genres: (r,) that item's genre, as its position in ``taste.genres``.
        taste: the listeners' taste, for the taste term of :meth:`complete`.
    """

    phrases: np.ndarray
    item_ids: np.ndarray
    log_streams: np.ndarray
    markets: np.ndarray
    descriptive: np.ndarray
    genres: np.ndarray
    taste: ListenerTaste

    @classmethod
    def from_catalogue(
        cls,
        catalogue: pd.DataFrame,
        streams: pd.Series | None = None,
        listeners: pd.DataFrame | None = None,
    ) -> PrefixIndex:
        """The index of a catalogue's names.

        Args:
            catalogue: one row per item with ``item_id`` and ``name`` (a missing value reads as
                empty) and, optionally, ``market`` and the ``genre``, ``mood`` and ``keywords``
                columns; a repeated item keeps its first row.
            streams: each item's streams in the training window, indexed by item id
                (:func:`~searchrank.core.retrieval.item_streams`); items it lacks count 0.
            listeners: one row per stream in the training window (``user_id``, ``item_id``:
                :func:`~searchrank.core.retrieval.listener_streams`), for the listeners' taste;
                ``None``: no listener has any.

        Raises:
            InputError: a column named above is missing, or a stream count is negative or
                not finite.
        """
        require_columns(catalogue.columns, "catalogue", (S.ITEM_ID, PREFIX_FIELD))
        items = catalogue.drop_duplicates(S.ITEM_ID)
        markets = items[MARKET_FIELD] if MARKET_FIELD in items.columns else ""
        item_genres = pd.Series(
            items[TASTE_FIELD].to_numpy() if TASTE_FIELD in items.columns else "",
            index=items[S.ITEM_ID].to_numpy(),
            dtype=object,
        )
        taste = ListenerTaste.from_streams(item_genres, listeners)
        rows = pd.DataFrame(
            {
                "phrase": items[PREFIX_FIELD].fillna("").astype(str).map(normalize_text),
                S.ITEM_ID: items[S.ITEM_ID].to_numpy(),
                MARKET_FIELD: pd.Series(markets, index=items.index).fillna("").astype(str),
            }
        )
        rows = rows[rows["phrase"] != ""].sort_values("phrase", kind="stable")
        ids = rows[S.ITEM_ID].to_numpy(dtype=np.int64)
        log_streams = np.zeros(len(ids)) if streams is None else log_stream_counts(streams, ids)
        terms = {
            normalize_text(str(value))
            for column in WORD_COLUMNS
            if column in items.columns
            for value in items[column].dropna().unique()
        }
        return cls(
            rows["phrase"].to_numpy(dtype=str),
            ids,
            log_streams,
            rows[MARKET_FIELD].to_numpy(dtype=str),
            np.array(sorted(terms - {""}), dtype=str),
            taste.codes(item_genres.reindex(ids)),
            taste,
        )

    def _rows(self, prefix: str) -> slice:
        """The rows whose phrase begins with ``prefix`` (normalized)."""
        return begun_by(self.phrases, prefix)

    def _names_end(self, query: str) -> int:
        """The end of the rows whose phrase is ``query`` itself (they open its rows)."""
        return int(np.searchsorted(self.phrases, query, side="right"))

    def continues(self, query: str) -> bool:
        """Whether the normalized ``query`` begins a longer name and is no genre, mood or topic
        of the catalogue: the listener may still be typing it, even where it is a whole name
        too ("velvet" names a track and begins "velvet morning")."""
        if not query:
            return False
        at = int(np.searchsorted(self.descriptive, query))
        described = at < len(self.descriptive) and self.descriptive[at] == query
        return self._rows(query).stop > self._names_end(query) and not described

    def is_partial(self, query: str) -> bool:
        """Whether the normalized ``query`` begins some name, is none itself, and is no genre,
        mood or topic of the catalogue."""
        return self.continues(query) and not self.is_name(query)

    def is_name(self, query: str) -> bool:
        """Whether the normalized ``query`` is some item's name."""
        return bool(query) and self._names_end(query) > self._rows(query).start

    def complete(
        self,
        prefix: str,
        n: int,
        market: str | None = None,
        market_weight: float = 0.0,
        user_id: int | None = None,
        taste_weight: float = 0.0,
    ) -> list[int]:
        """At most ``n`` ids of the items whose name begins with the normalized ``prefix``,
        best first (ties in phrase order); none for an empty one. The items whose name is the
        prefix itself come first, as a whole name typed is most likely the one meant.

        Args:
            market: the listener's market (``None`` or "": unknown, no item gets the bonus).
            market_weight: what an item of ``market`` gains on its log streams.
            user_id: the listener (``None``: unknown, no taste).
            taste_weight: the weight of the listener's :meth:`ListenerTaste.lift` of the
                item's genre, added to its log streams.
        """
        if not prefix:
            return []
        rows = self._rows(prefix)
        score = self.log_streams[rows]
        if market and market_weight:
            score = score + market_weight * (self.markets[rows] == market)
        lift = self.taste.lift(user_id) if taste_weight else None
        if lift is not None:
            score = score + taste_weight * lift[self.genres[rows]]
        named = np.arange(rows.start, rows.stop) < self._names_end(prefix)
        order = np.lexsort((-score, ~named))  # the whole names, then the score; stable
        found = pd.unique(self.item_ids[rows][order])
        return [int(i) for i in found[:n]]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / PREFIX_FILE,
            phrases=self.phrases,
            item_ids=self.item_ids,
            log_streams=self.log_streams,
            markets=self.markets,
            descriptive=self.descriptive,
            genres=self.genres,
            taste_genres=self.taste.genres,
            taste_users=self.taste.user_ids,
            taste_counts=self.taste.counts,
            taste_shares=self.taste.shares,
        )

    @classmethod
    def load(cls, folder: Path) -> PrefixIndex:
        """A saved index; one saved before markets, descriptive terms or the listeners' taste
        were kept loads with none known."""
        with np.load(folder / PREFIX_FILE) as saved:
            phrases = saved["phrases"]
            markets = saved["markets"] if "markets" in saved else np.full(len(phrases), "")
            descriptive = saved["descriptive"] if "descriptive" in saved else np.array([], str)
            if "taste_genres" in saved:
                taste = ListenerTaste(
                    saved["taste_genres"],
                    saved["taste_users"],
                    saved["taste_counts"],
                    saved["taste_shares"],
                )
                genres = saved["genres"]
            else:
                taste = ListenerTaste.from_streams(pd.Series(dtype=object), None)
                genres = np.zeros(len(phrases), dtype=np.int64)
            return cls(
                phrases,
                saved["item_ids"],
                saved["log_streams"],
                markets,
                descriptive,
                genres,
                taste,
            )


def fit_completion_weights(
    index: PrefixIndex,
    prefixes: Sequence[str],
    markets: Sequence[str | None],
    users: Sequence[int | None],
    relevant: Sequence[Sequence[int]],
    k: int = 100,
) -> tuple[float, float]:
    """The market bonus (of :data:`MARKET_WEIGHTS`) and taste weight (of
    :data:`TASTE_WEIGHTS`) whose completions recall the most of ``relevant`` in their first
    ``k`` (mean Recall@k over the queries; ties: the smaller weights, so 0 without evidence).

    Args:
        prefixes: queries that may still be typed (normalized), e.g. the validation searches'.
        markets: each query's listener's market (``None``: unknown).
        users: each query's listener (``None``: unknown).
        relevant: each query's wanted ids.

    Raises:
        InputError: the sequences differ in length.
    """
    if not len(prefixes) == len(markets) == len(users) == len(relevant):
        raise InputError(
            "prefixes/markets/users/relevant",
            (len(prefixes), len(markets), len(users), len(relevant)),
            "must hold one entry per query each",
        )
    grid = [(market, taste) for market in MARKET_WEIGHTS for taste in TASTE_WEIGHTS]
    if not prefixes:
        return grid[0]
    queries = list(zip(prefixes, markets, users, strict=True))
    recall = [
        retrieval_metrics(
            [index.complete(p, k, m, market, u, taste) for p, m, u in queries], relevant, (k,)
        )[f"recall@{k}"]
        for market, taste in grid
    ]
    return grid[int(np.argmax(recall))]
