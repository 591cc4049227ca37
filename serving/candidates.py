"""Candidate generation for ``/search``: BM25 over names and artists, fused with the two-tower
retriever's Voyager index when the service has one.

The lexical side finds what the words say, misspellings included (character trigrams); the
dense side finds what the listener means (moods, topics, their taste) and items whose names the
query never spells. Their ranked lists are merged by reciprocal rank fusion, which needs no
calibration between BM25 scores and cosine similarities.

On disk (the BentoML retriever model's folder) the lexical index sits at the top, as
:meth:`BM25Scorer.save` writes it; a dense retriever adds the two-tower checkpoint in
``two_tower/`` and its index in ``ann/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from searchrank.components.core.ann import AnnIndex
from searchrank.components.core.bm25 import BM25Scorer
from searchrank.components.core.retrieval import reciprocal_rank_fusion
from searchrank.components.core.retriever import Retriever

TWO_TOWER = "two_tower"
ANN = "ann"


@dataclass
class DenseRetriever:
    """The query tower and the index of the item tower's vectors."""

    model: Retriever
    index: AnnIndex

    def retrieve(self, query: str, user_id: int, n: int) -> np.ndarray:
        vector = self.model.embed_queries([query], [user_id])
        ids, _ = self.index.query(vector, n)
        return ids[0]


@dataclass
class CandidateGenerator:
    """Lexical candidates, fused with dense ones when ``dense`` is set."""

    lexical: BM25Scorer
    dense: DenseRetriever | None = None

    @property
    def item_ids(self) -> np.ndarray:
        """Every item that can be retrieved (the lexical index covers the catalogue)."""
        return self.lexical.item_ids

    def retrieve(self, query: str, user_id: int, n: int) -> list[int]:
        """At most ``n`` item ids for the normalized ``query`` and the listener, best first."""
        lexical, _ = self.lexical.retrieve(query, n)
        if self.dense is None:
            return [int(i) for i in lexical]
        dense = self.dense.retrieve(query, user_id, n)
        return reciprocal_rank_fusion([dense.tolist(), lexical.tolist()], n)

    def save(self, folder: Path, two_tower: Path | None = None, index: Path | None = None) -> None:
        """Write the lexical index into ``folder`` and copy a two-tower checkpoint and its
        index beside it (both or neither)."""
        if (two_tower is None) != (index is None):
            raise ValueError("a dense retriever needs both its checkpoint and its index")
        self.lexical.save(folder)
        if two_tower is not None and index is not None:
            shutil.copytree(two_tower, folder / TWO_TOWER)
            shutil.copytree(index, folder / ANN)

    @classmethod
    def load(cls, folder: Path) -> CandidateGenerator:
        dense = None
        if (folder / TWO_TOWER).is_dir():
            dense = DenseRetriever(Retriever.load(folder / TWO_TOWER), AnnIndex.load(folder / ANN))
        return cls(BM25Scorer.load(folder), dense)
