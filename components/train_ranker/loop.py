"""The Ray Train function each worker runs: the train-function pattern with checkpoints.

Each worker reads its shard of the training slates once through Ray Data and keeps it in
memory (a slate of 25 candidates is a few kilobytes); every epoch it trains on the shard in an
order seeded by (seed, epoch, rank), evaluates the
whole validation set (so all workers reach the same early-stopping decision without talking),
and reports; rank 0 attaches a checkpoint. A restarted worker group resumes from the latest
checkpoint: weights, optimizer, the early-stopping state and the epoch, whose data order and
dropout are seeded by (seed, epoch), so a killed worker costs at most one epoch.

With ``position_bias`` the workers optimise the ranker through its position-bias view
(:func:`~searchrank.core.training.training_view`), and validate that view too: it predicts the
validation clicks at their logged positions. The ranker alone, scored against those biased
clicks, looks best before the tower has learnt the position effect: early stopping on it kept
an epoch-2 model whose examination curve was still flat (bench_experiment, 30,000 searches).
Checkpoints hold the ranker itself, which scores without positions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_ranker.data import (
    VALID_SLATES,
    load_slates,
    slates_from_columns,
)
from searchrank.core import checkpoint as ckpt
from searchrank.core.features import PROCESSOR_FILE, FeatureProcessor
from searchrank.core.model import ContextAwareRanker, RankerConfig
from searchrank.core.raytrain.loop import (
    READ_BATCH,
    TrainState,
    report_epoch,
    resumable_optimizer,
    save_resumable,
)
from searchrank.core.slates import Slates, concat_slates
from searchrank.core.training import (
    LossFn,
    loss_function,
    score_slates,
    seed_everything,
    shuffled_batches,
    slate_metrics,
    train_step,
    training_tensors,
    training_view,
)

SCORE = "val_ndcg@10"


def model_config(spec: dict[str, Any], processor: FeatureProcessor) -> RankerConfig:
    config = TrainRankerConfig(**spec["config"])
    return RankerConfig(
        n_numeric=spec["shapes"]["n_numeric"],
        cardinalities=processor.cardinalities,
        embedding_dim=config.embedding_dim,
        d_model=config.d_model,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        ff_dim=config.ff_dim,
        dropout=config.dropout,
        bias_positions=config.max_list_length if config.position_bias else 0,
    )


def read_shard(shard: Any) -> Slates:
    """A worker's whole shard of the training slates (a Ray Data iterator), in memory."""
    parts = [
        slates_from_columns(batch)
        for batch in shard.iter_batches(batch_size=READ_BATCH, batch_format="numpy")
    ]
    if not parts:
        raise RuntimeError("a training worker received an empty shard; use fewer workers")
    return concat_slates(parts)


def train_loop_per_worker(spec: dict[str, Any]) -> None:
    """The per-worker training function given to ``TorchTrainer`` (see the module docstring)."""
    import ray.train
    import ray.train.torch

    config = TrainRankerConfig(**spec["config"])
    context = ray.train.get_context()
    rank = context.get_world_rank()
    torch.set_num_threads(spec["threads"])
    data = Path(spec["data_dir"])
    processor = FeatureProcessor.load(data / PROCESSOR_FILE)
    seed_everything(config.seed)  # the same initial weights on every worker
    model = ContextAwareRanker(model_config(spec, processor))
    optimizer, scheduler, state = resumable_optimizer(
        model, config, spec["shapes"]["train_slates"], ray.train.get_checkpoint()
    )

    device = ray.train.torch.get_device()
    # DDP (and torch.compile) wrap ``model``, or its position-bias view, and share its
    # parameters: evaluation and checkpoints use ``model`` itself.
    trained: torch.nn.Module = ray.train.torch.prepare_model(training_view(model))
    on_gpu = device.type == "cuda"
    if on_gpu and config.compile:
        trained = torch.compile(trained)  # type: ignore[assignment]
    autocast = torch.bfloat16 if on_gpu and config.bf16 else None
    valid = load_slates(data / VALID_SLATES)
    shard = training_tensors(read_shard(ray.train.get_dataset_shard("train")), device)
    candidates = int(shard["mask"].sum())
    loss_fn = loss_function(config.loss)

    for epoch in range(state.epoch, config.epochs):
        seed_everything(config.seed * 7919 + epoch * 101 + rank)  # dropout, reproducible on resume
        losses, seconds = _train_epoch(
            shuffled_batches(shard, config.batch_size, config.seed * 31 + rank, epoch, device),
            trained,
            optimizer,
            scheduler,
            loss_fn,
            config.grad_clip,
            autocast,
        )
        metrics = slate_metrics(score_slates(training_view(model), valid, device=device), valid)
        record = {
            "epoch": epoch,
            "train_loss": losses,
            SCORE: metrics["ndcg@10"],
            "val_ndcg@5": metrics["ndcg@5"],
            "val_mrr": metrics["mrr"],
            "candidates_per_s": candidates / max(seconds, 1e-9),
            "epoch_seconds": seconds,
        }
        stop = report_epoch(
            state,
            record,
            SCORE,
            config,
            rank,
            lambda folder: _save(folder, model, optimizer, scheduler, state, processor, spec),
        )
        if stop:
            break


def _train_epoch(
    batches: Iterable[dict[str, torch.Tensor]],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.OneCycleLR,
    loss_fn: LossFn,
    grad_clip: float,
    autocast: torch.dtype | None,
) -> tuple[float, float]:
    """One pass over a worker's shard: (mean loss, seconds)."""
    started, losses = time.perf_counter(), []
    for batch in batches:
        losses.append(train_step(model, batch, optimizer, loss_fn, grad_clip, autocast))
        if scheduler.last_epoch < scheduler.total_steps - 1:
            scheduler.step()
    return sum(losses) / max(len(losses), 1), time.perf_counter() - started


def _save(
    folder: Path,
    model: ContextAwareRanker,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.OneCycleLR,
    state: TrainState,
    processor: FeatureProcessor,
    spec: dict[str, Any],
) -> None:
    last = state.history[-1]
    metadata: dict[str, Any] = {
        "train_config": spec["config"],
        "epoch": last["epoch"],
        "metrics": last,
        "history": state.history,
    }
    if model.position_bias is not None:
        # The learned P(seen | position) / P(seen | top): for reading, never for scoring.
        metadata["examination"] = [round(float(x), 6) for x in model.position_bias.examination()]
    ckpt.save_ranker(folder, model, processor, metadata)
    save_resumable(folder, optimizer, scheduler, state)
