"""Retrieval over the whole catalogue: what a search wanted, recall metrics and fusion.

Retrieval is measured per search against the set of items the listener wanted
(:func:`wanted_items`: streamed items, and on the synthetic logs the item a named search meant):
Recall@k is the share of that set among the first k retrieved, MRR the reciprocal rank of the
first wanted item (0 beyond the list). :func:`reciprocal_rank_fusion` merges ranked lists from
several retrievers (the ANN index and BM25 in ``/search``) by summing ``1 / (c + rank)``, which
needs no score calibration.

:class:`FusionRouting` is the query-intent routing of that fusion: how much the dense list weighs
against the lexical one for each predicted intent (a named track wants the exact words, a mood
wants the meaning). :func:`fit_fusion_routing` picks each intent's weight on validation
searches from a small grid, so it is measured, not hand-set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.errors import InputError, require_columns

EMBEDDING = "embedding"
"""The vector column of an item embeddings table (``item_id``, ``embedding``)."""
RRF_C = 60
"""The rank offset of reciprocal rank fusion (Cormack et al., SIGIR 2009)."""
TARGET_ITEM_ID = "target_item_id"
"""The searches table's column of the item a named search meant (null when unknown)."""


def wanted_items(
    rows: pd.DataFrame, min_label: int, searches: pd.DataFrame | None = None
) -> pd.Series:
    """The items each search wanted: the set retrieval is measured against.

    A search wanted every item it showed that the listener engaged with at ``label >=
    min_label`` (streamed, with :attr:`~searchrank.core.schema.Grade.STREAM`), and the item its
    query named when the log knows it: the searches table's ``target_item_id``. The synthetic
    generator records that item even when the logged retriever did not show it, and retrieval
    searches the whole catalogue, so it counts although no row shows it; real logs leave the
    column null or out, and then only engagement counts.

    Args:
        rows: (search × candidate) rows with ``search_id``, ``item_id`` and ``label``.
        min_label: the lowest label that makes a shown item wanted.
        searches: the searches table (``search_id``, ``target_item_id``), or ``None`` where
            only the rows are at hand (then only engagement counts).

    Returns:
        The sorted wanted item ids of each search of ``rows`` that wanted any, indexed by
        ``search_id`` in order of first appearance.

    Raises:
        InputError: ``rows`` or ``searches`` lacks a column named above.
    """
    require_columns(rows.columns, "rows", (S.SEARCH_ID, S.ITEM_ID, S.LABEL))
    engaged = rows.loc[rows[S.LABEL] >= min_label, [S.SEARCH_ID, S.ITEM_ID]]
    parts = [engaged.astype({S.ITEM_ID: np.int64})]
    if searches is not None and TARGET_ITEM_ID in searches.columns:
        require_columns(searches.columns, "searches", (S.SEARCH_ID,))
        asked = searches[searches[S.SEARCH_ID].isin(rows[S.SEARCH_ID])]
        named = asked[[S.SEARCH_ID, TARGET_ITEM_ID]].dropna(subset=[TARGET_ITEM_ID])
        parts.append(
            named.rename(columns={TARGET_ITEM_ID: S.ITEM_ID}).astype({S.ITEM_ID: np.int64})
        )
    wanted = pd.concat(parts).drop_duplicates()
    lists = wanted.groupby(S.SEARCH_ID)[S.ITEM_ID].agg(lambda ids: sorted(ids.tolist()))
    order = rows[S.SEARCH_ID].drop_duplicates()
    return lists.reindex(order[order.isin(lists.index)].to_numpy())


def item_streams(rows: pd.DataFrame, min_label: int = S.Grade.STREAM) -> pd.Series:
    """Each item's streams in a split: its rows with ``label >= min_label``, indexed by
    ``item_id`` (items never streamed are absent): the popularity that the query rewriter's
    lexicon and BM25's prior read (``CandidateGenerator.from_catalogue``).

    Raises:
        InputError: ``rows`` lacks ``item_id`` or ``label``.
    """
    streamed = _streamed(rows, (S.ITEM_ID,), min_label)[S.ITEM_ID].astype(np.int64)
    return streamed.value_counts().sort_index().astype(np.float64).rename("streams")


