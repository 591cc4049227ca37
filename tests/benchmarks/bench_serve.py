"""Benchmark: ``/rank`` and ``/search`` under ``bentoml serve``: where a request's time goes.

One run trains a ranker and the retrieval parts on a synthetic training set, materializes their
SQLite online store, packages a Bento and serves it, then measures:

- ``/rank`` with 100 random catalogue items at concurrency 1: latency, the server's CPU per
  request (every process of ``bentoml serve``, from psutil) and its per-stage breakdown (the
  service's ``searchrank_stage_seconds`` histograms, ``serving/stages.py``);
- the model alone on one 100-item list in this process (``model_only_ms``) and the CPU ratio
  of a request to it;
- ``/search`` (query rewrite → query intent → BM25 with its popularity prior fused with the
  two-tower index and the generative retriever → online features → ranker → top 20) at
  concurrency 1, with its stages (``decode``: the generative retriever's beam search, and
  ``listener``: the listener's market for a query typed partway, both parts of ``retrieval``);
- the same ``/search`` requests against the Bento ``package_service`` ships when
  ``evaluate_retrieval`` does not bless the generative retriever (no decoder, its weight 0 on
  every route): ``search_without_decoder_p50_ms`` and ``_p99_ms``, judged by the same targets,
  since the issue that added the decoder asks for the budget with it, or for the decoder
  blessed off (no pipeline has blessed it yet);
- ``/rank`` throughput at concurrency 16 (``--concurrency``), and the same load against today's
  code side by side: the same models served with the code of :data:`BASELINE_COMMIT` (a
  ``git worktree``, put first on ``PYTHONPATH``; the ranker's description as that code reads
  it), as ``baseline_rps``;
- without ``--quick``, the same load against a bare Starlette app running the same engine under
  uvicorn (BentoML's own overhead).

Load is bounded: each body is sent once from a thread pool on 127.0.0.1. The last line is the
JSON result.

Usage: python tests/benchmarks/bench_serve.py [--quick] [--requests N] [--concurrency C]
    [--baseline COMMIT]
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
from collections.abc import Callable
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
TARGETS = {
    "cpu_ratio": 3.0,
    "rps_ratio": 5.0,
    "rank_p99_ms": 15.0,
    "search_p50_ms": 12.0,
    "search_p99_ms": 25.0,
    "search_without_decoder_p50_ms": 12.0,
    "search_without_decoder_p99_ms": 25.0,
}
"""Issue 18's goals: ``rps_ratio`` at least, the others at most."""
ITEMS = 100
MATERIALIZED_UNTIL = datetime(2026, 11, 2, tzinfo=UTC)
BASELINE_COMMIT = "93ac255"
"""The last commit before the serving-speed work (issue 18): its code is ``baseline_rps``."""
PACKAGES = ("core", "components", "pipelines", "features", "serving")
"""The folders ``pyproject.toml`` maps to ``searchrank.<name>``."""
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


def warm_up_count(concurrency: int) -> int:
    """Requests sent before :func:`load` measures: enough for every server worker to have run
    its first requests (imports, caches) at the load's concurrency."""
    return max(8 * concurrency, 20)


def load(url: str, bodies: list[dict[str, Any]], concurrency: int, path: str) -> dict[str, float]:
    """Send every body once with ``concurrency`` threads, after :func:`warm_up_count` of them;
    latency percentiles and throughput."""
    latencies: list[float] = []
    failures = 0
    with httpx.Client(base_url=url, timeout=60.0, limits=httpx.Limits(max_connections=64)) as c:

        def one(body: dict[str, Any]) -> float | None:
            started = time.perf_counter()
            response = c.post(path, json=body)
            return (time.perf_counter() - started) * 1000 if response.status_code == 200 else None

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, bodies[: warm_up_count(concurrency)]))  # every worker warm
            started = time.perf_counter()
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
            if bare.poll() is not None:
                raise RuntimeError(f"the bare app exited with code {bare.returncode}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the bare app did not answer {url}/readyz within 2 minutes")
        return load(url, bodies, concurrency, "/rank")
    finally:
        bare.terminate()
        bare.wait(timeout=20)


