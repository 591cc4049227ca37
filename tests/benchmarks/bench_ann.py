"""Benchmark: the Voyager index against exact search, recall@100 and queries per second.

Items are clustered vectors shaped like a two-tower retriever's item embeddings (``--items``
× ``--dims``, 64 dimensions by default; 200 clusters of uneven size, as genres and languages
make them), queries come from the same distribution. Both searches run one query at a time on
one thread, as a serving process would; exact search is a NumPy matrix–vector product with
``argpartition``. Recall@100 is the share of each query's exact top 100 that the index
returns. The last line is the JSON result.

Usage: python tests/benchmarks/bench_ann.py [--quick] [--items N] [--dims D] [--queries Q]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

RECALL_TARGET = 0.95
SPEEDUP_TARGET = 10.0
K = 100


def embeddings(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, d))
    sizes = rng.zipf(1.6, size=200).astype(float)
    cluster = rng.choice(200, size=n, p=sizes / sizes.sum())
    return (centres[cluster] + 0.6 * rng.normal(size=(n, d))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 items, 200 queries")
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--dims", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1_000)
    args = parser.parse_args()
    items, queries_n = (50_000, 200) if args.quick else (args.items, args.queries)

    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from searchrank.core.ann import AnnIndex, AnnParams, exact_top_k, recall_at_k

    vectors = embeddings(items, args.dims, seed=0)
    queries = embeddings(queries_n, args.dims, seed=1)
    ids = np.arange(items, dtype=np.int64)
    params = AnnParams(metric="cosine")
    started = time.perf_counter()
    index = AnnIndex.build(ids, vectors, params)
    build_s = time.perf_counter() - started

    found = np.zeros((queries_n, K), dtype=np.int64)
    started = time.perf_counter()
    for q in range(queries_n):
        found[q] = index.query(queries[q : q + 1], K)[0][0]
    ann_qps = queries_n / (time.perf_counter() - started)

    truth = np.zeros((queries_n, K), dtype=np.int64)
    started = time.perf_counter()
    for q in range(queries_n):
        truth[q] = exact_top_k(ids, vectors, queries[q : q + 1], K, "cosine")[0][0]
    exact_qps = queries_n / (time.perf_counter() - started)

    recall = recall_at_k(found, truth)
    speedup = ann_qps / exact_qps
    print(
        json.dumps(
            {
                "bench": "ann",
                "recall_at_100": round(recall, 4),
                "qps": round(ann_qps, 1),
                "exact_qps": round(exact_qps, 1),
                "speedup": round(speedup, 2),
                "recall_target": RECALL_TARGET,
                "speedup_target": SPEEDUP_TARGET,
                "met": recall >= RECALL_TARGET and speedup >= SPEEDUP_TARGET,
                "items": items,
                "dims": args.dims,
                "queries": queries_n,
                "build_s": round(build_s, 1),
                "params": {
                    "m": params.m,
                    "ef_construction": params.ef_construction,
                    "query_ef": params.query_ef,
                    "metric": params.metric,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
