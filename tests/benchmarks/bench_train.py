"""Benchmark: Ray Train with two CPU workers against one plain PyTorch process.

Same data (a synthetic ``ranker_v1`` training set, encoded once), same model, same global batch
(the plain process takes batches of ``2 × per-worker batch``), same number of epochs; the plain
process uses every core with intra-op threads, each Ray worker one core. Throughput is training
candidates per second over the epochs after the first (which includes warm-up on both sides).
The last line is the JSON result.

Usage: python tests/benchmarks/bench_train.py [--quick] [--rows N] [--epochs K]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import time_split, training_set

TARGET = 0.8


def plain_pytorch(data_dir: Path, config: object, epochs: int) -> list[float]:
    """Candidates per second of each epoch of a single-process loop on the encoded slates."""
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

    torch.set_num_threads(os.cpu_count() or 1)
    slates = read_train_slates(data_dir / TRAIN_SLATES)
    processor = FeatureProcessor.load(data_dir / PROCESSOR_FILE)
    width = slates.dense.shape[2]
    spec = {"config": config.as_dict(), "shapes": {"n_numeric": width}}  # type: ignore[attr-defined]
    torch.manual_seed(0)
    model = ContextAwareRanker(model_config(spec, processor))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)  # type: ignore[attr-defined]
    loss_fn = loss_function(config.loss)  # type: ignore[attr-defined]
    tensors = training_tensors(slates)
    rates = []
    for epoch in range(epochs):
        started, seen = time.perf_counter(), 0
        for batch in shuffled_batches(tensors, 2 * config.batch_size, 0, epoch):  # type: ignore[attr-defined]
            train_step(model, batch, optimizer, loss_fn, 1.0)
            seen += int(batch["mask"].sum())
        rates.append(seen / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small set and 3 epochs")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    rows, epochs = (40_000, 3) if args.quick else (args.rows, args.epochs)

    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.components.train_ranker.logic import train_ranker
    from searchrank.core.contract import FeatureContract, contract_beside

    train, valid = time_split(training_set(rows, seed=3), parts=2)
    config = replace(
        TrainRankerConfig(), epochs=epochs, patience=epochs, num_workers=2, batch_size=32
    )
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    summary = train_ranker(
        train,
        valid,
        work / "model",
        config,
        contract=FeatureContract.load(contract_beside(train)),
        work_dir=work,
        log=lambda _: None,
    )
    total = summary.shapes["train_candidates"]
    ray_rates = [total / h["epoch_seconds"] for h in summary.history[1:]]
    plain_rates = plain_pytorch(work / "data", config, epochs)[1:]
    ray_rate, plain_rate = statistics.median(ray_rates), statistics.median(plain_rates)
    print(
        json.dumps(
            {
                "bench": "train",
                "ratio": round(ray_rate / plain_rate, 3),
                "target": TARGET,
                "met": ray_rate / plain_rate >= TARGET,
                "ray_candidates_per_s": round(ray_rate),
                "plain_candidates_per_s": round(plain_rate),
                "ray_workers": config.num_workers,
                "cpus": os.cpu_count(),
                "train_candidates": total,
                "epochs_measured": len(ray_rates),
            }
        )
    )


if __name__ == "__main__":
    main()
