"""Candidate generation for ``/search``: BM25 over names and artists, fused with the two-tower
retriever's Voyager index when the service has one, routed by the query's intent.

The lexical side finds what the words say, misspellings included (character trigrams); the
dense side finds what the listener means (moods, topics, their taste) and items whose names the
query never spells. A :class:`~searchrank.core.query_rewrite.QueryRewriter` first corrects or
completes the query against the catalogue's vocabulary: BM25 reads the rewrite beside the
original and the query tower reads both (each source's two lists fused, the rewrite's weighted
by its confidence), and the intent model reads the rewrite.

The dense and lexical ranked lists are merged by weighted reciprocal rank fusion, which needs
no calibration between BM25 scores and cosine similarities. When the service carries the
query-intent model, its predicted intent picks the fusion weights (:class:`FusionRouting`,
fitted on validation searches by ``evaluate_retrieval``), and its class probabilities become
ranker features.

On disk (the BentoML retriever model's folder) the lexical index sits at the top, as
:meth:`BM25Scorer.save` writes it; a dense retriever adds the two-tower checkpoint in
``two_tower/`` and its index in ``ann/``; the intent model lives in ``intent/`` and the routing
in ``routing.json``; the rewriter's lexicon in ``lexicon/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex
from searchrank.core.bm25 import BM25Scorer
from searchrank.core.errors import InputError
from searchrank.core.intent import IntentModel
from searchrank.core.query_rewrite import Lexicon, QueryRewriter, Rewrite
from searchrank.core.retrieval import ROUTING_FILE, FusionRouting, reciprocal_rank_fusion
from searchrank.core.retriever import Retriever

TWO_TOWER = "two_tower"
ANN = "ann"
INTENT = "intent"
LEXICON = "lexicon"
LEXICAL_TEXT = ("name", "artist_name")
"""The catalogue fields the lexical retriever indexes (:func:`lexical_text`)."""


@dataclass
class DenseRetriever:
    """The query tower and the index of the item tower's vectors."""

    model: Retriever
    index: AnnIndex

    def retrieve(self, queries: list[str], user_ids: list[int], n: int) -> list[list[int]]:
        """The ``n`` nearest items of each (query, listener), best first, in one batch."""
        vectors = self.model.embed_queries(queries, user_ids)
        ids, _ = self.index.query(vectors, n)
        return [row.tolist() for row in ids]


@dataclass(frozen=True)
class RetrieverParts:
    """Folders and files that join the lexical index in the service's retriever model; each
    is optional, but the two-tower checkpoint and its index come together."""

    two_tower: Path | None = None
    index: Path | None = None
    intent: Path | None = None
    routing: Path | None = None
    """A saved :class:`FusionRouting`; without it the fusion is even for every query."""

    def __post_init__(self) -> None:
        if (self.two_tower is None) != (self.index is None):
            raise ValueError("a dense retriever needs both its checkpoint and its index")


