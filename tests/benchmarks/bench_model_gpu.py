"""Benchmark (accelerator machine): the serving model stage on the GPU, one list of 1,000
candidates.

The stage is what the service's ``model`` stage runs (``InferenceRanker.score``: the encoded
list copied from host to card, the traced ranker's forward pass, the scores copied back), timed
call by call: p50 and p99 over ``--calls`` calls after a warm-up. The ranker has the demo
feature service's input shape (39 numeric inputs, 9 categorical ones) and ``TrainRankerConfig``'s
layers, with random weights (the latency does not depend on them), in float32 as served.
Target: p99 ≤ 2 ms.

Without a GPU it runs 20 calls on the CPU (``device`` says which) so that it can be tried
anywhere; the target is then not judged (``met`` null). The last line is the JSON result. Run
every GPU check at once on the device machine with ``make bench-gpu`` (README, "GPU checks").

Usage: python tests/benchmarks/bench_model_gpu.py [--quick] [--items 1000] [--calls 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np

N_NUMERIC = 39
CARDINALITIES = [13, 5, 9, 6, 22, 11, 9, 8, 7]
"""The demo's ``ranker_v1`` feature service as the processor encodes it."""
TARGET_P99_MS = 2.0
WARM_UP = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 calls")
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--calls", type=int, default=1_000)
    args = parser.parse_args()
    calls = 200 if args.quick else args.calls

    import torch
    from _forward import forward_ms, random_candidates

    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.core.model import ContextAwareRanker, InferenceRanker, RankerConfig

    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    if not gpu:
        calls = min(calls, 20)  # a 1,000-item list takes about 0.1 s on a CPU core
    train = TrainRankerConfig()
    config = RankerConfig(
        n_numeric=N_NUMERIC,
        cardinalities=CARDINALITIES,
        embedding_dim=train.embedding_dim,
        d_model=train.d_model,
        n_layers=train.n_layers,
        n_heads=train.n_heads,
        ff_dim=train.ff_dim,
    )
    torch.manual_seed(0)
    model = ContextAwareRanker(config).eval().to(device)
    request = random_candidates(args.items, N_NUMERIC, CARDINALITIES)
    measured = forward_ms(InferenceRanker(model), request, calls, WARM_UP)
    p99 = float(np.percentile(measured, 99))
    print(
        json.dumps(
            {
                "bench": "model_gpu",
                "device": torch.cuda.get_device_name(0) if gpu else "cpu",
                "items": args.items,
                "calls": calls,
                "p50_ms": round(statistics.median(measured), 3),
                "p99_ms": round(p99, 3),
                "target_p99_ms": TARGET_P99_MS,
                "met": p99 <= TARGET_P99_MS if gpu else None,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
