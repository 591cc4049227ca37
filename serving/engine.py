"""What ``/rank`` and ``/search`` do, apart from HTTP: the service's pure logic.

:class:`SearchEngine` turns a request into feature rows (:mod:`searchrank.serving.online`),
encodes them with the feature processor saved beside the model, has them scored, and orders the
result. Scoring is a function handed in, so the BentoML service can put its adaptive batcher in
between while tests and the benchmark's bare app call the model directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from searchrank.core.candidates import CandidateGenerator
from searchrank.core.checkpoint import load_ranker
from searchrank.core.content import filter_applies, is_withheld, visible
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.features import FeatureProcessor
from searchrank.core.intent import is_intent_column, top_intent
from searchrank.core.model import ContextAwareRanker
from searchrank.core.text import normalize_text
from searchrank.features import tables as T
from searchrank.serving.api import (
    SEARCH_CANDIDATES,
    RankedItem,
    RankResponse,
    SearchResponse,
    SearchResult,
)
from searchrank.serving.online import DEFAULT_TIMEOUT_S, OnlineFeatures
from searchrank.serving.stages import stage

if TYPE_CHECKING:
    from feast import FeatureStore

Encoded = dict[str, np.ndarray]
"""One request's candidates encoded for the model: ``dense`` (n, F) and ``codes`` (n, C)."""
Scorer = Callable[[list[Encoded]], list[np.ndarray]]

METADATA = {
    "name": T.NAME_COLUMN,
    "artist_name": T.ARTIST_COLUMN,
    "item_type": T.ITEM_TYPE_COLUMN,
    "genre": T.GENRE_COLUMN,
}


@torch.no_grad()
def score_encoded(model: ContextAwareRanker, requests: list[Encoded]) -> list[np.ndarray]:
    """Scores of several requests' candidate lists in one forward pass.

    The lists are padded to the longest and masked, so each list's scores are what it would get
    alone (up to float rounding): the model's attention never crosses lists.
    """
    longest = max(len(r["dense"]) for r in requests)
    width, n_codes = requests[0]["dense"].shape[1], requests[0]["codes"].shape[1]
    dense = np.zeros((len(requests), longest, width), dtype=np.float32)
    codes = np.zeros((len(requests), longest, n_codes), dtype=np.int64)
    mask = np.zeros((len(requests), longest), dtype=bool)
    for b, request in enumerate(requests):
        n = len(request["dense"])
        dense[b, :n], codes[b, :n], mask[b, :n] = request["dense"], request["codes"], True
    scores = model(torch.from_numpy(dense), torch.from_numpy(codes), torch.from_numpy(mask))
    out = scores.float().numpy()
    return [out[b, : len(r["dense"])] for b, r in enumerate(requests)]


