"""What ``/rank`` and ``/search`` do, apart from HTTP: the service's pure logic.

:class:`SearchEngine` reads a request's features and encodes them for the model
(:mod:`searchrank.serving.online`: item inputs pre-encoded in a cache, request inputs encoded by
the feature processor saved beside the model, no DataFrame on the way), has them scored, and
orders the result. Scoring is a function handed in: the model in-process by default, or the
BentoML service's adaptive batcher in a model worker of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from searchrank.core.candidates import CandidateGenerator
from searchrank.core.checkpoint import load_ranker
from searchrank.core.content import filter_applies, is_withheld, visible
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.features import FeatureProcessor
from searchrank.core.intent import is_intent_column
from searchrank.core.model import ContextAwareRanker, Encoded, InferenceRanker
from searchrank.core.query_rewrite import Rewrite, is_rewrite_column, rewrite_features
from searchrank.core.text import normalize_text
from searchrank.features import tables as T
from searchrank.serving.api import (
    SEARCH_CANDIDATES,
    QueryRewrite,
    RankedItem,
    RankResponse,
    SearchResponse,
    SearchResult,
)
from searchrank.serving.online import DEFAULT_TIMEOUT_S, Fetched, OnlineFeatures
from searchrank.serving.stages import stage

if TYPE_CHECKING:
    from feast import FeatureStore

Scorer = Callable[[list[Encoded]], list[np.ndarray]]
INTENT_CACHE = 65_536
"""How many query texts' intents the engine keeps (least recently used dropped)."""

METADATA = {
    "name": T.NAME_COLUMN,
    "artist_name": T.ARTIST_COLUMN,
    "item_type": T.ITEM_TYPE_COLUMN,
    "genre": T.GENRE_COLUMN,
}


def normalized_query(query: str) -> str:
    """The query as the logs store it; a query without letters or digits is refused."""
    text = normalize_text(query)
    if not text:
        raise InputError("query", query, "must contain at least one letter or digit")
    return text


@dataclass(frozen=True)
class Intent:
    """A query's intent: each class's probability (``query_intent__<class>`` columns, the
    ranker's inputs) and the most probable class (which routes retrieval)."""

    probabilities: dict[str, float]
    top: str


@dataclass(frozen=True)
class Ranking:
    """A request's known candidates in the ranker's order, before they become a response:
    ``/search`` turns only its top ``k`` into response items."""

    item_ids: list[int]
    """The candidates shown, best first."""
    scores: list[float]
    unknown_item_ids: list[int]
    cold_start: bool
    explicit_filter: bool
    withheld_explicit: int = 0

    def response(self, model: str) -> RankResponse:
        return RankResponse(
            items=[
                RankedItem(item_id=i, score=s)
                for i, s in zip(self.item_ids, self.scores, strict=True)
            ],
            unknown_item_ids=self.unknown_item_ids,
            cold_start=self.cold_start,
            model=model,
            explicit_filter=self.explicit_filter,
            withheld_explicit=self.withheld_explicit,
        )


@dataclass
class RankerBundle:
    """A loaded ranker checkpoint: the model, its feature processor, its description and the
    feature contract it was trained on."""

    model: ContextAwareRanker
    processor: FeatureProcessor
    description: dict[str, Any]
    contract: FeatureContract

    @classmethod
    def load(cls, folder: Path) -> RankerBundle:
        return cls(*load_ranker(folder), FeatureContract.load(folder))

    @cached_property
    def inference(self) -> InferenceRanker:
        """The model prepared for scoring requests (traced and frozen, built on first use)."""
        return InferenceRanker(self.model)


