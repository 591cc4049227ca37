"""Retrieval over the whole catalogue: item texts, exact top-k, fusion and recall metrics.

Retrieval is measured per search against the set of items the listener wanted (streamed items,
and on the synthetic logs the item a named search meant): Recall@k is the share of that set
among the first k retrieved, MRR the reciprocal rank of the first wanted item (0 beyond the
list). :func:`reciprocal_rank_fusion` merges ranked lists from several retrievers (the ANN
index and BM25 in ``/search``) by summing ``1 / (c + rank)``, which needs no score calibration.

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
import torch

from searchrank.core import schema as S
from searchrank.core.errors import InputError

TEXT_COLUMNS = ("name", "artist_name", "keywords")
"""Catalogue columns joined into an item's text; missing ones are skipped."""
METADATA_COLUMNS = ("item_type", "market", "language")
"""Catalogue columns that become metadata tokens of the item tower (``"item_type track"``)."""
EMBEDDING = "embedding"
"""The vector column of an item embeddings table (``item_id``, ``embedding``)."""
RRF_C = 60
"""The rank offset of reciprocal rank fusion (Cormack et al., SIGIR 2009)."""


def item_texts(catalogue: pd.DataFrame) -> tuple[np.ndarray, list[str], list[list[str]]]:
    """(item ids, one text per item, metadata tokens per item) of a catalogue table.

    Raises:
        InputError: the catalogue has no ``item_id`` or no text column at all.
    """
    text_columns = [c for c in TEXT_COLUMNS if c in catalogue.columns]
    if S.ITEM_ID not in catalogue.columns or not text_columns:
        raise InputError(
            "catalogue columns",
            list(catalogue.columns),
            f"must include {S.ITEM_ID} and at least one of {list(TEXT_COLUMNS)}",
        )
    items = catalogue.drop_duplicates(S.ITEM_ID)
    texts = items[text_columns].fillna("").astype(str).agg(" ".join, axis=1).tolist()
    metadata = [c for c in METADATA_COLUMNS if c in items.columns]
    values = items[metadata].fillna("").astype(str).to_numpy()
    extra = [
        [f"{column} {value}" for column, value in zip(metadata, row, strict=True) if value]
        for row in values
    ]
    return items[S.ITEM_ID].to_numpy(dtype=np.int64), texts, extra


@torch.no_grad()
def exact_top_k(
    queries: np.ndarray, items: np.ndarray, k: int, batch_size: int = 1024
) -> np.ndarray:
    """Row indices into ``items`` (n, d) of each query's (q, d) ``k`` highest dot products,
    best first: shape (q, min(k, n))."""
    matrix = torch.from_numpy(np.ascontiguousarray(items, dtype=np.float32))
    k = min(k, len(items))
    parts = [
        torch.topk(torch.from_numpy(queries[start : start + batch_size]) @ matrix.T, k).indices
        for start in range(0, len(queries), batch_size)
    ]
    return torch.cat(parts).numpy() if parts else np.zeros((0, k), dtype=np.int64)


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
