"""Benchmark: the two-tower retriever against BM25, Recall@{10,100} and MRR, on two datasets.

1. Synthetic music search (the generator, ``--searches`` searches): searches cut by time into
   70 % train, 10 % validation, 20 % test. A test search's wanted items are the item a named
   search meant (the generator knows it, even when the logged retriever did not show it) and
   every item streamed.
2. Last.fm tag search (``../shared/datasets/hetrec2011-lastfm-2k``): each (listener, tag, date)
   is a search whose query is the tag and whose wanted items are the artists the listener gave
   that tag that day; cut by date the same way. An artist's text is its name and the 10 tags
   most given to it before the test period.

Systems, all over the whole catalogue: BM25 (character trigrams) over names and artists, as the
service's lexical retriever; BM25 over names, artists and tags (the same text the item tower
reads); the two-tower retriever trained by ``train_retriever`` (Ray Train, 2 workers) and
served through its Voyager index; the even reciprocal rank fusion of the index and BM25; and,
on the synthetic logs (which carry each search's intent), the fusion routed by the query-intent
model as ``/search`` does it: the intent model fitted on the train searches, each predicted
intent's fusion weight fitted on the validation searches (:func:`fit_fusion_routing`), both
measured on the test searches. Target: Recall@100 at least 1.2 × BM25's on both (the stronger
BM25 is the baseline); reported for the retriever alone (``ratio``) and for what ``/search``
retrieves (``routed_ratio``). The last line is the JSON result.

Usage: python tests/benchmarks/bench_retrieval.py [--quick] [--searches N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _data import logs
from shared_data import SHARED_DATASETS

from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.train_retriever.logic import train_retriever
from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex, AnnParams
from searchrank.core.bm25 import BM25Scorer
from searchrank.core.intent import IntentModel
from searchrank.core.retrieval import (
    fit_fusion_routing,
    reciprocal_rank_fusion,
    retrieval_metrics,
)
from searchrank.core.retriever import Retriever

TARGET = 1.2
K = 100
TOP_TAGS = 10


def time_cut(frame: pd.DataFrame, by: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """70 / 10 / 20 % of the distinct values of ``by`` (time-ordered search ids)."""
    ordered = np.sort(frame[by].unique())
    first, second = ordered[int(0.7 * len(ordered))], ordered[int(0.8 * len(ordered))]
    return (
        frame[frame[by] < first],
        frame[(frame[by] >= first) & (frame[by] < second)],
        frame[frame[by] >= second],
    )


@dataclass(frozen=True)
class Routing:
    """What the routed fusion needs: the validation searches with their wanted items, and the
    predicted intent of every validation and test search."""

    valid_queries: pd.DataFrame
    valid_relevant: list[list[int]]
    valid_intents: list[str]
    test_intents: list[str]


def evaluate(
    name: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    catalogue: pd.DataFrame,
    test_queries: pd.DataFrame,
    relevant: list[list[int]],
    config: TrainRetrieverConfig,
    routing: Routing | None = None,
) -> dict[str, Any]:
    """Train on ``train``/``valid``, then score every system on the test searches."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-retrieval-{name}-"))
    for part, frame in (("train", train), ("valid", valid), ("catalogue", catalogue)):
        frame.to_parquet(folder / f"{part}.parquet", index=False)
    started = time.perf_counter()
    summary = train_retriever(
        folder / "train.parquet",
        folder / "valid.parquet",
        folder / "catalogue.parquet",
        folder / "model",
        folder / "embeddings.parquet",
        config,
        work_dir=folder / "work",
        log=lambda line: print(f"[{name}] {line}", flush=True),
    )
    train_s = time.perf_counter() - started
    retriever = Retriever.load(folder / "model")
    index = AnnIndex.build(retriever.item_ids, retriever.embed_items(), AnnParams())

    def dense(searches: pd.DataFrame) -> list[list[int]]:
        vectors = retriever.embed_queries(
            searches[S.QUERY].tolist(), searches[S.USER_ID].to_numpy()
        )
        return [row.tolist() for row in index.query(vectors, K)[0]]

    queries = test_queries[S.QUERY].tolist()
    two_tower = dense(test_queries)
    results: dict[str, Any] = {}
    scorers: dict[str, BM25Scorer] = {}
    lexical: dict[str, list[list[int]]] = {}
    for system, columns in (
        ("bm25", ["name", "artist_name"]),
        ("bm25_with_tags", ["name", "artist_name", "keywords"]),
    ):
        present = [c for c in columns if c in catalogue.columns]
        texts = catalogue[present].fillna("").astype(str).agg(" ".join, axis=1).tolist()
        scorers[system] = BM25Scorer.fit(catalogue[S.ITEM_ID].to_numpy(), texts, analyzer="char3")
        lexical[system] = [scorers[system].retrieve(q, K)[0].tolist() for q in queries]
        results[system] = retrieval_metrics(lexical[system], relevant)
    results["two_tower"] = retrieval_metrics(two_tower, relevant)
    fused = [
        reciprocal_rank_fusion([a, b], K) for a, b in zip(two_tower, lexical["bm25"], strict=True)
    ]
    results["fused"] = retrieval_metrics(fused, relevant)
    shares = {}
    if routing is not None:
        fitted = fit_fusion_routing(
            dense(routing.valid_queries),
            [scorers["bm25"].retrieve(q, K)[0].tolist() for q in routing.valid_queries[S.QUERY]],
            routing.valid_relevant,
            routing.valid_intents,
            K,
        )
        routed = [
            fitted.fuse(a, b, K, intent)
            for a, b, intent in zip(two_tower, lexical["bm25"], routing.test_intents, strict=True)
        ]
        results["routed"] = retrieval_metrics(routed, relevant)
        shares = fitted.dense_share
    baseline = max(results["bm25"]["recall@100"], results["bm25_with_tags"]["recall@100"])
    ratio = results["two_tower"]["recall@100"] / baseline
    served = results.get("routed", results["fused"])["recall@100"] / baseline
    return {
        "ratio": round(ratio, 3),
        "fused_ratio": round(results["fused"]["recall@100"] / baseline, 3),
        "routed_ratio": round(served, 3) if routing is not None else None,
        "dense_share_by_intent": shares,
        "met": ratio >= TARGET,
        "served_met": served >= TARGET,
        **{system: {k: round(v, 4) for k, v in m.items()} for system, m in results.items()},
        "train_pairs": summary.shapes["train_pairs"],
        "items": summary.shapes["items"],
        "test_searches": len(relevant),
        "best_epoch": summary.best_epoch,
        "train_s": round(train_s, 1),
    }