def model_only_ms(checkpoint: Path, width: int, cardinalities: list[int]) -> float:
    """Median latency of one forward pass over one 100-candidate list, in this process, of the
    model as the service runs it (traced and frozen)."""
    import torch
    from _forward import forward_ms, random_candidates

    from searchrank.serving.engine import RankerBundle

    torch.set_num_threads(1)
    bundle = RankerBundle.load(checkpoint)
    request = random_candidates(ITEMS, width, cardinalities)
    return statistics.median(forward_ms(bundle.inference, request, calls=180, warm_up=20))


def retrieval_parts(train: Path, valid: Path, data: Path, work: Path, epochs: int = 2) -> Any:
    """A two-tower retriever (``epochs`` epochs), its Voyager index, the generative retriever
    over its item vectors and the intent model, trained on the benchmark's splits, with a
    routing that gives each source weight and a two-tower popularity prior of weight 1 (the
    fits are ``train_retriever``'s and ``evaluate_retrieval``'s business; their cost at serving
    time is the same) and the training split's streams."""
    from searchrank.components.build_index.logic import build_index
    from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
    from searchrank.components.train_generative_retriever.logic import (
        train_generative_retriever,
    )
    from searchrank.components.train_intent.logic import train_intent
    from searchrank.components.train_retriever.config import TrainRetrieverConfig
    from searchrank.components.train_retriever.logic import train_retriever
    from searchrank.core.ann import AnnParams
    from searchrank.core.candidates import RetrieverParts
    from searchrank.core.dense_prior import DensePrior
    from searchrank.core.retrieval import FusionRouting
    from searchrank.features import tables as T

    train_retriever(
        train,
        valid,
        data / T.file_name(T.CATALOGUE),
        work / "two_tower",
        work / "embeddings.parquet",
        replace(TrainRetrieverConfig(), epochs=epochs, num_workers=1),
        work_dir=work / "retriever",
        log=lambda _: None,
    )
    prior = DensePrior.load(work / "two_tower")
    assert prior is not None, "train_retriever saves the prior with the model"
    replace(prior, weight=1.0).save(work / "two_tower")
    build_index(work / "embeddings.parquet", work / "ann", AnnParams())
    train_generative_retriever(
        train,
        valid,
        data / T.file_name(T.CATALOGUE),
        work / "embeddings.parquet",
        work / "generative",
        replace(TrainGenerativeConfig(), epochs=epochs, num_workers=1),
        work_dir=work / "generative-work",
        log=lambda _: None,
    )
    FusionRouting(
        generative_default=0.2, popularity_weight=0.05, market_weight=1.0, taste_weight=0.5
    ).save(work / "routing.json")
    train_intent(
        {"train": train, "valid": valid},
        data / T.file_name(T.SEARCHES),
        work / "intent",
        {"train": work / "intent_train.parquet", "valid": work / "intent_valid.parquet"},
    )
    return RetrieverParts(
        work / "two_tower",
        work / "ann",
        work / "intent",
        work / "routing.json",
        work / "generative",
        train,
    )


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
    baseline_bento: str
    """The same models for :data:`BASELINE_COMMIT`'s code, which reads an older checkpoint
    description (:func:`baseline_checkpoint`) and index description (:func:`baseline_index`)."""
    undecoded_bento: str
    """The same models without the generative retriever, its weight 0 on every route: what
    ``package_service`` ships when ``evaluate_retrieval`` does not bless it."""


