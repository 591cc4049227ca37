"""Benchmark: ``POST /rank`` with 100 items under ``bentoml serve`` against a bare Starlette app.

Both servers do the same work in the same run: the same ranker, the same Feast online store
(SQLite), the same engine (:mod:`searchrank.serving.engine`: item cache, one batched Feast lookup,
text match, feature processor, model). BentoML adds its HTTP stack, validation, metrics and the
adaptive batcher in a separate model process; the bare app calls the model in-process under
uvicorn. Load is bounded: ``--requests`` requests at ``--concurrency`` from a thread pool on
127.0.0.1. Also reported: end-to-end ``/search`` latency (query intent → BM25 fused with the
two-tower retriever's Voyager index, routed by intent → online features → ranker → top 10, at
concurrency 1; the Bento carries a retriever, index and intent model trained on the same data)
``/rank`` alone at concurrency 1, the mean milliseconds per stage of both at concurrency 1 (the
service's ``searchrank_stage_seconds`` histograms, ``serving/stages.py``) and the model-only
latency of one 100-item list, so the report shows where the time goes. The last line is the
JSON result.

Usage: python tests/benchmarks/bench_serve.py [--quick] [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import time_split, training_set

TARGET = 0.7
P99_TARGET = 1.5
ITEMS = 100
BARE_APP = """
import os, sys
from pathlib import Path
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from searchrank.features.store import open_store
from searchrank.serving.engine import RankerBundle, SearchEngine
from searchrank.core.candidates import CandidateGenerator

checkpoint, retriever_dir, repo, port = sys.argv[1:5]
bundle = RankerBundle.load(Path(checkpoint))
retriever = CandidateGenerator.load(Path(retriever_dir))
engine = SearchEngine.open(open_store(repo), bundle, retriever)

def rank(request_body):
    return engine.rank(request_body["query"], request_body["user_id"], request_body["item_ids"])

async def endpoint(request: Request) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool
    body = await request.json()
    return JSONResponse((await run_in_threadpool(rank, body)).model_dump())

async def ready(request: Request) -> JSONResponse:
    return JSONResponse({})

app = Starlette(routes=[Route("/rank", endpoint, methods=["POST"]), Route("/readyz", ready)])
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")
"""


STAGE_SUM = re.compile(
    r'searchrank_stage_seconds_(sum|count)\{[^}]*endpoint="(\w+)"[^}]*stage="(\w+)"[^}]*\} (\S+)'
)


Totals = dict[tuple[str, str, str], float]


def stage_totals(url: str) -> Totals:
    """The service's per-stage histogram sums and counts (``serving/stages.py``), by (``sum`` or
    ``count``, endpoint, stage), from its Prometheus metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = STAGE_SUM.findall(text)
    return {(kind, endpoint, stage): float(v) for kind, endpoint, stage, v in found}


def stages_ms(before: Totals, after: Totals, endpoint: str) -> dict[str, float]:
    """Mean milliseconds per request in each stage of ``endpoint`` between two scrapes (a stage
    a request skipped counts as 0 for it)."""
    from searchrank.serving.stages import STAGES

    def delta(kind: str, stage: str) -> float:
        key = (kind, endpoint, stage)
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = max(delta("count", stage) for stage in STAGES)
    return {
        stage: round(1000 * delta("sum", stage) / requests, 2) if requests else 0.0
        for stage in STAGES
    }


def load(url: str, bodies: list[dict[str, Any]], concurrency: int, path: str) -> dict[str, float]:
    """Send every body once with ``concurrency`` threads; latency percentiles and throughput."""
    latencies: list[float] = []
    failures = 0
    with httpx.Client(base_url=url, timeout=60.0, limits=httpx.Limits(max_connections=64)) as c:

        def one(body: dict[str, Any]) -> float | None:
            started = time.perf_counter()
            response = c.post(path, json=body)
            return (time.perf_counter() - started) * 1000 if response.status_code == 200 else None

        for body in bodies[: concurrency * 2]:  # warm-up
            one(body)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for result in pool.map(one, bodies):
                if result is None:
                    failures += 1
                else:
                    latencies.append(result)
        elapsed = time.perf_counter() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": float(np.percentile(latencies, 99)),
        "failures": failures,
    }