def normalized_query(query: str) -> str:
    """The query as the logs store it; a query without letters or digits is refused."""
    text = normalize_text(query)
    if not text:
        raise InputError("query", query, "must contain at least one letter or digit")
    return text


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
        self.score: Scorer = score or (lambda requests: score_encoded(ranker.model, requests))
        self.model_tag = model_tag
        self.uses_intent = any(is_intent_column(c) for c in ranker.processor.numeric_names)
        if self.uses_intent and retriever.intent is None:
            raise InputError(
                "retriever model",
                "without an intent model",
                "must carry the query-intent model whose probabilities the ranker reads",
            )

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
            store, ranker.contract, retriever.item_ids.tolist(), online_timeout_s
        )
        return cls(features, ranker, retriever, score, model_tag)

    def encode(self, frame: pd.DataFrame) -> Encoded:
        dense, codes = self.ranker.processor.transform(frame)
        return {"dense": dense, "codes": codes}

    def scored_rows(
        self,
        query: str,
        user_id: int,
        item_ids: Sequence[int],
        intent: pd.DataFrame | None = None,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The feature rows of known candidates and their scores (the skew tests compare
        both with training's). A ranker that reads the query's intent gets ``intent`` (from
        :meth:`CandidateGenerator.understand`), computed here when not given."""
        with stage("online_features"):
            frame = self.features.rows(query, user_id, item_ids)
        if self.uses_intent:
            if intent is None:
                with stage("intent"):
                    intent = self.retriever.understand(query)
            assert intent is not None  # __init__ checked that the retriever has an intent model
            frame = frame.assign(**{str(c): v for c, v in intent.iloc[0].items()})
        with stage("feature_processing"):
            encoded = self.encode(frame)
        with stage("model"):
            return frame, self.score([encoded])[0]

    def rank(
        self,
        query: str,
        user_id: int,
        item_ids: Sequence[int],
        intent: pd.DataFrame | None = None,
        explicit_filter: bool | None = None,
    ) -> RankResponse:
        """Order ``item_ids`` for the query and user; unknown ids are dropped and listed, and
        explicit items are withheld when the listener's filter applies (``explicit_filter`` is
        the request's, see :func:`~searchrank.core.content.filter_applies`).

        A repeated id is ranked once, at its best.
        """
        text = normalized_query(query)
        ids = list(dict.fromkeys(int(i) for i in item_ids))
        with stage("online_features"):
            known = self.features.known(ids)
        kept = [i for i, ok in zip(ids, known, strict=True) if ok]
        unknown = [i for i, ok in zip(ids, known, strict=True) if not ok]
        if not kept:
            with stage("online_features"):
                setting = self.features.explicit_setting(user_id)
            return RankResponse(
                items=[],
                unknown_item_ids=unknown,
                cold_start=True,
                model=self.model_tag,
                explicit_filter=filter_applies(explicit_filter, setting),
            )
        frame, scores = self.scored_rows(text, user_id, kept, intent)
        with stage("response"):
            order = np.argsort(-scores, kind="stable")
            applies = filter_applies(explicit_filter, frame[T.EXPLICIT_FILTER_COLUMN].iloc[0])
            shown = visible(order, frame[T.EXPLICIT_COLUMN].to_numpy(dtype=object), applies)
            return RankResponse(
                items=[RankedItem(item_id=kept[j], score=float(scores[j])) for j in shown],
                unknown_item_ids=unknown,
                cold_start=not self.features.user_known(frame),
                model=self.model_tag,
                explicit_filter=applies,
                withheld_explicit=len(order) - len(shown),
            )

    def candidates(self, query: str, user_id: int, k: int, intent: str | None = None) -> list[int]:
        """Candidates from the retriever (BM25 over names and artists, fused with the
        two-tower index when there is one, weighted for the query's ``intent``), topped up
        with the most popular items when fewer than ``k`` are found."""
        found = self.retriever.retrieve(query, user_id, SEARCH_CANDIDATES, intent)
        return found + self.popular(k - len(found), exclude=found, clean=False)

    def popular(self, n: int, exclude: Sequence[int], clean: bool) -> list[int]:
        """The ``n`` most popular cached items outside ``exclude``; only those a filtered
        listener may see when ``clean``."""
        if n <= 0:
            return []
        items = self.features.items.frame
        if clean:
            items = items[~is_withheld(items[T.EXPLICIT_COLUMN].to_numpy(dtype=object))]
        ranked = items[T.POPULARITY_COLUMN].astype(float).nlargest(n + len(exclude)).index
        seen = set(exclude)
        return [int(i) for i in ranked if int(i) not in seen][:n]

    def search(
        self, query: str, user_id: int, k: int, explicit_filter: bool | None = None
    ) -> SearchResponse:
        """Understand the query, retrieve, rank and return the top ``k`` with their catalogue
        metadata; the predicted intent routes retrieval and feeds the ranker. When the
        explicit-content filter leaves fewer than ``k`` results, the most popular clean items
        fill the list."""
        text = normalized_query(query)
        with stage("intent"):
            understood = self.retriever.understand(text)
            intent = top_intent(understood) if understood is not None else None
        with stage("retrieval"):
            candidates = self.candidates(text, user_id, k, intent)
        ranked = self.rank(text, user_id, candidates, understood, explicit_filter)
        missing = k - len(ranked.items)
        if ranked.explicit_filter and missing > 0:
            with stage("retrieval"):
                clean = self.popular(missing, exclude=candidates, clean=True)
            if clean:
                candidates = candidates + clean
                ranked = self.rank(text, user_id, candidates, understood, explicit_filter)
        with stage("response"):
            return self._response(text, intent, candidates, ranked, k)

    def _response(
        self,
        text: str,
        intent: str | None,
        candidates: list[int],
        ranked: RankResponse,
        k: int,
    ) -> SearchResponse:
        """The top ``k`` of ``ranked`` with their catalogue metadata."""
        top = ranked.items[:k]
        items = self.features.items.rows([r.item_id for r in top])
        results = [
            SearchResult(
                item_id=r.item_id,
                score=r.score,
                **{
                    field: (None if pd.isna(value) else str(value))
                    for field, value in (
                        (field, items[column].iloc[j]) for field, column in METADATA.items()
                    )
                },
            )
            for j, r in enumerate(top)
        ]
        return SearchResponse(
            query=text,
            intent=intent,
            results=results,
            retrieved=len(candidates),
            cold_start=ranked.cold_start,
            model=self.model_tag,
            explicit_filter=ranked.explicit_filter,
            withheld_explicit=ranked.withheld_explicit,
        )
