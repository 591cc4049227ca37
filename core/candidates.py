"""Candidate generation for ``/search``: BM25 over names and artists, fused with the two-tower
retriever's Voyager index when the service has one, routed by the query's intent.

The lexical side finds what the words say, misspellings included (character trigrams); the
dense side finds what the listener means (moods, topics, their taste) and items whose names the
query never spells. A :class:`~searchrank.core.query_rewrite.QueryRewriter` first corrects or
completes the query against the catalogue's vocabulary: BM25 reads the rewrite beside the
original and the query tower reads both (each source's two lists fused, the rewrite's weighted
by its confidence), and the intent model reads the rewrite.

A query that may still be typed ("midni", "the we", or a whole name that begins longer ones,
such as "velvet") also gets the items whose name begins with it, whole names first, then the
most streamed, those of the listener's market ahead
(:class:`~searchrank.core.completion.PrefixIndex`), fused into the lexical list; one typed
partway (no whole name) also takes the routing's own weights for queries typed partway.

A third, generative source (:class:`~searchrank.core.generative.GenerativeSource`) writes the
semantic IDs of the items a query wants, where the service carries one.

The ranked lists are merged by weighted reciprocal rank fusion, which needs no calibration
between BM25 scores, cosine similarities and log-probabilities. When the service carries the
query-intent model, its predicted intent picks the fusion weights (:class:`FusionRouting`,
fitted on validation searches by ``evaluate_retrieval``), and its class probabilities become
ranker features. The routing also holds the weight of BM25's popularity prior: given the
items' streams, BM25's candidates are re-ordered by score plus that weight times log streams
(:func:`~searchrank.core.retrieval.popularity_reranked`), which a prefix needs most.

On disk (the BentoML retriever model's folder) the lexical index sits at the top, as
:meth:`BM25Scorer.save` writes it, with the log of the items' streams in ``log_streams.npy``
where known; a dense retriever adds the two-tower checkpoint in ``two_tower/`` and its index in
``ann/``; the generative retriever lives in ``generative/``, the intent model in ``intent/``
and the routing in ``routing.json``; the rewriter's lexicon in ``lexicon/`` and the prefix
index in ``prefix_index.npz``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex
from searchrank.core.bm25 import BM25Scorer
from searchrank.core.completion import PREFIX_FILE, PrefixIndex
from searchrank.core.dense_prior import DENSE_POOL
from searchrank.core.errors import require_columns
from searchrank.core.generative import GenerativeSource
from searchrank.core.intent import IntentModel
from searchrank.core.query_rewrite import Lexicon, QueryRewriter, Rewrite, catalogue_rewriter
from searchrank.core.retrieval import (
    ROUTING_FILE,
    FusionRouting,
    log_stream_counts,
    popularity_reranked,
    reciprocal_rank_fusion,
)
from searchrank.core.retriever import Retriever

TWO_TOWER = "two_tower"
ANN = "ann"
INTENT = "intent"
LEXICON = "lexicon"
GENERATIVE = "generative"
LOG_STREAMS_FILE = "log_streams.npy"
Timer = Callable[[str], AbstractContextManager[object]]
"""Times a named part of retrieval (the service passes its stage timer); by default nothing."""
GENERATIVE_DEPTH = 20
"""Items the generative retriever decodes per query (its beam width): decoding costs about
linearly in the beam, and its first items are the ones that add recall to the fusion."""
LEXICAL_POOL = 1000
"""BM25 candidates the popularity prior re-orders before the first ``n`` are kept."""
LEXICAL_TEXT = ("name", "artist_name")
"""The catalogue fields the lexical retriever indexes (:func:`lexical_text`)."""


@dataclass
class DenseRetriever:
    """The query tower and the index of the item tower's vectors."""

    model: Retriever
    index: AnnIndex

    def retrieve(self, queries: list[str], user_ids: list[int], n: int) -> list[list[int]]:
        """The ``n`` best items of each (query, listener), in one batch: the nearest, or with
        the model's popularity prior, the best of the :data:`DENSE_POOL` nearest after it."""
        vectors = self.model.embed_queries(queries, user_ids)
        prior = self.model.prior
        if prior is None or prior.weight == 0:
            ids, _ = self.index.query(vectors, n)
            return [row.tolist() for row in ids]
        ids, distances = self.index.query(vectors, max(n, DENSE_POOL))
        similarities = self.index.similarities(distances)
        return prior.reorder(self.model.items.index(ids), ids, similarities, n)


