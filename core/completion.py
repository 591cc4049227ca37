"""Search-as-you-type at the item level: the items whose name begins with what the listener
has typed so far, the most streamed first, those of the listener's market ahead.

A prefix such as "mi" or "midnight c" says little to BM25's trigrams and nothing to the query
tower, and the :class:`~searchrank.core.query_rewrite.QueryRewriter` completes it to one phrase
only, the most popular one, which is often not the one meant (a short prefix begins hundreds of
names). The :class:`PrefixIndex` lists every item such a query could be the start of, so a
prefix's candidates hold the item meant whenever it ranks among the first ``n``.

What orders them: the item's streams, plus, for a listener whose market is known, a bonus
(``market_weight``, in units of log streams) for the items of that market, since listeners
look for their local catalogue far more than its share of streams says. Only names are indexed:
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
"""The market bonuses :func:`fit_market_weight` chooses among, in units of log streams."""
PREFIX_FILE = "prefix_index.npz"
_LAST_CHARACTER = "\U0010ffff"
"""Sorts after every character, so ``[prefix, prefix + this)`` holds the phrases it begins."""


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
    """

    phrases: np.ndarray
    item_ids: np.ndarray
    log_streams: np.ndarray
    markets: np.ndarray
    descriptive: np.ndarray

    @classmethod
    def from_catalogue(
        cls, catalogue: pd.DataFrame, streams: pd.Series | None = None
    ) -> PrefixIndex:
        """The index of a catalogue's names.

        Args:
            catalogue: one row per item with ``item_id`` and ``name`` (a missing value reads as
                empty) and, optionally, ``market`` and the ``genre``, ``mood`` and ``keywords``
                columns; a repeated item keeps its first row.
            streams: each item's streams in the training window, indexed by item id
                (:func:`~searchrank.core.retrieval.item_streams`); items it lacks count 0.

        Raises:
            InputError: a column named above is missing, or a stream count is negative or
                not finite.
        """
        require_columns(catalogue.columns, "catalogue", (S.ITEM_ID, PREFIX_FIELD))
        items = catalogue.drop_duplicates(S.ITEM_ID)
        markets = items[MARKET_FIELD] if MARKET_FIELD in items.columns else ""
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
        )

    def _rows(self, prefix: str) -> slice:
        """The rows whose phrase begins with ``prefix`` (normalized)."""
        low = int(np.searchsorted(self.phrases, prefix, side="left"))
        high = int(np.searchsorted(self.phrases, prefix + _LAST_CHARACTER, side="left"))
        return slice(low, max(low, high))

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
        self, prefix: str, n: int, market: str | None = None, market_weight: float = 0.0
    ) -> list[int]:
        """At most ``n`` ids of the items whose name begins with the normalized ``prefix``,
        best first (ties in phrase order); none for an empty one. The items whose name is the
        prefix itself come first, as a whole name typed is most likely the one meant.

        Args:
            market: the listener's market (``None`` or "": unknown, no item gets the bonus).
            market_weight: what an item of ``market`` gains on its log streams.
        """
        if not prefix:
            return []
        rows = self._rows(prefix)
        score = self.log_streams[rows]
        if market and market_weight:
            score = score + market_weight * (self.markets[rows] == market)
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
        )

    @classmethod
    def load(cls, folder: Path) -> PrefixIndex:
        """A saved index; one saved before markets or descriptive terms were kept loads with
        none known."""
        with np.load(folder / PREFIX_FILE) as saved:
            phrases = saved["phrases"]
            markets = saved["markets"] if "markets" in saved else np.full(len(phrases), "")
            descriptive = saved["descriptive"] if "descriptive" in saved else np.array([], str)
            return cls(phrases, saved["item_ids"], saved["log_streams"], markets, descriptive)


def fit_market_weight(
    index: PrefixIndex,
    prefixes: Sequence[str],
    markets: Sequence[str | None],
    relevant: Sequence[Sequence[int]],
    k: int = 100,
    weights: Sequence[float] = MARKET_WEIGHTS,
) -> float:
    """The market bonus whose completions recall the most of ``relevant`` in their first ``k``
    (mean Recall@k over the queries; ties: the smaller bonus, so 0 without evidence).

    Args:
        prefixes: queries typed partway (normalized), e.g. the validation searches'.
        markets: each query's listener's market (``None``: unknown).
        relevant: each query's wanted ids.

    Raises:
        InputError: the three sequences differ in length.
    """
    if not len(prefixes) == len(markets) == len(relevant):
        raise InputError(
            "prefixes/markets/relevant",
            (len(prefixes), len(markets), len(relevant)),
            "must hold one entry per query each",
        )
    if not prefixes:
        return 0.0
    recall = [
        retrieval_metrics(
            [index.complete(p, k, m, weight) for p, m in zip(prefixes, markets, strict=True)],
            relevant,
            (k,),
        )[f"recall@{k}"]
        for weight in weights
    ]
    return float(weights[int(np.argmax(recall))])