def listener_streams(rows: pd.DataFrame, min_label: int = S.Grade.STREAM) -> pd.DataFrame:
    """Who streamed what in a split: its rows with ``label >= min_label`` (``user_id``,
    ``item_id``), for the listeners' taste among prefix completions
    (:class:`~searchrank.core.completion.ListenerTaste`).

    Raises:
        InputError: ``rows`` lacks ``user_id``, ``item_id`` or ``label``.
    """
    streamed = _streamed(rows, (S.USER_ID, S.ITEM_ID), min_label)
    return streamed.astype(np.int64).reset_index(drop=True)


def _streamed(rows: pd.DataFrame, columns: tuple[str, ...], min_label: int) -> pd.DataFrame:
    """``columns`` of the rows with ``label >= min_label``; refuses rows lacking any of them
    or ``label``."""
    require_columns(rows.columns, "rows", (*columns, S.LABEL))
    return rows.loc[rows[S.LABEL] >= min_label, list(columns)]


def log_stream_counts(streams: pd.Series, item_ids: np.ndarray) -> np.ndarray:
    """``log1p`` of each of ``item_ids``' streams (:func:`item_streams`; an item it lacks
    counts 0), in ``item_ids``' order: the popularity BM25's prior and the prefix index read.

    Raises:
        InputError: a count is negative or not finite.
    """
    counts = pd.Series(streams, dtype=np.float64).reindex(item_ids).fillna(0.0)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise InputError("streams", float(counts.min()), "must be finite counts ≥ 0")
    return np.log1p(counts.to_numpy())


def recall_per_search(
    retrieved: Sequence[Sequence[int]] | np.ndarray,
    relevant: Sequence[Sequence[int]] | Sequence[np.ndarray],
    k: int,
) -> np.ndarray:
    """Recall@k of each search with at least one relevant item (the searches
    :func:`retrieval_metrics` averages), in order: the values a paired bootstrap resamples."""
    if len(retrieved) != len(relevant):
        raise InputError(
            "retrieved", len(retrieved), f"must have one list per search ({len(relevant)})"
        )
    recalls = []
    for found, wanted in zip(retrieved, relevant, strict=True):
        targets = {int(i) for i in wanted}
        if targets:
            recalls.append(len(targets.intersection(int(i) for i in found[:k])) / len(targets))
    return np.asarray(recalls, dtype=np.float64)


def retrieval_metrics(
    retrieved: Sequence[Sequence[int]] | np.ndarray,
    relevant: Sequence[Sequence[int]] | Sequence[np.ndarray],
    ks: Sequence[int] = (10, 100),
) -> dict[str, float]:
    """Mean Recall@k for each k and MRR over searches with at least one relevant item.

    Args:
        retrieved: per search, item ids best first.
        relevant: per search, the wanted item ids.
        ks: cut-offs of the recall.
    """
    recalls = {k: recall_per_search(retrieved, relevant, k) for k in ks}
    reciprocal: list[float] = []
    for found, wanted in zip(retrieved, relevant, strict=True):
        targets = set(int(i) for i in wanted)
        if not targets:
            continue
        first = next((rank for rank, i in enumerate(found) if int(i) in targets), None)
        reciprocal.append(0.0 if first is None else 1.0 / (first + 1))
    out = {f"recall@{k}": float(v.mean()) if len(v) else 0.0 for k, v in recalls.items()}
    out["mrr"] = float(np.mean(reciprocal)) if reciprocal else 0.0
    out["searches"] = float(len(reciprocal))
    return out