@dataclass
class CandidateGenerator:
    """Lexical candidates, fused with dense ones when ``dense`` is set; queries rewritten first
    when ``rewriter`` is set."""

    lexical: BM25Scorer
    dense: DenseRetriever | None = None
    intent: IntentModel | None = None
    routing: FusionRouting | None = None
    rewriter: QueryRewriter | None = None

    @classmethod
    def from_catalogue(
        cls,
        catalogue: pd.DataFrame,
        dense: DenseRetriever | None = None,
        intent: IntentModel | None = None,
    ) -> CandidateGenerator:
        """The service's generator for a catalogue: :func:`lexical_retriever` and the rewriter
        over the catalogue's :class:`~searchrank.core.query_rewrite.Lexicon`."""
        rewriter = QueryRewriter(Lexicon.from_catalogue(catalogue))
        return cls(lexical_retriever(catalogue), dense, intent, rewriter=rewriter)

    @property
    def item_ids(self) -> np.ndarray:
        """Every item that can be retrieved (the lexical index covers the catalogue)."""
        return self.lexical.item_ids

    def rewrite(self, query: str) -> Rewrite:
        """What the rewriter makes of the normalized ``query`` (unchanged without one)."""
        if self.rewriter is None:
            return Rewrite(query, query, "unchanged", 1.0)
        return self.rewriter.rewrite(query)

    def understand(self, query: str) -> pd.DataFrame | None:
        """The query's intent probabilities (one row, ``query_intent__<class>`` columns), or
        ``None`` without an intent model."""
        return None if self.intent is None else self.intent.features([query])

    def source_lists(
        self, rewrites: Sequence[Rewrite], user_ids: Sequence[int], n: int
    ) -> tuple[list[list[int]] | None, list[list[int]]]:
        """Each source's ``n`` ids for each query (as :meth:`rewrite` read it), best first:
        (dense, or None without a dense side; lexical).

        A rewritten query's lists fuse those of the original and of the rewrite, the rewrite's
        weighted by its confidence: a spelling correction is nearly always right, while a
        completion is a guess among the phrases the prefix begins (right about half the time on
        the synthetic catalogue). BM25 keeps the original at full weight, because its trigrams
        match a typo well and an even fusion with a wrong completion cost prefixes recall; the
        query tower never saw a typo, so its original list gets only the weight the rewrite
        lacks. All queries are embedded in one batch.
        """
        lexical = []
        for rewrite in rewrites:
            found = self.lexical.retrieve(rewrite.original, n)[0].tolist()
            if rewrite.changed:
                rewritten = self.lexical.retrieve(rewrite.query, n)[0].tolist()
                found = reciprocal_rank_fusion([found, rewritten], n, [1.0, rewrite.confidence])
            lexical.append(found)
        if self.dense is None:
            return None, lexical
        changed = [i for i, r in enumerate(rewrites) if r.changed]
        texts = [r.original for r in rewrites] + [rewrites[i].query for i in changed]
        users = list(user_ids) + [user_ids[i] for i in changed]
        found_dense = self.dense.retrieve(texts, users, n)
        dense = found_dense[: len(rewrites)]
        for j, i in enumerate(changed):
            weight = rewrites[i].confidence
            both = [dense[i], found_dense[len(rewrites) + j]]
            dense[i] = reciprocal_rank_fusion(both, n, [1.0 - weight, weight])
        return dense, lexical

    def retrieve(
        self, rewrite: Rewrite, user_id: int, n: int, intent: str | None = None
    ) -> list[int]:
        """At most ``n`` item ids for a query (as :meth:`rewrite` read it) and the listener,
        best first; ``intent`` picks the fusion weights when the generator has a routing."""
        dense, lexical = self.source_lists([rewrite], [user_id], n)
        if dense is None:
            return [int(i) for i in lexical[0]]
        routing = self.routing or FusionRouting()
        return routing.fuse(dense[0], lexical[0], n, intent)

    def save(self, folder: Path, parts: RetrieverParts | None = None) -> None:
        """Write the lexical index into ``folder`` and copy ``parts`` beside it."""
        parts = parts or RetrieverParts()
        self.lexical.save(folder)
        if parts.two_tower is not None:
            # Only what serving reads: a training checkpoint also holds the optimizer state.
            Retriever.load(parts.two_tower).save(folder / TWO_TOWER)
        for source, name in ((parts.index, ANN), (parts.intent, INTENT)):
            if source is not None:
                shutil.copytree(source, folder / name)
        if parts.routing is not None:
            FusionRouting.load(parts.routing).save(folder / ROUTING_FILE)
        if self.rewriter is not None:
            self.rewriter.lexicon.save(folder / LEXICON)

    @classmethod
    def load(cls, folder: Path) -> CandidateGenerator:
        dense = None
        if (folder / TWO_TOWER).is_dir():
            dense = DenseRetriever(Retriever.load(folder / TWO_TOWER), AnnIndex.load(folder / ANN))
        intent = IntentModel.load(folder / INTENT) if (folder / INTENT).is_dir() else None
        routing_file = folder / ROUTING_FILE
        routing = FusionRouting.load(routing_file) if routing_file.is_file() else None
        lexicon = folder / LEXICON
        rewriter = QueryRewriter(Lexicon.load(lexicon)) if lexicon.is_dir() else None
        return cls(BM25Scorer.load(folder), dense, intent, routing, rewriter)


def lexical_text(catalogue: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """What the served BM25 indexes of each catalogue item: its name and artist.

    Tags and metadata stay out: the lexical side finds what the words of a name say, and the
    item tower reads the rest (:func:`searchrank.core.retriever.two_tower_item_text`).

    Args:
        catalogue: one row per item with ``item_id``, ``name`` and ``artist_name`` (a missing
            value reads as empty); a repeated item keeps its first row.

    Returns:
        (item ids (m,), one ``"<name> <artist>"`` text per item).

    Raises:
        InputError: a column named above is missing.
    """
    missing = [c for c in (S.ITEM_ID, *LEXICAL_TEXT) if c not in catalogue.columns]
    if missing:
        raise InputError("catalogue columns", list(catalogue.columns), f"must include {missing}")
    items = catalogue.drop_duplicates(S.ITEM_ID)
    texts = (items["name"].fillna("") + " " + items["artist_name"].fillna("")).tolist()
    return items[S.ITEM_ID].to_numpy(), texts


def lexical_retriever(catalogue: pd.DataFrame) -> BM25Scorer:
    """The served BM25: :func:`lexical_text` in character trigrams, so misspellings match.

    Args:
        catalogue: one row per item with ``item_id``, ``name`` and ``artist_name``.
    """
    ids, texts = lexical_text(catalogue)
    return BM25Scorer.fit(ids, texts, analyzer="char3")
