"""Benchmark: the two-tower retriever against BM25, Recall@{10,100} and MRR, on two datasets.

1. Synthetic music search (the generator, ``--searches`` searches): searches cut by time into
   70 % train, 10 % validation, 20 % test. A test search's wanted items are those of
   :func:`~searchrank.core.retrieval.wanted_items`: every item streamed and the item a named
   search meant (the generator knows it, even when the logged retriever did not show it).
2. Last.fm tag search (``../shared/datasets/hetrec2011-lastfm-2k``): each (listener, tag, date)
   is a search whose query is the tag and whose wanted items are the artists the listener gave
   that tag that day; cut by date the same way. An artist's text is its name and the 10 tags
   most given to it before the test period.

The systems are measured by ``evaluate_retrieval``'s own code (the component that blesses the
retriever), so these figures and a pipeline's blessing measure the same thing. All search the
whole catalogue: BM25 as the service's lexical retriever (character trigrams over names and
artists, :func:`~searchrank.core.candidates.lexical_retriever`); the two-tower retriever trained
by ``train_retriever`` (Ray Train, 2 workers) and served through its Voyager index; their even
reciprocal rank fusion; and, on the synthetic logs (which carry each search's intent), the fusion
routed by the query-intent model as ``/search`` does it: the intent model fitted on the train
searches, each predicted intent's fusion weight fitted on the validation searches, both measured
on the test searches (:func:`evaluate_retrieval`). One more baseline is the benchmark's own:
BM25 in character trigrams over the text the item tower reads (names, artists and tags,
:func:`~searchrank.core.retriever.two_tower_item_text`). Target: Recall@100 at least 1.2 × BM25's
on both (the stronger BM25 is the baseline); reported for the retriever alone (``ratio``) and for
what ``/search`` retrieves (``routed_ratio``). The last line is the JSON result.

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

from searchrank.components.evaluate_retrieval.config import RetrievalConfig
from searchrank.components.evaluate_retrieval.logic import (
    evaluate_retrieval,
    system_lists,
    system_metrics,
    wanted_searches,
)
from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.train_retriever.logic import RetrieverSummary, train_retriever
from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex, AnnParams
from searchrank.core.bm25 import BM25Scorer
from searchrank.core.candidates import CandidateGenerator, DenseRetriever, lexical_retriever
from searchrank.core.intent import IntentModel
from searchrank.core.retrieval import retrieval_metrics
from searchrank.core.retriever import Retriever, two_tower_item_text

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
class Trained:
    """A retriever trained by ``train_retriever`` and served through its Voyager index."""

    summary: RetrieverSummary
    dense: DenseRetriever
    train_s: float


def train_and_index(
    name: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    catalogue: pd.DataFrame,
    config: TrainRetrieverConfig,
) -> Trained:
    """Train the two-tower retriever on ``train``/``valid`` and index its item vectors."""
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
    return Trained(summary, DenseRetriever(retriever, index), train_s)


def item_tower_bm25(
    catalogue: pd.DataFrame, searches: pd.DataFrame, relevant: list[list[int]]
) -> dict[str, float]:
    """BM25 in character trigrams over the item tower's text, measured on ``searches``."""
    ids, texts, _ = two_tower_item_text(catalogue)
    scorer = BM25Scorer.fit(ids, texts, analyzer="char3")
    found = [scorer.retrieve(q, K)[0].tolist() for q in searches[S.QUERY].astype(str)]
    return retrieval_metrics(found, relevant, (10, K))


def dataset_result(
    systems: dict[str, dict[str, float]],
    trained: Trained,
    shares: dict[str, float],
) -> dict[str, Any]:
    """One dataset's part of the JSON line from each system's metrics."""
    baseline = max(systems["bm25"]["recall@100"], systems["bm25_with_tags"]["recall@100"])
    ratio = systems["two_tower"]["recall@100"] / baseline
    routed = "routed" in systems
    served = systems["routed" if routed else "fused"]["recall@100"] / baseline
    return {
        "ratio": round(ratio, 3),
        "fused_ratio": round(systems["fused"]["recall@100"] / baseline, 3),
        "routed_ratio": round(served, 3) if routed else None,
        "dense_share_by_intent": shares,
        "met": ratio >= TARGET,
        "served_met": served >= TARGET,
        **{system: {k: round(v, 4) for k, v in m.items()} for system, m in systems.items()},
        "train_pairs": trained.summary.shapes["train_pairs"],
        "items": trained.summary.shapes["items"],
        "test_searches": int(systems["bm25"]["searches"]),
        "best_epoch": trained.summary.best_epoch,
        "train_s": round(trained.train_s, 1),
    }


def synthetic(searches: int, config: TrainRetrieverConfig) -> dict[str, Any]:
    """Train on the generator's logs and measure with :func:`evaluate_retrieval`, routing
    included, as the pipeline blesses the retriever."""
    from searchrank.features import tables as T

    folder = logs(searches, seed=3)
    catalogue = pd.read_parquet(folder / T.file_name(T.CATALOGUE))
    logged = pd.read_parquet(folder / T.file_name(T.SEARCHES))
    impressions = pd.read_parquet(folder / T.file_name(T.IMPRESSIONS))
    train_part, valid, test = time_cut(impressions, S.SEARCH_ID)
    trained = train_and_index("synthetic", train_part, valid, catalogue, config)
    taught = logged[logged[S.SEARCH_ID].isin(train_part[S.SEARCH_ID].unique())]
    intent = IntentModel.fit(taught[S.QUERY].tolist(), taught["intent"].tolist())
    generator = CandidateGenerator(lexical_retriever(catalogue), trained.dense, intent)
    measure = RetrievalConfig(k=K)
    evaluation, routing = evaluate_retrieval(valid, test, logged, generator, measure)
    held_out = wanted_searches(test, measure.min_relevant_label, logged)
    relevant = held_out["relevant"].tolist()
    systems = {
        "bm25": evaluation.systems["bm25"],
        "bm25_with_tags": item_tower_bm25(catalogue, held_out, relevant),
        **{name: m for name, m in evaluation.systems.items() if name != "bm25"},
    }
    return dataset_result(systems, trained, routing.dense_share)


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
    train_part, valid, test = time_cut(rows, S.SEARCH_ID)
    before = pd.concat([train_part, valid])
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
    trained = train_and_index("lastfm", train_part, valid, catalogue, config)
    # An artist is its own item: the lexical retriever reads its name and an empty artist.
    lexical = lexical_retriever(catalogue.assign(artist_name=""))
    generator = CandidateGenerator(lexical, trained.dense)
    held_out = wanted_searches(test, RetrievalConfig().min_relevant_label)
    relevant = held_out["relevant"].tolist()
    lists = system_lists(generator, held_out, K)
    systems = system_metrics(lists, relevant, K)
    systems = {
        "bm25": systems.pop("bm25"),
        "bm25_with_tags": item_tower_bm25(catalogue, held_out, relevant),
        **systems,
    }
    return dataset_result(systems, trained, {})


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