def reciprocal_rank_fusion(
    lists: Sequence[Sequence[int]], k: int, weights: Sequence[float] | None = None, c: int = RRF_C
) -> list[int]:
    """The ``k`` best ids by weighted ``sum(weight / (c + rank))`` over the ranked ``lists``.

    Ties keep the order in which the ids first appear, so a single list is returned unchanged.
    """
    weights = weights if weights is not None else [1.0] * len(lists)
    if len(weights) != len(lists):
        raise InputError("weights", list(weights), f"must have one weight per list ({len(lists)})")
    scores: dict[int, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, item in enumerate(ranked):
            key = int(item)
            scores[key] = scores.get(key, 0.0) + weight / (c + rank + 1)
    order = sorted(scores, key=lambda item: -scores[item])  # sorted() is stable
    return order[:k]


PARTIAL_ROUTE = "typed partway"
"""What :func:`route_key` adds to the intent of a query typed partway."""
DESCRIBED_ROUTE = "described"
"""What :func:`route_key` adds to the intent of a query typed whole that names no item."""


def route_key(intent: str, partial: bool, described: bool = False) -> str:
    """The routing's key of a query: its predicted intent, marked when the query was typed
    partway (:meth:`~searchrank.core.completion.PrefixIndex.is_partial`), since the query tower
    reads a prefix far worse than a whole name, or else when, as rewritten, it names no item of
    the catalogue (:meth:`~searchrank.core.completion.PrefixIndex.is_name`): a listener who
    describes a podcast wants the query tower far more than one who names it, and one intent's
    single weight traded one for the other (on 60k synthetic searches the podcast route's
    descriptive queries lost 4 points of Recall@100 for 1 point on the named ones)."""
    if partial:
        return f"{intent} ({PARTIAL_ROUTE})"
    return f"{intent} ({DESCRIBED_ROUTE})" if described else intent


DENSE_SHARES = (0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 1.0)
"""The dense list's weight choices in fusion (the lexical list weighs one minus it).

Reciprocal rank fusion (:data:`RRF_C` = 60) of two 100-long lists mixes them only for shares between
about 0.28 and 0.72: below that the lexical list's 100th item outscores the dense list's first,
and above it the reverse. So the grid is fine inside that range and has only the two single
lists outside it. (The earlier grid {0, 0.25, 0.5, 0.75, 1} offered three distinct fusions; on
60k synthetic searches the finer one lifted routed Recall@100 from 0.9267 to 0.9287 and halved
the album prefix gap, mostly by giving the routes of queries typed partway a share between the
lexical list alone and the even fusion.)"""
HEAD_K = 10
"""The head of a fused list: where a fusion's recall breaks ties between dense shares."""
GENERATIVE_SHARES = (0.0, 0.1, 0.2, 0.35, 0.5)
"""The generative list's weight choices, taken from the other two lists' in proportion."""
POPULARITY_WEIGHTS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
"""The lexical popularity prior's weight choices (:func:`popularity_reranked`)."""
ROUTING_FILE = "routing.json"


@dataclass(frozen=True)
class FusionRouting:
    """How ``/search`` merges its sources' lists, per predicted intent and for any other query.

    Attributes:
        dense_share: per intent (or :func:`route_key`), the dense list's weight against the
            lexical one.
        default: that weight for a query of any other intent (or none predicted).
        generative_share: per intent, the generative retriever's weight; the dense and lexical
            weights shrink in proportion, so the three sum to one.
        generative_default: that weight for any other intent.
        popularity_weight: the lexical prior: BM25's candidates are re-ordered by their score
            plus this times the log of their streams (:func:`popularity_reranked`).
        market_weight: the bonus, in log streams, of the items of the listener's market among
            a query's prefix completions (:meth:`~searchrank.core.completion.PrefixIndex.complete`).
        prefix_weight: the weight of those completions in the lexical fusion of a query typed
            partway, against BM25's list, which weighs 1.
        taste_weight: the weight of the listener's taste among those completions
            (:meth:`~searchrank.core.completion.ListenerTaste.lift`).
    """

    dense_share: dict[str, float] = field(default_factory=dict)
    default: float = 0.5
    generative_share: dict[str, float] = field(default_factory=dict)
    generative_default: float = 0.0
    popularity_weight: float = 0.0
    market_weight: float = 0.0
    prefix_weight: float = 1.0
    taste_weight: float = 0.0

    def __post_init__(self) -> None:
        shares = {
            **{f"dense_share[{i}]": v for i, v in self.dense_share.items()},
            "default": self.default,
            **{f"generative_share[{i}]": v for i, v in self.generative_share.items()},
            "generative_default": self.generative_default,
        }
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise InputError(name, share, "must lie in [0, 1]")
        for name in ("popularity_weight", "market_weight", "prefix_weight", "taste_weight"):
            weight = getattr(self, name)
            if not (np.isfinite(weight) and weight >= 0):
                raise InputError(name, weight, "must be finite, ≥ 0")

    def weights(
        self, intent: str | None, partial: bool = False, described: bool = False
    ) -> tuple[float, float, float]:
        """(dense, lexical, generative) weights for a query of ``intent`` (``None``: not
        predicted); a ``partial`` query (typed partway) or a ``described`` one takes its own
        route's weights where the routing has them (:func:`route_key`), else the intent's."""
        share, generative = self.default, self.generative_default
        keys = dict.fromkeys((intent, route_key(intent, partial, described))) if intent else {}
        for key in keys:  # the intent's weights, then the route's where it has its own
            share = self.dense_share.get(key, share)
            generative = self.generative_share.get(key, generative)
        rest = 1.0 - generative
        return share * rest, (1.0 - share) * rest, generative

    def fuse(
        self,
        dense: Sequence[int],
        lexical: Sequence[int],
        k: int,
        intent: str | None = None,
        generative: Sequence[int] = (),
        partial: bool = False,
        described: bool = False,
    ) -> list[int]:
        """The ``k`` ids of the lists' fusion with the weights of ``intent`` (and ``partial``
        and ``described``, as in :meth:`weights`)."""
        weights = self.weights(intent, partial, described)
        return reciprocal_rank_fusion([dense, lexical, generative], k, weights)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> FusionRouting:
        """A saved routing; one saved before the generative source, the popularity prior, the
        market bonus, the prefix weight and the taste weight existed loads with the defaults
        of each."""
        try:
            saved = json.loads(path.read_text())
            return cls(
                dict(saved["dense_share"]),
                float(saved["default"]),
                dict(saved.get("generative_share", {})),
                float(saved.get("generative_default", 0.0)),
                float(saved.get("popularity_weight", 0.0)),
                float(saved.get("market_weight", 0.0)),
                float(saved.get("prefix_weight", 1.0)),
                float(saved.get("taste_weight", 0.0)),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InputError(
                "routing", str(path), f"must be a saved FusionRouting ({error})"
            ) from error


def popularity_reranked(
    ids: np.ndarray, scores: np.ndarray, log_streams: np.ndarray, weight: float, k: int
) -> list[int]:
    """The ``k`` best of a lexical retriever's candidates by ``score + weight · log_streams``.

    A prefix or a short name matches many items about equally well; among those, listeners far
    more often want the popular one. Ties keep the retriever's order.

    Args:
        ids, scores: the candidates best first, and their lexical scores.
        log_streams: each candidate's ``log1p`` of its streams.
        weight: the prior's weight (0 keeps the lexical order).
    """
    if weight == 0.0:
        return [int(i) for i in ids[:k]]
    order = np.argsort(-(scores + weight * log_streams), kind="stable")[:k]
    return [int(i) for i in ids[order]]


def fit_popularity_weight(
    pools: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    relevant: Sequence[Sequence[int]],
    k: int = 100,
    weights: Sequence[float] = POPULARITY_WEIGHTS,
) -> float:
    """The prior's weight that maximizes the lexical list's mean Recall@k (ties: the smaller).

    Args:
        pools: per search, the lexical candidates (ids, scores, log streams), best first.
        relevant: per search, the wanted ids.
    """
    recall = [
        retrieval_metrics(
            [popularity_reranked(i, s, p, weight, k) for i, s, p in pools], relevant, (k,)
        )[f"recall@{k}"]
        for weight in weights
    ]
    return float(weights[int(np.argmax(recall))])


def fit_fusion_routing(
    dense: Sequence[Sequence[int]],
    lexical: Sequence[Sequence[int]],
    relevant: Sequence[Sequence[int]],
    intents: Sequence[str],
    k: int = 100,
    generative: Sequence[Sequence[int]] | None = None,
    popularity_weight: float = 0.0,
) -> FusionRouting:
    """The fusion weights that maximize mean Recall@k, for all searches (the defaults) and for
    the searches of each predicted intent.

    First the dense share of the dense–lexical fusion. Shares that tie on Recall@k are told apart
    by Recall@:data:`HEAD_K` (the head of the list, which the ranker and the listener read first),
    then go to the share closest to an even fusion. (Whole routes tie: on 60k synthetic
    searches and the coarser grid {0, 0.25, 0.5, 0.75, 1}, queries typed partway and routed as
    artists recalled as much at shares 0, 0.25 and 0.5 on validation; 0.5, nearest the even
    fusion, cost 3 points on the test searches, and 0, which the head chooses, did not.) Then,
    when ``generative`` lists are given, the generative list's weight on top of that (ties go
    to the smaller weight, so the source must add recall to get any).

    Args:
        dense, lexical: per search, the two retrievers' ids, best first.
        relevant: per search, the wanted ids.
        intents: per search, its route: the intent the model predicted, as :func:`route_key`
            marks it for a query typed partway.
        generative: per search, the generative retriever's ids, or ``None`` without one.
        popularity_weight: the lexical prior the lists were retrieved with, kept in the routing.
    """
    sizes = {len(dense), len(lexical), len(relevant), len(intents)}
    if generative is not None:
        sizes.add(len(generative))
    if len(sizes) != 1:
        raise InputError(
            "searches",
            (len(dense), len(lexical), len(relevant), len(intents)),
            "dense, lexical, relevant, intents (and generative) must have one entry per search",
        )
    labels = np.asarray(intents, dtype=object)
    groups = {str(intent): np.flatnonzero(labels == intent) for intent in sorted(set(intents))}
    everyone = np.arange(len(labels))
    lists = [dense, lexical, generative or [[] for _ in labels]]
    shares = sorted(DENSE_SHARES, key=lambda share: abs(share - 0.5))

    head = min(HEAD_K, k)

    def best(rows: np.ndarray, choices: list[tuple[float, float, float]], by_head: bool) -> int:
        """The index of the weights in ``choices`` whose fusion recalls most on ``rows``; among
        ties, the one that recalls most in its head when ``by_head``, else the first."""
        wanted = [relevant[j] for j in rows]
        scores = []
        for w in choices:
            fused = [reciprocal_rank_fusion([part[j] for part in lists], k, w) for j in rows]
            found = retrieval_metrics(fused, wanted, (head, k))
            scores.append((found[f"recall@{k}"], found[f"recall@{head}"] if by_head else 0.0))
        most = max(recall for recall, _ in scores)
        tied = [i for i, (recall, _) in enumerate(scores) if recall >= most - 1e-12]
        return max(tied, key=lambda i: scores[i][1])  # the first of equal heads

    def fitted(rows: np.ndarray) -> tuple[float, float]:
        """(dense share, generative weight) for the searches ``rows``."""
        if not len(rows):
            return 0.5, 0.0
        share = shares[best(rows, [(s, 1.0 - s, 0.0) for s in shares], by_head=True)]
        if generative is None:
            return share, 0.0
        choices = [(share * (1 - g), (1 - share) * (1 - g), g) for g in GENERATIVE_SHARES]
        return share, GENERATIVE_SHARES[best(rows, choices, by_head=False)]

    by_intent = {intent: fitted(rows) for intent, rows in groups.items()}
    share, weight = fitted(everyone)
    return FusionRouting(
        {intent: fit[0] for intent, fit in by_intent.items()},
        share,
        {intent: fit[1] for intent, fit in by_intent.items()} if generative is not None else {},
        weight,
        popularity_weight,
    )