def load_bare(
    checkpoint: Path, retriever_dir: str, repo: Path, bodies: list[dict[str, Any]], concurrency: int
) -> dict[str, float]:
    """The same load against the bare Starlette app (:data:`BARE_APP`) under uvicorn."""
    from searchrank.core.net import free_port

    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(checkpoint), retriever_dir, str(repo), str(port)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        return load(url, bodies, concurrency, "/rank")
    finally:
        bare.terminate()
        bare.wait(timeout=20)


def model_only_ms(checkpoint: Path, width: int, n_codes: int, cardinalities: list[int]) -> float:
    """Median latency of one forward pass over one 100-candidate list, in this process."""
    import torch

    from searchrank.serving.engine import RankerBundle, score_encoded

    torch.set_num_threads(1)
    bundle = RankerBundle.load(checkpoint)
    rng = np.random.default_rng(0)
    request = {
        "dense": rng.normal(size=(ITEMS, width)).astype(np.float32),
        "codes": np.stack([rng.integers(0, c, ITEMS) for c in cardinalities], axis=1)
        if n_codes
        else np.zeros((ITEMS, 0), dtype=np.int64),
    }
    times = []
    for _ in range(200):
        started = time.perf_counter()
        score_encoded(bundle.model, [request])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[20:])


def retrieval_parts(train: Path, valid: Path, data: Path, work: Path) -> Any:
    """A two-tower retriever (2 epochs), its Voyager index and the intent model, trained on the
    benchmark's splits, with an even fusion (the routing's own fit is ``evaluate_retrieval``'s
    business; its cost at serving time is the same)."""
    from searchrank.components.build_index.logic import build_index
    from searchrank.components.train_intent.logic import train_intent
    from searchrank.components.train_retriever.config import TrainRetrieverConfig
    from searchrank.components.train_retriever.logic import train_retriever
    from searchrank.core.ann import AnnParams
    from searchrank.core.candidates import RetrieverParts
    from searchrank.features import tables as T

    train_retriever(
        train,
        valid,
        data / T.file_name(T.CATALOGUE),
        work / "two_tower",
        work / "embeddings.parquet",
        replace(TrainRetrieverConfig(), epochs=2, num_workers=1),
        work_dir=work / "retriever",
        log=lambda _: None,
    )
    build_index(work / "embeddings.parquet", work / "ann", AnnParams())
    train_intent(
        {"train": train, "valid": valid},
        data / T.file_name(T.SEARCHES),
        work / "intent",
        {"train": work / "intent_train.parquet", "valid": work / "intent_valid.parquet"},
    )
    return RetrieverParts(work / "two_tower", work / "ann", work / "intent")


@dataclass(frozen=True)
class ServedSetup:
    """A Bento trained and packaged for serving benchmarks, and requests to send it."""

    bento: str
    repo: Path
    """The Feast repository, materialized (SQLite online store)."""
    work: Path
    """Holds ``model``, the ranker checkpoint."""
    retriever_tag: str
    bodies: list[dict[str, Any]]
    """``/rank`` bodies of ITEMS random catalogue items each."""