def prepare(requests: int, epochs: int = 2, parts: int = 2) -> ServedSetup:
    """Train a ranker (``epochs`` epochs) and the retrieval parts on a synthetic training set,
    materialize its store, package a Bento and draw ``requests`` request bodies.

    The training set is cut into ``parts`` periods; the models train on the first and validate
    on the second (``--quick`` cuts six: the models train in a third of the time, and the
    catalogue, the store and the model's shape, which set the serving cost, stay the same)."""
    os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="bench-serve-bentoml-"))

    import pandas as pd

    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.components.train_ranker.logic import train_ranker
    from searchrank.core import schema as S
    from searchrank.core.contract import FeatureContract, contract_beside
    from searchrank.core.names import RANKER_FEATURE_SERVICE
    from searchrank.core.raytrain.runner import local_ray
    from searchrank.core.retrieval import FusionRouting
    from searchrank.features import tables as T
    from searchrank.features.materialize import materialize_features
    from searchrank.serving.bento import build_bento, save_ranker, save_retriever

    full = training_set(60_000, seed=5)
    train, valid = time_split(full, parts)[:2]
    folder = full.parent
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    config = replace(TrainRankerConfig(), epochs=epochs, num_workers=1)
    with local_ray(config):  # one local Ray for both trainings: it takes seconds to start
        train_ranker(
            train,
            valid,
            work / "model",
            config,
            contract=FeatureContract.load(contract_beside(train)),
            work_dir=work,
            log=lambda _: None,
        )
        parts = retrieval_parts(train, valid, folder / "data", work, epochs)
    materialize_features(folder / "repo", MATERIALIZED_UNTIL)
    catalogue = pd.read_parquet(folder / "data" / T.file_name(T.CATALOGUE))
    ranker_tag = save_ranker(work / "model", {"feature_service": RANKER_FEATURE_SERVICE}, {})
    retriever_tag = save_retriever(catalogue, {}, parts)
    bento = build_bento(ranker_tag, retriever_tag, {})
    older = save_ranker(
        baseline_checkpoint(work / "model", work / "model-baseline"),
        {"feature_service": RANKER_FEATURE_SERVICE},
        {},
    )
    assert parts.index is not None
    older_parts = replace(parts, index=baseline_index(parts.index, work / "ann-baseline"))
    baseline_bento = build_bento(older, save_retriever(catalogue, {}, older_parts), {})
    assert parts.routing is not None
    unblessed = work / "routing-without-decoder.json"
    routing = FusionRouting.load(parts.routing)
    replace(routing, generative_share={}, generative_default=0.0).save(unblessed)
    undecoded = save_retriever(catalogue, {}, replace(parts, generative=None, routing=unblessed))
    undecoded_bento = build_bento(ranker_tag, undecoded, {})

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
    return ServedSetup(
        bento, folder / "repo", work, retriever_tag, bodies, baseline_bento, undecoded_bento
    )


def baseline_checkpoint(model: Path, folder: Path) -> Path:
    """A copy of the ranker checkpoint ``model`` that the baseline's code reads: the same
    weights, its description without the fields added since (``bias_positions``, 0 here: the
    same model)."""
    from searchrank.core.checkpoint import DESCRIPTION

    def older(description: dict[str, Any]) -> None:
        if description["model"].pop("bias_positions", 0):
            raise ValueError("the baseline's code cannot serve a position-bias ranker")

    return copy_for_baseline(model, folder, DESCRIPTION, older)


def baseline_index(index: Path, folder: Path) -> Path:
    """A copy of the ANN index folder ``index`` that the baseline's code reads: its parameters
    without ``exact_up_to``, which that code did not know (it walks the graph)."""
    from searchrank.core.ann import PARAMS_FILE

    return copy_for_baseline(
        index, folder, PARAMS_FILE, lambda description: description["params"].pop("exact_up_to")
    )


def copy_for_baseline(
    source: Path, folder: Path, file: str, older: Callable[[dict[str, Any]], object]
) -> Path:
    """``source`` copied to ``folder``, its JSON description ``file`` edited in place by
    ``older`` into what the baseline's code reads."""
    import shutil

    shutil.copytree(source, folder)
    description = json.loads((folder / file).read_text())
    older(description)
    (folder / file).write_text(json.dumps(description, indent=2))
    return folder


def baseline_code(commit: str) -> Path | None:
    """A folder that, first on ``PYTHONPATH``, makes ``searchrank`` the code of ``commit`` (a
    ``git worktree`` of it, linked as ``searchrank/<package>``); None, said why, when git
    cannot check it out."""
    root = Path(__file__).resolve().parents[2]
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-baseline-"))
    checkout = folder / "worktree"
    added = subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", str(checkout), commit],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        print(f"no baseline: git worktree add {commit} failed: {added.stderr.strip()}")
        return None
    package = folder / "path" / "searchrank"
    package.mkdir(parents=True)
    for name in PACKAGES:
        (package / name).symlink_to(checkout / name)
    return package.parent