def synthetic(searches: int, config: TrainRetrieverConfig) -> dict[str, Any]:
    from searchrank.features import tables as T

    folder = logs(searches, seed=3)
    catalogue = pd.read_parquet(folder / T.file_name(T.CATALOGUE))
    logged = pd.read_parquet(folder / T.file_name(T.SEARCHES))
    impressions = pd.read_parquet(folder / T.file_name(T.IMPRESSIONS))
    train, valid, test = time_cut(impressions, S.SEARCH_ID)

    def wanted(part: pd.DataFrame) -> tuple[pd.DataFrame, list[list[int]]]:
        """The part's searches with a wanted item (meant or streamed), and those items."""
        asked = logged[logged[S.SEARCH_ID].isin(part[S.SEARCH_ID].unique())].set_index(S.SEARCH_ID)
        streamed = part[part[S.LABEL] >= 2].groupby(S.SEARCH_ID)[S.ITEM_ID].agg(list)
        items = [
            sorted(set(streamed.get(sid, [])) | ({int(t)} if pd.notna(t) else set()))
            for sid, t in asked["target_item_id"].items()
        ]
        keep = [bool(w) for w in items]
        return asked.loc[keep, [S.QUERY, S.USER_ID]], [w for w in items if w]

    test_queries, test_relevant = wanted(test)
    valid_queries, valid_relevant = wanted(valid)
    taught = logged[logged[S.SEARCH_ID].isin(train[S.SEARCH_ID].unique())]
    intent = IntentModel.fit(taught[S.QUERY].tolist(), taught["intent"].tolist())
    routing = Routing(
        valid_queries,
        valid_relevant,
        intent.predict(valid_queries[S.QUERY].tolist()).tolist(),
        intent.predict(test_queries[S.QUERY].tolist()).tolist(),
    )
    return evaluate(
        "synthetic", train, valid, catalogue, test_queries, test_relevant, config, routing
    )


def lastfm(config: TrainRetrieverConfig) -> dict[str, Any]:
    from searchrank.core.text import normalize_text
    from searchrank.features.adapters.lastfm import load_lastfm

    data = load_lastfm(SHARED_DATASETS / "hetrec2011-lastfm-2k")
    tags = data.tags.set_index("tag_id")["tag"].map(normalize_text)
    rows = data.tag_assignments.assign(query=lambda f: f["tag_id"].map(tags))
    rows = rows[rows["artist_id"].isin(data.artists["artist_id"]) & (rows[S.QUERY] != "")]
    key = ["event_timestamp", "user_id", "tag_id"]
    rows = rows.sort_values(key, kind="stable")
    rows[S.SEARCH_ID] = rows.groupby(key, sort=False).ngroup()
    rows = rows.rename(columns={"artist_id": S.ITEM_ID}).assign(**{S.LABEL: 2})
    train, valid, test = time_cut(rows, S.SEARCH_ID)
    before = pd.concat([train, valid])
    top_tags = (
        before.groupby([S.ITEM_ID, S.QUERY])
        .size()
        .rename("n")
        .reset_index()
        .sort_values([S.ITEM_ID, "n"], ascending=[True, False])
        .groupby(S.ITEM_ID)
        .head(TOP_TAGS)
        .groupby(S.ITEM_ID)[S.QUERY]
        .agg(" ".join)
    )
    catalogue = data.artists.rename(columns={"artist_id": S.ITEM_ID}).assign(
        keywords=lambda f: f[S.ITEM_ID].map(top_tags).fillna("")
    )
    grouped = test.groupby(S.SEARCH_ID)
    return evaluate(
        "lastfm",
        train,
        valid,
        catalogue,
        grouped[[S.QUERY, S.USER_ID]].first(),
        grouped[S.ITEM_ID].agg(list).tolist(),
        config,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 searches, 3 epochs")
    parser.add_argument("--searches", type=int, default=60_000)
    args = parser.parse_args()
    config = TrainRetrieverConfig()
    searches = args.searches
    if args.quick:
        config, searches = replace(config, epochs=3), 10_000
    result = {
        "bench": "retrieval",
        "target": TARGET,
        "synthetic": synthetic(searches, config),
        "lastfm": lastfm(config),
    }
    result["met"] = result["synthetic"]["met"] and result["lastfm"]["met"]
    result["served_met"] = result["synthetic"]["served_met"] and result["lastfm"]["served_met"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
