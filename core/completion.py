"""Search-as-you-type at the item level: the items whose name or artist begins with what the
listener has typed so far, the most streamed first.

A prefix such as "mi" or "midnight c" says little to BM25's trigrams and nothing to the query
tower, and the :class:`~searchrank.core.query_rewrite.QueryRewriter` completes it to one phrase
only, the most popular one, which is often not the one meant (a short prefix begins hundreds of
names). The :class:`PrefixIndex` lists every item such a query could be the start of, so a
prefix's candidates hold the item meant whenever it is popular enough to make the first ``n``.

It also tells a query typed partway from one typed whole (:meth:`PrefixIndex.is_partial`): the
query begins some catalogue name or artist and equals none. ``/search`` routes such queries
with their own fusion weights (:func:`~searchrank.core.retrieval.route_key`), because the query
tower, which reads whole words, helps them far less than it helps a whole name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.retrieval import log_stream_counts, require_columns
from searchrank.core.text import normalize_text

PREFIX_FIELDS = ("name", "artist_name")
"""The catalogue fields a listener starts typing (an item is found by either)."""
PREFIX_FILE = "prefix_index.npz"
_LAST_CHARACTER = "\U0010ffff"
"""Sorts after every character, so ``[prefix, prefix + this)`` holds the phrases it begins."""


@dataclass(frozen=True)
class PrefixIndex:
    """Every (normalized phrase, item) pair of the catalogue, sorted by phrase.

    Attributes:
        phrases: (r,) each row's normalized name or artist, sorted.
        item_ids: (r,) the item each row describes.
        log_streams: (r,) ``log1p`` of that item's streams (0 when unknown): the order of
            :meth:`complete`.
    """

    phrases: np.ndarray
    item_ids: np.ndarray
    log_streams: np.ndarray

    @classmethod
    def from_catalogue(
        cls, catalogue: pd.DataFrame, streams: pd.Series | None = None
    ) -> PrefixIndex:
        """The index of a catalogue's names and artists.

        Args:
            catalogue: one row per item with ``item_id``, ``name`` and ``artist_name`` (a
                missing value reads as empty); a repeated item keeps its first row.
            streams: each item's streams in the training window, indexed by item id
                (:func:`~searchrank.core.retrieval.item_streams`); items it lacks count 0.

        Raises:
            InputError: a column named above is missing, or a stream count is negative or
                not finite.
        """
        require_columns(catalogue, "catalogue", (S.ITEM_ID, *PREFIX_FIELDS))
        items = catalogue.drop_duplicates(S.ITEM_ID)
        rows = pd.concat(
            [
                pd.DataFrame(
                    {
                        "phrase": items[field].fillna("").astype(str).map(normalize_text),
                        S.ITEM_ID: items[S.ITEM_ID].to_numpy(),
                    }
                )
                for field in PREFIX_FIELDS
            ]
        )
        rows = rows[rows["phrase"] != ""].drop_duplicates().sort_values("phrase", kind="stable")
        ids = rows[S.ITEM_ID].to_numpy(dtype=np.int64)
        log_streams = np.zeros(len(ids)) if streams is None else log_stream_counts(streams, ids)
        return cls(rows["phrase"].to_numpy(dtype=str), ids, log_streams)

    def _rows(self, prefix: str) -> slice:
        """The rows whose phrase begins with ``prefix`` (normalized)."""
        low = int(np.searchsorted(self.phrases, prefix, side="left"))
        high = int(np.searchsorted(self.phrases, prefix + _LAST_CHARACTER, side="left"))
        return slice(low, max(low, high))

    def is_partial(self, query: str) -> bool:
        """Whether the normalized ``query`` begins some name or artist and is none itself."""
        if not query:
            return False
        rows = self._rows(query)
        return rows.stop > rows.start and self.phrases[rows.start] != query

    def complete(self, prefix: str, n: int) -> list[int]:
        """At most ``n`` ids of the items whose name or artist begins with the normalized
        ``prefix``, the most streamed first (ties in phrase order); none for an empty one."""
        if not prefix:
            return []
        rows = self._rows(prefix)
        ids, log_streams = self.item_ids[rows], self.log_streams[rows]
        order = np.argsort(-log_streams, kind="stable")
        found = pd.unique(ids[order])
        return [int(i) for i in found[:n]]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / PREFIX_FILE,
            phrases=self.phrases,
            item_ids=self.item_ids,
            log_streams=self.log_streams,
        )

    @classmethod
    def load(cls, folder: Path) -> PrefixIndex:
        with np.load(folder / PREFIX_FILE) as saved:
            return cls(saved["phrases"], saved["item_ids"], saved["log_streams"])