class SearchEngine:
    """``rank`` and ``search`` over online features, a ranker and a candidate generator."""

    def __init__(
        self,
        features: OnlineFeatures,
        ranker: RankerBundle,
        retriever: CandidateGenerator,
        score: Scorer | None = None,
        model_tag: str = "",
    ) -> None:
        self.features = features
        self.ranker = ranker
        self.retriever = retriever
        self.score: Scorer = score or ranker.inference.score
        self.model_tag = model_tag
        self.uses_intent = any(is_intent_column(c) for c in ranker.processor.numeric_names)
        self.uses_rewrite = any(is_rewrite_column(c) for c in ranker.processor.numeric_names)
        if self.uses_rewrite and retriever.rewriter is None:
            raise InputError(
                "retriever model",
                "without a query rewriter",
                "must carry the rewriter whose features the ranker reads",
            )
        if self.uses_intent and retriever.intent is None:
            raise InputError(
                "retriever model",
                "without an intent model",
                "must carry the query-intent model whose probabilities the ranker reads",
            )
        self._understood = lru_cache(maxsize=INTENT_CACHE)(self._understand)

    @classmethod
    def open(
        cls,
        store: FeatureStore,
        ranker: RankerBundle,
        retriever: CandidateGenerator,
        score: Scorer | None = None,
        model_tag: str = "",
        online_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> SearchEngine:
        """The engine over ``store``, caching the features of every item the retriever knows;
        a request waits at most ``online_timeout_s`` for each online-store lookup."""
        features = OnlineFeatures(
            store,
            ranker.contract,
            ranker.processor,
            retriever.item_ids.tolist(),
            online_timeout_s,
        )
        return cls(features, ranker, retriever, score, model_tag)

    def understand(self, query: str) -> Intent | None:
        """The normalized query's intent (None without an intent model), cached per query
        text (:data:`INTENT_CACHE` of them): the head of search traffic repeats, and the model
        costs milliseconds."""
        return self._understood(query)

    def _understand(self, query: str) -> Intent | None:
        model = self.retriever.intent
        return None if model is None else Intent(*model.understand(query))

    def scored_rows(
        self, query: str, user_id: int, item_ids: Sequence[int]
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The feature rows of known candidates, as the service read them, and their scores
        (the skew tests compare both with training's)."""
        intent = self.understand(query) if self.uses_intent else None
        rewrite = self.retriever.rewrite(query) if self.uses_rewrite else None
        fetched, scores = self._scored(query, user_id, item_ids, intent, rewrite)
        return fetched.frame(self._query_features(intent, rewrite)), scores

    def _query_features(self, intent: Intent | None, rewrite: Rewrite | None) -> dict[str, float]:
        """The ranker's inputs computed from the query: the intent's class probabilities and
        the rewrite's features, as far as the ranker reads them."""
        features = dict(intent.probabilities) if intent and self.uses_intent else {}
        if rewrite is not None and self.uses_rewrite:
            features.update(rewrite_features(rewrite))
        return features

    def _scored(
        self,
        query: str,
        user_id: int,
        item_ids: Sequence[int],
        intent: Intent | None,
        rewrite: Rewrite | None = None,
    ) -> tuple[Fetched, np.ndarray]:
        """The known candidates' features and scores; a ranker that reads the query's intent
        or its rewrite gets ``intent`` and ``rewrite``, computed here when not given."""
        with stage("online_features"):
            fetched = self.features.fetch(query, user_id, item_ids)
        if self.uses_intent and intent is None:
            with stage("intent"):
                intent = self.understand(query)
        if self.uses_rewrite and rewrite is None:
            with stage("rewrite"):
                rewrite = self.retriever.rewrite(query)
        with stage("feature_processing"):
            encoded = self.features.encode(fetched, self._query_features(intent, rewrite))
        with stage("model"):
            return fetched, self.score([encoded])[0]

    def rank(
        self,
        query: str,
        user_id: int,
        item_ids: Sequence[int],
        explicit_filter: bool | None = None,
    ) -> RankResponse:
        """Order ``item_ids`` for the query and user; unknown ids are dropped and listed, and
        explicit items are withheld when the listener's filter applies (``explicit_filter`` is
        the request's, see :func:`~searchrank.core.content.filter_applies`).

        A repeated id is ranked once, at its best.
        """
        ranking = self.ranking(normalized_query(query), user_id, item_ids, None, explicit_filter)
        with stage("response"):
            return ranking.response(self.model_tag)

    def ranking(
        self,
        text: str,
        user_id: int,
        item_ids: Sequence[int],
        intent: Intent | None,
        explicit_filter: bool | None,
        rewrite: Rewrite | None = None,
    ) -> Ranking:
        """:meth:`rank`'s order of ``item_ids`` for the normalized query ``text``; ``intent``
        and ``rewrite``, where the caller has them, spare computing them again."""
        ids = list(dict.fromkeys(int(i) for i in item_ids))
        with stage("online_features"):
            known = self.features.known(ids)
        kept = [i for i, ok in zip(ids, known, strict=True) if ok]
        unknown = [i for i, ok in zip(ids, known, strict=True) if not ok]
        if not kept:
            with stage("online_features"):
                setting = self.features.explicit_setting(user_id)
            return Ranking([], [], unknown, True, filter_applies(explicit_filter, setting))
        fetched, scores = self._scored(text, user_id, kept, intent, rewrite)
        with stage("response"):
            order = np.argsort(-scores, kind="stable")
            applies = filter_applies(explicit_filter, fetched.explicit_setting)
            shown = visible(order, fetched.explicit, applies)
            return Ranking(
                item_ids=[kept[j] for j in shown],
                scores=scores[shown].tolist(),
                unknown_item_ids=unknown,
                cold_start=not fetched.user_known,
                explicit_filter=applies,
                withheld_explicit=len(order) - len(shown),
            )

    def candidates(
        self, rewrite: Rewrite, user_id: int, k: int, intent: str | None = None
    ) -> list[int]:
        """Candidates for the query and its rewrite from the retriever (BM25 over names and
        artists, fused with the two-tower index and the generative retriever where the service
        has them, weighted for the query's ``intent``), topped up with the most popular items
        when fewer than ``k`` are found. The generative retriever's beam search is timed as the
        ``decode`` stage (a part of ``retrieval``). For a query that gets prefix completions
        (typed partway, or a whole name that begins longer ones) the listener's market is read
        from the online store (the ``listener`` stage), where the routing gives it a bonus
        among the prefix's completions."""
        market = None
        if self.retriever.needs_market(rewrite):
            with stage("listener"):
                market = self.features.listener_market(user_id)
        found = self.retriever.retrieve(rewrite, user_id, SEARCH_CANDIDATES, intent, stage, market)
        return found + self.popular(k - len(found), exclude=found, clean=False)

    def popular(self, n: int, exclude: Sequence[int], clean: bool) -> list[int]:
        """The ``n`` most popular cached items outside ``exclude``; only those a filtered
        listener may see when ``clean``."""
        if n <= 0:
            return []
        items = self.features.items.snapshot
        ranked = items.by_popularity
        if clean:
            ranked = ranked[~is_withheld(items.columns[T.EXPLICIT_COLUMN][ranked])]
        ids = items.item_ids
        seen = set(exclude)
        found: list[int] = []
        for position in ranked:
            if ids[position] not in seen:
                found.append(ids[position])
                if len(found) == n:
                    break
        return found

    def search(
        self, query: str, user_id: int, k: int, explicit_filter: bool | None = None
    ) -> SearchResponse:
        """Understand the query, retrieve, rank and return the top ``k`` with their catalogue
        metadata. The query is corrected or completed where the catalogue's vocabulary says it
        was mistyped or half-typed; the rewrite's intent routes retrieval and feeds the ranker,
        which scores the query as typed, as it was trained. When the
        explicit-content filter leaves fewer than ``k`` results, the most popular clean items
        fill the list."""
        text = normalized_query(query)
        with stage("rewrite"):
            rewrite = self.retriever.rewrite(text)
        with stage("intent"):
            understood = self.understand(rewrite.query)
        intent = understood.top if understood else None
        with stage("retrieval"):
            candidates = self.candidates(rewrite, user_id, k, intent)
        ranked = self.ranking(text, user_id, candidates, understood, explicit_filter, rewrite)
        missing = k - len(ranked.item_ids)
        if ranked.explicit_filter and missing > 0:
            with stage("retrieval"):
                clean = self.popular(missing, exclude=candidates, clean=True)
            if clean:
                candidates = candidates + clean
                ranked = self.ranking(
                    text, user_id, candidates, understood, explicit_filter, rewrite
                )
        with stage("response"):
            return self._response(rewrite, intent, candidates, ranked, k)

    def _response(
        self,
        rewrite: Rewrite,
        intent: str | None,
        candidates: list[int],
        ranked: Ranking,
        k: int,
    ) -> SearchResponse:
        """The top ``k`` of ``ranked`` with their catalogue metadata."""
        top = ranked.item_ids[:k]
        items, positions = self.features.items.positions(top)
        metadata = {field: items.columns[column][positions] for field, column in METADATA.items()}
        results = [
            SearchResult(
                item_id=item_id,
                score=score,
                **{
                    field: None if pd.isna(values[j]) else str(values[j])
                    for field, values in metadata.items()
                },
            )
            for j, (item_id, score) in enumerate(zip(top, ranked.scores[:k], strict=True))
        ]
        return SearchResponse(
            query=rewrite.original,
            rewrite=QueryRewrite(
                query=rewrite.query, kind=rewrite.kind, confidence=rewrite.confidence
            )
            if rewrite.changed
            else None,
            intent=intent,
            results=results,
            retrieved=len(candidates),
            cold_start=ranked.cold_start,
            model=self.model_tag,
            explicit_filter=ranked.explicit_filter,
            withheld_explicit=ranked.withheld_explicit,
        )
