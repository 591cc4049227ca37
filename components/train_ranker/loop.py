"""The Ray Train function each worker runs: the train-function pattern with checkpoints.

Each worker reads its shard of the training slates once through Ray Data and keeps it in
memory (a slate of 25 candidates is a few kilobytes); every epoch it trains on the shard in an
order seeded by (seed, epoch, rank), evaluates the
whole validation set (so all workers reach the same early-stopping decision without talking),
and reports; rank 0 attaches a checkpoint. A restarted worker group resumes from the latest
checkpoint: weights, optimizer, the early-stopping state and the epoch, whose data order and
dropout are seeded by (seed, epoch), so a killed worker costs at most one epoch.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from searchrank.components.core import checkpoint as ckpt
from searchrank.components.core.features import FeatureProcessor
from searchrank.components.core.model import ContextAwareRanker, RankerConfig
from searchrank.components.core.slates import Slates
from searchrank.components.core.training import (
    LossFn,
    loss_function,
    score_slates,
    seed_everything,
    shuffled_batches,
    slate_metrics,
    train_step,
)
from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_ranker.data import (
    PROCESSOR,
    VALID_SLATES,
    load_slates,
    slates_from_columns,
)

SCORE = "val_ndcg@10"
READ_BATCH = 4_096


@dataclass
class TrainState:
    """What early stopping and resuming need to know."""

    epoch: int = 0
    best: float = float("-inf")
    best_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)


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
    )


def one_cycle(
    optimizer: torch.optim.Optimizer,
    learning_rate: float,
    epochs: int,
    examples: int,
    workers: int,
    batch_size: int,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """Warm up for 10 % of the steps, then decay along a cosine over every epoch's steps
    (``examples`` split over ``workers``, ``batch_size`` per step)."""
    per_worker = math.ceil(examples / workers)
    steps = max(epochs * math.ceil(per_worker / batch_size), 2)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1
    )


def read_shard(shard: Any) -> Slates:
    """A worker's whole shard of the training slates (a Ray Data iterator), in memory."""
    parts = [
        slates_from_columns(batch)
        for batch in shard.iter_batches(batch_size=READ_BATCH, batch_format="numpy")
    ]
    if not parts:
        raise RuntimeError("a training worker received an empty shard; use fewer workers")
    return Slates(*(np.concatenate([getattr(p, f) for p in parts]) for f in Slates.FIELDS))


def train_loop_per_worker(spec: dict[str, Any]) -> None:
    """The per-worker training function given to ``TorchTrainer`` (see the module docstring)."""
    import ray.train
    import ray.train.torch

    config = TrainRankerConfig(**spec["config"])
    context = ray.train.get_context()
    rank = context.get_world_rank()
    torch.set_num_threads(spec["threads"])
    data = Path(spec["data_dir"])
    processor = FeatureProcessor.load(data / PROCESSOR)
    seed_everything(config.seed)  # the same initial weights on every worker
    model = ContextAwareRanker(model_config(spec, processor))
    optimizer, scheduler, state = resumable_optimizer(
        model, config, spec["shapes"]["train_slates"], ray.train.get_checkpoint()
    )

    device = ray.train.torch.get_device()
    # DDP (and torch.compile) wrap ``model`` and share its parameters: evaluation and
    # checkpoints use ``model`` itself.
    trained: torch.nn.Module = ray.train.torch.prepare_model(model)
    on_gpu = device.type == "cuda"
    if on_gpu and config.compile:
        trained = torch.compile(trained)  # type: ignore[assignment]
    autocast = torch.bfloat16 if on_gpu and config.bf16 else None
    valid = load_slates(data / VALID_SLATES)
    shard = read_shard(ray.train.get_dataset_shard("train"))
    loss_fn = loss_function(config.loss)

    for epoch in range(state.epoch, config.epochs):
        seed_everything(config.seed * 7919 + epoch * 101 + rank)  # dropout, reproducible on resume
        losses, candidates, seconds = _train_epoch(
            shuffled_batches(shard, config.batch_size, config.seed * 31 + rank, epoch, device),
            trained,
            optimizer,
            scheduler,
            loss_fn,
            config.grad_clip,
            autocast,
        )
        metrics = slate_metrics(score_slates(model, valid, device=device), valid)
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
            config.patience,
            rank,
            lambda folder: _save(folder, model, optimizer, scheduler, state, processor, spec),
        )
        if stop:
            break