def remove_baseline(path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    checkout = path.parent / "worktree"
    command = ["git", "-C", str(root), "worktree", "remove", "--force", str(checkout)]
    subprocess.run(command, check=False)


def server_cpu_s(process: subprocess.Popen[bytes]) -> float:
    """CPU seconds of ``bentoml serve`` and every process it started."""
    import psutil

    root = psutil.Process(process.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rank_alone(running: Any, bodies: list[dict[str, Any]]) -> tuple[dict[str, float], float]:
    """``/rank`` at concurrency 1: the load's figures and the server's CPU ms per request."""
    started = server_cpu_s(running.process)
    result = load(running.url, bodies, 1, "/rank")
    sent = len(bodies) + min(warm_up_count(1), len(bodies))
    return result, 1000 * (server_cpu_s(running.process) - started) / sent


STARTED = time.perf_counter()


def say(step: str) -> None:
    """A progress line: the benchmark's elapsed time and what it does next."""
    print(f"[bench_serve {time.perf_counter() - STARTED:6.1f} s] {step}", flush=True)


def store_read_ms(setup: ServedSetup, bodies: list[dict[str, Any]]) -> dict[str, float] | None:
    """Median ms of one ``/rank``'s online-feature read (``OnlineFeatures.fetch``, in this
    process) from the SQLite store and from a Redis store materialized with the same data
    (Debian's ``redis-server`` on loopback), alternating request by request; None without
    ``redis-server``."""
    import shutil

    import bentoml
    import pandas as pd

    from searchrank.components.package_service.logic import staging_repo
    from searchrank.core.candidates import CandidateGenerator
    from searchrank.features.store import open_store
    from searchrank.serving.engine import RankerBundle, SearchEngine

    if shutil.which("redis-server") is None:
        print("no redis-server: the Redis online store is not measured")
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from services import redis_server

    bundle = RankerBundle.load(setup.work / "model")
    retriever = CandidateGenerator.load(Path(bentoml.models.get(setup.retriever_tag).path))
    with redis_server() as address:
        redis = {"type": "redis", "connection_string": address}
        until = pd.Timestamp(MATERIALIZED_UNTIL)
        repo = staging_repo(setup.repo, setup.work / "redis-repo", until, online_store=redis)
        engines = {
            name: SearchEngine.open(open_store(path), bundle, retriever).features
            for name, path in (("sqlite", setup.repo), ("redis", repo))
        }
        times: dict[str, list[float]] = {name: [] for name in engines}
        for body in bodies:
            for name, features in engines.items():
                started = time.perf_counter()
                features.fetch(body["query"], body["user_id"], body["item_ids"])
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: round(statistics.median(values[10:]), 2) for name, values in times.items()}


def baseline_load(
    setup: ServedSetup, commit: str, concurrency: int, requests: int
) -> dict[str, float] | None:
    """The ``/rank`` load at ``concurrency`` (the first ``requests`` bodies) against the same
    Bento served with the code of ``commit``; None when git cannot check it out."""
    from searchrank.serving.bento import serve

    path = baseline_code(commit)
    if path is None:
        return None
    say(f"serving the same Bento with the code of {commit}")
    try:
        with serve(setup.baseline_bento, setup.repo, env={"PYTHONPATH": str(path)}) as running:
            return load(running.url, setup.bodies[:requests], concurrency, "/rank")
    finally:
        remove_baseline(path)


def judged(figures: dict[str, float | None]) -> dict[str, bool | None]:
    """Each figure against :data:`TARGETS` (None where it was not measured)."""
    return {
        name: None
        if value is None
        else (value >= TARGETS[name] if name == "rps_ratio" else value <= TARGETS[name])
        for name, value in figures.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="400 requests (200 to the baseline), models of 1 epoch on a sixth of the data, "
        "no bare app",
    )
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="commit of today's code")
    args = parser.parse_args()
    requests = 400 if args.quick else args.requests
    say("training the ranker and the retrieval parts, packaging the Bento")
    setup = prepare(requests, epochs=1 if args.quick else 2, parts=6 if args.quick else 2)
    bodies, work = setup.bodies, setup.work
    alone = bodies[: max(requests // 5, 100)]

    import bentoml

    from searchrank.serving.bento import serve
    from searchrank.serving.engine import RankerBundle

    say(f"serving the Bento: /rank at concurrency {args.concurrency}, then /search and /rank alone")
    bundle = RankerBundle.load(work / "model")
    processor = bundle.processor
    shape = (len(processor.numeric), processor.cardinalities)
    with serve(setup.bento, setup.repo) as running:
        served = load(running.url, bodies, args.concurrency, "/rank")
        search_bodies = [{"query": b["query"], "user_id": b["user_id"], "k": 20} for b in alone]
        before = stage_totals(running.url)
        searched = load(running.url, search_bodies, 1, "/search")
        search_stages = stages_ms(before, stage_totals(running.url), "search")
        # The model alone just before and after: this machine's speed drifts over minutes.
        model_before = model_only_ms(work / "model", *shape)
        before = stage_totals(running.url)
        ranked_alone, rank_cpu_ms = rank_alone(running, alone)
        rank_stages = stages_ms(before, stage_totals(running.url), "rank")
        model_ms = (model_before + model_only_ms(work / "model", *shape)) / 2

    say("/search without the decoder, as shipped where the generative retriever is not blessed")
    with serve(setup.undecoded_bento, setup.repo) as running:
        before = stage_totals(running.url)
        undecoded = load(running.url, search_bodies, 1, "/search")
        undecoded_stages = stages_ms(before, stage_totals(running.url), "search")

    baseline = baseline_load(
        setup, args.baseline, args.concurrency, requests // 2 if args.quick else requests
    )

    bare = None
    if not args.quick:
        say("the bare Starlette app")
        bare = load_bare(
            work / "model",
            bentoml.models.get(setup.retriever_tag).path,
            setup.repo,
            bodies,
            args.concurrency,
        )

    say("the online-feature read from SQLite and from Redis")
    reads = store_read_ms(setup, alone)
    figures: dict[str, float | None] = {
        "cpu_ratio": rank_cpu_ms / model_ms,
        "rps_ratio": served["rps"] / baseline["rps"] if baseline else None,
        "rank_p99_ms": ranked_alone["p99_ms"],
        "search_p50_ms": searched["p50_ms"],
        "search_p99_ms": searched["p99_ms"],
        "search_without_decoder_p50_ms": undecoded["p50_ms"],
        "search_without_decoder_p99_ms": undecoded["p99_ms"],
    }
    result: dict[str, Any] = {
        "bench": "serve",
        "model_only_ms": round(model_ms, 2),
        "rank_cpu_ms": round(rank_cpu_ms, 2),
        "cpu_ratio": round(rank_cpu_ms / model_ms, 2),
        "rank_p50_ms": round(ranked_alone["p50_ms"], 1),
        "rank_p99_ms": round(ranked_alone["p99_ms"], 1),
        "search_p50_ms": round(searched["p50_ms"], 1),
        "search_p99_ms": round(searched["p99_ms"], 1),
        "search_retrieval": "routed fusion of BM25, the two-tower index and the generative "
        "retriever",
        "search_without_decoder_p50_ms": round(undecoded["p50_ms"], 1),
        "search_without_decoder_p99_ms": round(undecoded["p99_ms"], 1),
        "rps": round(served["rps"], 1),
        "p50_ms": round(served["p50_ms"], 1),
        "p99_ms": round(served["p99_ms"], 1),
        "baseline_rps": round(baseline["rps"], 1) if baseline else None,
        "baseline_p50_ms": round(baseline["p50_ms"], 1) if baseline else None,
        "baseline_p99_ms": round(baseline["p99_ms"], 1) if baseline else None,
        "baseline_commit": args.baseline,
        "rps_ratio": round(served["rps"] / baseline["rps"], 2) if baseline else None,
        "stages_ms": {
            "rank": rank_stages,
            "search": search_stages,
            "search_without_decoder": undecoded_stages,
        },
        "store_read_ms": reads,
        "targets": TARGETS,
        "met": judged(figures),
        "failures": served["failures"]
        + undecoded["failures"]
        + (baseline["failures"] if baseline else 0),
        "requests": requests,
        "concurrency": args.concurrency,
        "items": ITEMS,
        "cpus": os.cpu_count(),
    }
    if bare is not None:
        result.update(
            {
                "bare_rps": round(bare["rps"], 1),
                "bare_p50_ms": round(bare["p50_ms"], 1),
                "bare_p99_ms": round(bare["p99_ms"], 1),
                "bare_ratio": round(served["rps"] / bare["rps"], 3),
                "bare_p99_ratio": round(served["p99_ms"] / bare["p99_ms"], 3),
                "bare_target": TARGET,
                "bare_p99_target": P99_TARGET,
                "failures": result["failures"] + bare["failures"],
            }
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