@dataclass(frozen=True)
class RetrieverParts:
    """Folders and files that join the lexical index in the service's retriever model; each
    is optional, but the two-tower checkpoint and its index come together."""

    two_tower: Path | None = None
    index: Path | None = None
    intent: Path | None = None
    routing: Path | None = None
    """A saved :class:`FusionRouting`; without it the fusion is even for every query."""
    generative: Path | None = None
    """``train_generative_retriever``'s model folder."""
    train: Path | None = None
    """The training split, whose streams (:func:`~searchrank.core.retrieval.item_streams`)
    weigh the rewriter's lexicon, BM25's popularity prior and the prefix completions, and
    whose listeners' streams (:func:`~searchrank.core.retrieval.listener_streams`) are their
    taste among those completions."""

    def __post_init__(self) -> None:
        if (self.two_tower is None) != (self.index is None):
            raise ValueError("a dense retriever needs both its checkpoint and its index")


@dataclass(frozen=True)
class SourceLists:
    """Each source's ids for each query, best first (``None``: the service lacks the source)."""

    lexical: list[list[int]]
    dense: list[list[int]] | None = None
    generative: list[list[int]] | None = None
    partial: list[bool] = field(default_factory=list)
    """Whether each query was typed partway (never, without a prefix index)."""
    described: list[bool] = field(default_factory=list)
    """Whether each query, typed whole, names no item as rewritten (never, without a prefix
    index): :func:`~searchrank.core.retrieval.route_key`."""


