"""Benchmark (accelerator machine): the reference ranker through searchrank's Ray Train path
against a plain compiled PyTorch loop of the same model, on the same GPU, in the same run.

Reference configuration: 64 input features, d_model 256, 4 layers, 8 heads, feed-forward 1024,
batches of 1024 searches × 64 candidates, bf16 autocast, torch.compile. Data are random slates
(graded labels drawn from a hidden linear score, so the loss means something). Throughput is
candidates per second over the epochs after the first (compilation and warm-up). Target: the
Ray Train path at least as fast as the plain loop (ratio ≥ 1.0). The last line is the JSON result.

Run on the device machine (see README, "GPU checks"):
    python tests/benchmarks/bench_train_gpu.py [--quick] [--batches 40] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES, CANDIDATES, BATCH = 64, 64, 1024
TARGET = 1.0


def write_reference_data(folder: Path, batches: int, seed: int = 0) -> dict[str, int]:
    """Random slates in the layout ``train_ranker`` writes (train parquet, valid npz, processor)."""
    from searchrank.components.train_ranker.data import (
        TRAIN_SLATES,
        VALID_SLATES,
        save_slates,
        write_train_slates,
    )
    from searchrank.core.features import PROCESSOR_FILE, ColumnRole, FeatureProcessor
    from searchrank.core.slates import Slates

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=FEATURES)

    def slates(count: int) -> Slates:
        dense = rng.normal(size=(count, CANDIDATES, FEATURES)).astype(np.float32)
        score = dense @ weights + rng.normal(scale=2.0, size=(count, CANDIDATES))
        labels = np.digitize(score, np.quantile(score, [0.7, 0.9, 0.97])).astype(np.float32)
        mask = np.ones((count, CANDIDATES), dtype=bool)
        rows = np.arange(count * CANDIDATES).reshape(count, CANDIDATES)
        return Slates(dense, np.zeros((count, CANDIDATES, 0), np.int64), labels, mask, rows)

    folder.mkdir(parents=True, exist_ok=True)
    train = slates(batches * BATCH)
    write_train_slates(train, folder / TRAIN_SLATES)
    save_slates(slates(BATCH), folder / VALID_SLATES)
    roles = [ColumnRole(f"f{j}", "numeric") for j in range(FEATURES)]
    FeatureProcessor(roles, [], [0.0] * FEATURES, [1.0] * FEATURES).save(folder / PROCESSOR_FILE)
    return {
        "list_length": CANDIDATES,
        "n_numeric": FEATURES,
        "n_categorical": 0,
        "train_slates": len(train),
        "valid_slates": BATCH,
        "train_candidates": train.mask.size,
    }


def reference_config(epochs: int):  # type: ignore[no-untyped-def]
    from searchrank.components.train_ranker.config import TrainRankerConfig

    return TrainRankerConfig(
        d_model=256,
        n_layers=4,
        n_heads=8,
        ff_dim=1024,
        dropout=0.0,
        batch_size=BATCH,
        epochs=epochs,
        patience=epochs,
        num_workers=1,
        use_gpu=True,
        cpus_per_worker=4,
        bf16=True,
        compile=True,
        loss="listnet",
    )


def plain_loop(folder: Path, config, epochs: int) -> list[float]:  # type: ignore[no-untyped-def]
    """The same model and steps in one process, data already on the GPU."""
    import torch

    from searchrank.components.train_ranker.data import TRAIN_SLATES, read_train_slates
    from searchrank.components.train_ranker.loop import model_config
    from searchrank.core.features import PROCESSOR_FILE, FeatureProcessor
    from searchrank.core.model import ContextAwareRanker
    from searchrank.core.training import (
        loss_function,
        shuffled_batches,
        train_step,
        training_tensors,
    )

    slates = training_tensors(read_train_slates(folder / TRAIN_SLATES), "cuda")
    processor = FeatureProcessor.load(folder / PROCESSOR_FILE)
    spec = {"config": config.as_dict(), "shapes": {"n_numeric": FEATURES}}
    torch.manual_seed(0)
    model = ContextAwareRanker(model_config(spec, processor)).cuda()
    compiled = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    loss_fn = loss_function(config.loss)
    rates = []
    for epoch in range(epochs):
        batches = list(shuffled_batches(slates, BATCH, 0, epoch))
        torch.cuda.synchronize()
        started = time.perf_counter()
        for batch in batches:
            train_step(compiled, batch, optimizer, loss_fn, 1.0, torch.bfloat16)
        torch.cuda.synchronize()
        rates.append(len(batches) * BATCH * CANDIDATES / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 batches, 3 epochs")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    batches, epochs = (10, 3) if args.quick else (args.batches, args.epochs)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench_train_gpu needs a CUDA device: run it on the accelerator machine")
    from searchrank.components.train_ranker.logic import RANKER_RUN
    from searchrank.core.raytrain.runner import fit, quiet_ray_environment, run_spec

    quiet_ray_environment()
    import ray

    folder = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    shapes = write_reference_data(folder / "data", batches)
    config = reference_config(epochs)
    ray.init(num_cpus=8, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        spec = run_spec(RANKER_RUN, config, shapes, folder / "data", "gpu-bench") | {"threads": 4}
        _, history = fit(spec, folder / "ray", "gpu-bench")
    finally:
        ray.shutdown()
    ray_rates = [shapes["train_candidates"] / h["epoch_seconds"] for h in history[1:]]
    plain_rates = plain_loop(folder / "data", config, epochs)[1:]
    ray_rate, plain_rate = statistics.median(ray_rates), statistics.median(plain_rates)
    print(
        json.dumps(
            {
                "bench": "train_gpu",
                "device": torch.cuda.get_device_name(0),
                "ratio": round(ray_rate / plain_rate, 3),
                "target": TARGET,
                "met": ray_rate >= TARGET * plain_rate,
                "ray_candidates_per_s": round(ray_rate),
                "plain_candidates_per_s": round(plain_rate),
                "ray_step_ms": round(1000 * BATCH * CANDIDATES / ray_rate, 2),
                "plain_step_ms": round(1000 * BATCH * CANDIDATES / plain_rate, 2),
                "batches_per_epoch": batches,
            }
        )
    )


if __name__ == "__main__":
    main()
