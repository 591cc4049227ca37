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
from searchrank.core.errors import InputError

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
    _require_columns(rows, "rows", (S.SEARCH_ID, S.ITEM_ID, S.LABEL))
    engaged = rows.loc[rows[S.LABEL] >= min_label, [S.SEARCH_ID, S.ITEM_ID]]
    parts = [engaged.astype({S.ITEM_ID: np.int64})]
    if searches is not None and TARGET_ITEM_ID in searches.columns:
        _require_columns(searches, "searches", (S.SEARCH_ID,))
        asked = searches[searches[S.SEARCH_ID].isin(rows[S.SEARCH_ID])]
        named = asked[[S.SEARCH_ID, TARGET_ITEM_ID]].dropna(subset=[TARGET_ITEM_ID])
        parts.append(
            named.rename(columns={TARGET_ITEM_ID: S.ITEM_ID}).astype({S.ITEM_ID: np.int64})
        )
    wanted = pd.concat(parts).drop_duplicates()
    lists = wanted.groupby(S.SEARCH_ID)[S.ITEM_ID].agg(lambda ids: sorted(ids.tolist()))
    order = rows[S.SEARCH_ID].drop_duplicates()
    return lists.reindex(order[order.isin(lists.index)].to_numpy())


def _require_columns(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    """Raise :class:`InputError` naming the columns of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{name} columns", list(frame.columns), f"must include {missing}")


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
    if len(retrieved) != len(relevant):
        raise InputError(
            "retrieved", len(retrieved), f"must have one list per search ({len(relevant)})"
        )
    recalls = {k: [] for k in ks}  # type: dict[int, list[float]]
    reciprocal: list[float] = []
    for found, wanted in zip(retrieved, relevant, strict=True):
        targets = set(int(i) for i in wanted)
        if not targets:
            continue
        hits = np.fromiter((int(i) in targets for i in found), dtype=bool, count=len(found))
        for k in ks:
            recalls[k].append(hits[:k].sum() / len(targets))
        first = np.flatnonzero(hits)
        reciprocal.append(1.0 / (first[0] + 1) if len(first) else 0.0)
    out = {f"recall@{k}": float(np.mean(v)) if v else 0.0 for k, v in recalls.items()}
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


DENSE_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The dense list's weight choices in fusion (the lexical list weighs one minus it)."""
ROUTING_FILE = "routing.json"


@dataclass(frozen=True)
class FusionRouting:
    """The dense list's fusion weight per predicted intent, and for any other query."""

    dense_share: dict[str, float] = field(default_factory=dict)
    default: float = 0.5

    def __post_init__(self) -> None:
        for intent, share in {**self.dense_share, "default": self.default}.items():
            if not 0.0 <= share <= 1.0:
                raise InputError(f"dense_share[{intent}]", share, "must lie in [0, 1]")

    def weights(self, intent: str | None) -> tuple[float, float]:
        """(dense, lexical) weights for a query of ``intent`` (``None``: not predicted)."""
        share = self.dense_share.get(intent, self.default) if intent else self.default
        return share, 1.0 - share

    def fuse(
        self, dense: Sequence[int], lexical: Sequence[int], k: int, intent: str | None = None
    ) -> list[int]:
        return reciprocal_rank_fusion([dense, lexical], k, self.weights(intent))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> FusionRouting:
        try:
            saved = json.loads(path.read_text())
            return cls(dict(saved["dense_share"]), float(saved["default"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InputError(
                "routing", str(path), f"must be a saved FusionRouting ({error})"
            ) from error


def fit_fusion_routing(
    dense: Sequence[Sequence[int]],
    lexical: Sequence[Sequence[int]],
    relevant: Sequence[Sequence[int]],
    intents: Sequence[str],
    k: int = 100,
    shares: Sequence[float] = DENSE_SHARES,
) -> FusionRouting:
    """The dense share that maximizes mean Recall@k, for all searches (the default) and for
    the searches of each predicted intent; ties go to the share closest to an even fusion.

    Args:
        dense, lexical: per search, the two retrievers' ids, best first.
        relevant: per search, the wanted ids.
        intents: per search, the intent the model predicted.
    """
    if not len(dense) == len(lexical) == len(relevant) == len(intents):
        raise InputError(
            "searches",
            (len(dense), len(lexical), len(relevant), len(intents)),
            "dense, lexical, relevant and intents must have one entry per search",
        )
    order = sorted(shares, key=lambda share: abs(share - 0.5))
    fused = [
        [
            reciprocal_rank_fusion([d, x], k, (share, 1.0 - share))
            for d, x in zip(dense, lexical, strict=True)
        ]
        for share in order
    ]
    labels = np.asarray(intents, dtype=object)

    def best(rows: np.ndarray) -> float:
        if not rows.any():
            return 0.5
        chosen = np.flatnonzero(rows).tolist()
        wanted = [relevant[j] for j in chosen]
        recall = [
            retrieval_metrics([lists[j] for j in chosen], wanted, (k,))[f"recall@{k}"]
            for lists in fused
        ]
        return float(order[int(np.argmax(recall))])

    return FusionRouting(
        {str(intent): best(labels == intent) for intent in sorted(set(intents))},
        best(np.ones(len(labels), dtype=bool)),
    )