class Optimisation(Protocol):
    """The optimisation fields every trainer's configuration has."""

    @property
    def learning_rate(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def epochs(self) -> int: ...
    @property
    def num_workers(self) -> int: ...
    @property
    def batch_size(self) -> int: ...


def resumable_optimizer(
    model: torch.nn.Module, config: Optimisation, examples: int, latest: Any
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR, TrainState]:
    """AdamW with the one-cycle schedule over ``examples`` training examples, and the state of
    the run, all restored from the ``latest`` Ray checkpoint when there is one."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = one_cycle(
        optimizer,
        config.learning_rate,
        config.epochs,
        examples,
        config.num_workers,
        config.batch_size,
    )
    return optimizer, scheduler, restore(latest, model, optimizer, scheduler)


def report_epoch(
    state: TrainState,
    record: dict[str, float],
    score: str,
    patience: int,
    rank: int,
    save: Callable[[Path], None],
) -> bool:
    """Record an epoch, report it to Ray Train (rank 0 with a checkpoint written by ``save``)
    and say whether early stopping ends the run: ``patience`` epochs without a better
    ``score``."""
    import ray.train

    epoch = int(record["epoch"])
    state.history.append(record)
    if record[score] > state.best + 1e-6:
        state.best, state.best_epoch = record[score], epoch
    state.epoch = epoch + 1
    with tempfile.TemporaryDirectory() as folder:
        if rank == 0:
            save(Path(folder))
            ray.train.report(record, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(record)
    return epoch - state.best_epoch >= patience


def restore(
    latest: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.OneCycleLR,
) -> TrainState:
    """Load the latest checkpoint into the model, optimizer and schedule; a fresh state if none."""
    if latest is None:
        return TrainState()
    with latest.as_directory() as folder:
        model.load_state_dict(torch.load(Path(folder) / ckpt.WEIGHTS))
        resumed = torch.load(Path(folder) / ckpt.OPTIMIZER)
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        return TrainState(**json.loads((Path(folder) / ckpt.TRAIN_STATE).read_text()))


def _train_epoch(
    batches: Iterable[dict[str, torch.Tensor]],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.OneCycleLR,
    loss_fn: LossFn,
    grad_clip: float,
    autocast: torch.dtype | None,
) -> tuple[float, int, float]:
    """One pass over a worker's shard: (mean loss, candidates seen, seconds)."""
    started, candidates, losses = time.perf_counter(), 0, []
    for batch in batches:
        losses.append(train_step(model, batch, optimizer, loss_fn, grad_clip, autocast))
        if scheduler.last_epoch < scheduler.total_steps - 1:
            scheduler.step()
        candidates += int(batch["mask"].sum())
    return sum(losses) / max(len(losses), 1), candidates, time.perf_counter() - started


def save_resumable(
    folder: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.OneCycleLR,
    state: TrainState,
) -> None:
    """What resuming needs beside the weights: optimizer, schedule and early-stopping state."""
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        folder / ckpt.OPTIMIZER,
    )
    (folder / ckpt.TRAIN_STATE).write_text(json.dumps(asdict(state)))


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
    ckpt.save_ranker(
        folder,
        model,
        processor,
        {
            "feature_service": spec["feature_service"],
            "train_config": spec["config"],
            "epoch": last["epoch"],
            "metrics": last,
            "history": state.history,
        },
    )
    save_resumable(folder, optimizer, scheduler, state)
