"""The parts of a Ray Train function that every trainer shares: reading a worker's shard, the
one-cycle AdamW, resuming from the latest checkpoint, and reporting an epoch with early stopping.

A trainer's per-worker function (``train_ranker.loop``, ``train_retriever.loop``,
``train_generative_retriever.loop``) builds its model and data, then calls
:func:`resumable_optimizer` once and :func:`report_epoch` after every epoch; what it saves in a
checkpoint beside its weights comes from :func:`save_resumable`, which
:func:`resumable_optimizer` reads back when Ray restarts the worker group.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from searchrank.core import checkpoint as ckpt

LOG = logging.getLogger(__name__)
READ_BATCH = 4_096
"""Rows per Ray Data batch when a worker reads its shard into memory."""
Columns = dict[str, np.ndarray]


def read_shard(shard: Any, convert: Callable[[Columns], Columns]) -> Columns:
    """A worker's whole shard (a Ray Data iterator) in memory, as one array per column.

    Args:
        shard: the worker's ``ray.train.get_dataset_shard(...)``.
        convert: maps a numpy batch of the shard's parquet columns to the arrays training
            takes (list columns to matrices, say); it is applied per batch, then the batches
            are concatenated.
    """
    parts = [
        convert(batch) for batch in shard.iter_batches(batch_size=READ_BATCH, batch_format="numpy")
    ]
    if not parts:
        raise RuntimeError("a training worker received an empty shard; use fewer workers")
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


@dataclass
class TrainState:
    """What early stopping and resuming need to know."""

    epoch: int = 0
    best: float = float("-inf")
    best_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)

    def stopped(self, patience: int) -> bool:
        """Whether early stopping ended the run: ``patience`` epochs since the best one."""
        return self.epoch - 1 - self.best_epoch >= patience


def one_cycle(
    optimizer: torch.optim.Optimizer,
    learning_rate: float,
    epochs: int,
    examples: int,
    workers: int,
    batch_size: int,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """Warm up for 10 % of the steps (at least two), then decay along a cosine over every
    epoch's steps (``examples`` split over ``workers``, ``batch_size`` per step).

    A run of under 20 steps (a rehearsal's one small epoch) still gets two warm-up steps and at
    least one of decay: PyTorch's schedule divides by each phase's length, which would be 0.
    """
    per_worker = math.ceil(examples / workers)
    steps = max(epochs * math.ceil(per_worker / batch_size), 3)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=steps, pct_start=max(0.1, 2 / steps)
    )


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
    @property
    def patience(self) -> int: ...


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


def epoch_line(record: dict[str, float], epochs: int, score: str) -> str:
    """The one line an epoch prints: ``epoch 3/30 train_loss 0.4123 val_ndcg@10 0.7812 6.1s``
    (the pipeline's console shows a training step's latest, ``pipelines.console.EPOCH_LINE``)."""
    return (
        f"epoch {int(record['epoch']) + 1}/{epochs} train_loss {record['train_loss']:.4f} "
        f"{score} {record[score]:.4f} {record['epoch_seconds']:.1f}s"
    )


def report_epoch(
    state: TrainState,
    record: dict[str, float],
    score: str,
    config: Optimisation,
    rank: int,
    save: Callable[[Path], None],
) -> bool:
    """Record an epoch, log its line (rank 0), report it to Ray Train (rank 0 with a
    checkpoint written by ``save``) and say whether early stopping ends the run:
    ``config.patience`` epochs without a better ``score``.

    The record holds ``epoch`` (from 0), ``train_loss``, ``score`` and ``epoch_seconds``.
    """
    import ray.train

    epoch = int(record["epoch"])
    state.history.append(record)
    if record[score] > state.best + 1e-6:
        state.best, state.best_epoch = record[score], epoch
    state.epoch = epoch + 1
    with tempfile.TemporaryDirectory() as folder:
        if rank == 0:
            # Logged, not printed: Ray Train sends a worker's prints to its logger *and* to
            # stdout, so a printed line would reach the step's log twice.
            LOG.info(epoch_line(record, config.epochs, score))
            save(Path(folder))
            ray.train.report(record, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(record)
    return state.stopped(config.patience)


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