@dataclass
class CandidateGenerator:
    """Lexical candidates, fused with dense and generative ones when those are set; queries
    rewritten first when ``rewriter`` is set.

    Attributes:
        log_streams: ``log1p`` of each lexical item's streams (aligned with
            ``lexical.item_ids``) for the popularity prior; ``None``: no prior.
        prefix: the catalogue's names for queries typed partway; ``None``: none.
    """

    lexical: BM25Scorer
    dense: DenseRetriever | None = None
    intent: IntentModel | None = None
    routing: FusionRouting | None = None
    rewriter: QueryRewriter | None = None
    generative: GenerativeSource | None = None
    log_streams: np.ndarray | None = None
    prefix: PrefixIndex | None = None

    @classmethod
    def from_catalogue(
        cls,
        catalogue: pd.DataFrame,
        dense: DenseRetriever | None = None,
        intent: IntentModel | None = None,
        streams: pd.Series | None = None,
        generative: GenerativeSource | None = None,
        listeners: pd.DataFrame | None = None,
    ) -> CandidateGenerator:
        """The service's generator for a catalogue: :func:`lexical_retriever`, the rewriter
        over the catalogue's :class:`~searchrank.core.query_rewrite.Lexicon` and the
        :class:`~searchrank.core.completion.PrefixIndex` of its names.

        Args:
            streams: each item's streams in the training window
                (:func:`~searchrank.core.retrieval.item_streams`), for the lexicon's
                popularity, BM25's prior and the order of prefix completions; items it lacks
                count 0.
            listeners: who streamed what in the training window
                (:func:`~searchrank.core.retrieval.listener_streams`), for the listeners' taste
                among prefix completions; ``None``: no listener's taste is known.
        """
        lexical = lexical_retriever(catalogue)
        log_streams = None
        if streams is not None:
            log_streams = log_stream_counts(streams, lexical.item_ids)
        rewriter = catalogue_rewriter(catalogue, streams)
        prefix = PrefixIndex.from_catalogue(catalogue, streams, listeners)
        return cls(lexical, dense, intent, None, rewriter, generative, log_streams, prefix)

    @property
    def item_ids(self) -> np.ndarray:
        """Every item that can be retrieved (the lexical index covers the catalogue)."""
        return self.lexical.item_ids

    def rewrite(self, query: str) -> Rewrite:
        """What the rewriter makes of the normalized ``query`` (unchanged without one)."""
        if self.rewriter is None:
            return Rewrite.unchanged(query)
        return self.rewriter.rewrite(query)

    def understand(self, query: str) -> pd.DataFrame | None:
        """The query's intent probabilities (one row, ``query_intent__<class>`` columns), or
        ``None`` without an intent model."""
        return None if self.intent is None else self.intent.features([query])

    @property
    def popularity_weight(self) -> float:
        """The popularity prior's weight: the routing's, where there are streams to weigh."""
        if self.log_streams is None or self.routing is None:
            return 0.0
        return self.routing.popularity_weight

    @property
    def market_weight(self) -> float:
        """The bonus of the listener's market among prefix completions: the routing's."""
        return 0.0 if self.routing is None else self.routing.market_weight

    @property
    def taste_weight(self) -> float:
        """The weight of the listener's taste among prefix completions: the routing's."""
        return 0.0 if self.routing is None else self.routing.taste_weight

    @property
    def prefix_weight(self) -> float:
        """The weight of prefix completions against BM25's list: the routing's (1 without)."""
        return 1.0 if self.routing is None else self.routing.prefix_weight

    def needs_market(self, rewrite: Rewrite) -> bool:
        """Whether retrieving for this query reads the listener's market: it gets prefix
        completions (:meth:`completes`) and the routing gives the listener's market a bonus."""
        return self.market_weight > 0 and self.completes(rewrite)

    def lexical_pool(self, query: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BM25's :data:`LEXICAL_POOL` best items for ``query``: (ids, scores, log streams),
        the streams 0 without any (what the prior re-orders; also what fitting it reads)."""
        ids, scores = self.lexical.retrieve(query, LEXICAL_POOL)
        if self.log_streams is None:
            return ids, scores, np.zeros(len(ids))
        return ids, scores, self.log_streams[self.lexical.positions(ids)]

    def completions_of(self, rewrite: Rewrite) -> list[tuple[str, float]]:
        """The phrases whose prefix completions join the query's lexical list, each with its
        weight against the routing's ``prefix_weight``: the query as typed where the listener
        may still be typing it (:meth:`~searchrank.core.completion.PrefixIndex.continues`), and
        the correction of a query typed whole where that continues, at the correction's
        confidence (a misspelled "velvte" is read as "velvet", a name that begins longer
        ones); none without a prefix index."""
        if self.prefix is None:
            return []
        phrases = [(rewrite.original, 1.0)]
        if rewrite.changed and not self.prefix.is_partial(rewrite.original):
            phrases.append((rewrite.query, rewrite.confidence))
        return [(phrase, weight) for phrase, weight in phrases if self.prefix.continues(phrase)]

    def completes(self, rewrite: Rewrite) -> bool:
        """Whether the query gets prefix completions (:meth:`completions_of`)."""
        return bool(self.completions_of(rewrite))

    def is_partial(self, rewrite: Rewrite) -> bool:
        """Whether the query (as typed) was typed partway; never without a prefix index."""
        return self.prefix is not None and self.prefix.is_partial(rewrite.original)

    def is_described(self, rewrite: Rewrite) -> bool:
        """Whether the query, as rewritten, names no item of the catalogue and was not typed
        partway; never without a prefix index."""
        if self.prefix is None or self.is_partial(rewrite):
            return False
        return not self.prefix.is_name(rewrite.query)  # normalized, as the rewriter writes

    def _lexical(self, query: str, n: int) -> list[int]:
        """BM25's ``n`` best items for ``query``, after the popularity prior."""
        weight = self.popularity_weight
        if weight == 0.0:
            return [int(i) for i in self.lexical.retrieve(query, n)[0]]
        return popularity_reranked(*self.lexical_pool(query), weight, n)

    def source_lists(
        self,
        rewrites: Sequence[Rewrite],
        user_ids: Sequence[int],
        n: int,
        timed: Timer = lambda _: nullcontext(),
        markets: Sequence[str | None] | None = None,
    ) -> SourceLists:
        """Each source's ``n`` ids for each query (as :meth:`rewrite` read it), best first.

        A rewritten query's lists fuse those of the original and of the rewrite, the rewrite's
        weighted by its confidence: a spelling correction is nearly always right, while a
        completion is a guess among the phrases the prefix begins (right about half the time on
        the synthetic catalogue). BM25 keeps the original at full weight, because its trigrams
        match a typo well and an even fusion with a wrong completion cost prefixes recall; the
        query tower and the generative retriever never saw a typo, so their original lists get
        only the weight the rewrite lacks. The model sources read all queries in one batch; the
        generative retriever decodes :data:`GENERATIVE_DEPTH` items at most, inside
        ``timed("decode")``.

        A query typed partway (:meth:`is_partial`) is read as typed: its completion picks one
        of the phrases it begins and would only narrow the list (reading it cost the prefix
        slices 0.7–0.8 points of Recall@100 on 30k synthetic searches); it is still what
        :meth:`rewrite` returns, for the listener and the ranker's features. The lexical fusion
        of any query that may still be typed (:meth:`completes`: typed partway, or a whole name
        that begins longer ones) adds, at the routing's ``prefix_weight`` (BM25's list weighs
        1), the items whose name it begins: whole names first, then the most streamed, those of
        the listener's market (``markets``, one per query, ``None`` where unknown) ahead by the
        routing's ``market_weight``, and the genres the listener streams ahead by its
        ``taste_weight``; so does a correction that may still be typed, at the
        weight times its confidence (:meth:`completions_of`). (On 60k synthetic searches, 4 %
        of the track prefixes typed were whole names too, "velvet" or "dream", and recalled
        0.35 without them.)
        """
        partial = [self.is_partial(rewrite) for rewrite in rewrites]
        reads = [
            Rewrite.unchanged(r.original) if p else r
            for r, p in zip(rewrites, partial, strict=True)
        ]
        markets = markets if markets is not None else [None] * len(rewrites)
        lexical = []
        for rewrite, market, user in zip(reads, markets, user_ids, strict=True):
            lists, weights = [self._lexical(rewrite.original, n)], [1.0]
            if rewrite.changed:
                lists.append(self._lexical(rewrite.query, n))
                weights.append(rewrite.confidence)
            prefix = self.prefix
            if prefix is not None:
                for phrase, weight in self.completions_of(rewrite):
                    lists.append(
                        prefix.complete(
                            phrase, n, market, self.market_weight, user, self.taste_weight
                        )
                    )
                    weights.append(self.prefix_weight * weight)
            lexical.append(reciprocal_rank_fusion(lists, n, weights))
        dense = None if self.dense is None else _both(self.dense.retrieve, reads, user_ids, n)
        generative = None
        if self.generative is not None:
            depth = min(n, GENERATIVE_DEPTH)
            with timed("decode"):
                generative = _both(self.generative.retrieve, reads, user_ids, depth)
        described = [self.is_described(rewrite) for rewrite in rewrites]
        return SourceLists(lexical, dense, generative, partial, described)

    def retrieve(
        self,
        rewrite: Rewrite,
        user_id: int,
        n: int,
        intent: str | None = None,
        timed: Timer = lambda _: nullcontext(),
        market: str | None = None,
    ) -> list[int]:
        """At most ``n`` item ids for a query (as :meth:`rewrite` read it) and the listener,
        best first; ``intent`` picks the fusion weights when the generator has a routing;
        ``timed`` and the listener's ``market`` as in :meth:`source_lists`."""
        lists = self.source_lists([rewrite], [user_id], n, timed, [market])
        if lists.dense is None and lists.generative is None:
            return lists.lexical[0]
        routing = self.routing or FusionRouting()
        dense = lists.dense[0] if lists.dense is not None else []
        generative = lists.generative[0] if lists.generative is not None else []
        return routing.fuse(
            dense, lists.lexical[0], n, intent, generative, lists.partial[0], lists.described[0]
        )

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
        if parts.generative is not None:
            GenerativeSource.load(parts.generative).save(folder / GENERATIVE)
        if self.log_streams is not None:
            np.save(folder / LOG_STREAMS_FILE, self.log_streams)
        if self.rewriter is not None:
            self.rewriter.lexicon.save(folder / LEXICON)
        if self.prefix is not None:
            self.prefix.save(folder)

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
        generative = None
        if (folder / GENERATIVE).is_dir():
            generative = GenerativeSource.load(folder / GENERATIVE)
        streams = folder / LOG_STREAMS_FILE
        log_streams = np.load(streams) if streams.is_file() else None
        prefix = PrefixIndex.load(folder) if (folder / PREFIX_FILE).is_file() else None
        lexical = BM25Scorer.load(folder)
        return cls(lexical, dense, intent, routing, rewriter, generative, log_streams, prefix)


def _both(
    retrieve: Callable[[list[str], list[int], int], list[list[int]]],
    rewrites: Sequence[Rewrite],
    user_ids: Sequence[int],
    n: int,
) -> list[list[int]]:
    """A model source's lists for the queries as typed, each fused with its list for the
    rewrite (weighted by the rewrite's confidence) where the rewriter changed the query."""
    changed = [i for i, r in enumerate(rewrites) if r.changed]
    texts = [r.original for r in rewrites] + [rewrites[i].query for i in changed]
    users = list(user_ids) + [user_ids[i] for i in changed]
    found = retrieve(texts, users, n)
    lists = found[: len(rewrites)]
    for j, i in enumerate(changed):
        weight = rewrites[i].confidence
        pair = [lists[i], found[len(rewrites) + j]]
        lists[i] = reciprocal_rank_fusion(pair, n, [1.0 - weight, weight])
    return lists


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
    require_columns(catalogue.columns, "catalogue", (S.ITEM_ID, *LEXICAL_TEXT))
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