def prepare(requests: int) -> ServedSetup:
    """Train a ranker (2 epochs) and the retrieval parts on a synthetic training set, materialize
    its store, package a Bento and draw ``requests`` request bodies."""
    os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="bench-serve-bentoml-"))

    import pandas as pd

    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.components.train_ranker.logic import train_ranker
    from searchrank.core import schema as S
    from searchrank.core.contract import FeatureContract, contract_beside
    from searchrank.core.names import RANKER_FEATURE_SERVICE
    from searchrank.features import tables as T
    from searchrank.features.materialize import materialize_features
    from searchrank.serving.bento import build_bento, save_ranker, save_retriever

    full = training_set(60_000, seed=5)
    train, valid = time_split(full, parts=2)
    folder = full.parent
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    config = replace(TrainRankerConfig(), epochs=2, num_workers=1)
    train_ranker(
        train,
        valid,
        work / "model",
        config,
        contract=FeatureContract.load(contract_beside(train)),
        work_dir=work,
        log=lambda _: None,
    )
    materialize_features(folder / "repo", datetime(2026, 11, 2, tzinfo=UTC))
    catalogue = pd.read_parquet(folder / "data" / T.file_name(T.CATALOGUE))
    ranker_tag = save_ranker(work / "model", {"feature_service": RANKER_FEATURE_SERVICE}, {})
    parts = retrieval_parts(train, valid, folder / "data", work)
    retriever_tag = save_retriever(catalogue, {}, parts)
    bento = build_bento(ranker_tag, retriever_tag, {})

    rows = pd.read_parquet(valid, columns=[S.SEARCH_ID, S.USER_ID, S.QUERY])
    searches = rows.drop_duplicates(S.SEARCH_ID)
    rng = np.random.default_rng(1)
    item_ids = catalogue[S.ITEM_ID].to_numpy()
    bodies = [
        {
            "query": str(searches[S.QUERY].iloc[j % len(searches)]),
            "user_id": int(searches[S.USER_ID].iloc[j % len(searches)]),
            "item_ids": [int(i) for i in rng.choice(item_ids, ITEMS, replace=False)],
        }
        for j in range(requests)
    ]
    return ServedSetup(bento, folder / "repo", work, retriever_tag, bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 requests")
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    requests = 600 if args.quick else args.requests
    setup = prepare(requests)
    bodies, work = setup.bodies, setup.work

    import bentoml

    from searchrank.serving.bento import serve
    from searchrank.serving.engine import RankerBundle

    with serve(setup.bento, setup.repo) as running:
        served = load(running.url, bodies, args.concurrency, "/rank")
        search_bodies = [{"query": b["query"], "user_id": b["user_id"], "k": 10} for b in bodies]
        before = stage_totals(running.url)
        searched = load(running.url, search_bodies[: max(requests // 5, 50)], 1, "/search")
        search_stages = stages_ms(before, stage_totals(running.url), "search")
        before = stage_totals(running.url)
        ranked_alone = load(running.url, bodies[: max(requests // 5, 50)], 1, "/rank")
        rank_stages = stages_ms(before, stage_totals(running.url), "rank")

    baseline = load_bare(
        work / "model",
        bentoml.models.get(setup.retriever_tag).path,
        setup.repo,
        bodies,
        args.concurrency,
    )

    bundle = RankerBundle.load(work / "model")
    processor = bundle.processor
    model_ms = model_only_ms(
        work / "model", len(processor.numeric), len(processor.categorical), processor.cardinalities
    )
    ratio = served["rps"] / baseline["rps"]
    p99_ratio = served["p99_ms"] / baseline["p99_ms"]
    print(
        json.dumps(
            {
                "bench": "serve",
                "rps": round(served["rps"], 1),
                "bare_rps": round(baseline["rps"], 1),
                "ratio": round(ratio, 3),
                "p50_ms": round(served["p50_ms"], 1),
                "p99_ms": round(served["p99_ms"], 1),
                "bare_p50_ms": round(baseline["p50_ms"], 1),
                "bare_p99_ms": round(baseline["p99_ms"], 1),
                "p99_ratio": round(p99_ratio, 3),
                "target": TARGET,
                "p99_target": P99_TARGET,
                "met": ratio >= TARGET and p99_ratio <= P99_TARGET,
                "search_p50_ms": round(searched["p50_ms"], 1),
                "search_p99_ms": round(searched["p99_ms"], 1),
                "search_retrieval": "intent-routed fusion of BM25 and the two-tower index",
                "rank_p50_ms": round(ranked_alone["p50_ms"], 1),
                "rank_p99_ms": round(ranked_alone["p99_ms"], 1),
                "stages_ms": {"rank": rank_stages, "search": search_stages},
                "model_only_ms": round(model_ms, 2),
                "failures": served["failures"] + baseline["failures"],
                "requests": requests,
                "concurrency": args.concurrency,
                "items": ITEMS,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
