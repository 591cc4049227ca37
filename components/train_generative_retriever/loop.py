"""The Ray Train function of the generative retriever: the same pattern as the retriever's loop.

Each worker reads its shard of the (search, semantic ID) pairs once and keeps it on its device;
every epoch it trains on the shard in an order seeded by (seed, epoch, rank), with the
listener replaced by the unknown one in ``user_dropout`` of the rows, then validates twice:

- the teacher-forced **log-likelihood** (mean log-probability per code) of every validation
  search's wanted items' IDs: one batched forward pass, cheap and smooth, so it is the
  early-stopping and checkpoint-selection score;
- **Recall@{10,100} and MRR** by constrained beam search (beam 100) on a fixed sample of at
  most ``decode_searches`` validation searches: what retrieval would find, at a cost linear in
  the sample, reported beside the score.

Every worker validates the same model on the same searches, so all reach the same
early-stopping decision; rank 0 attaches a checkpoint that serving can load
(:class:`~searchrank.core.generative.GenerativeSource`) plus the run's history
(:data:`TRAINING`) and what resuming needs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
from searchrank.components.train_generative_retriever.data import (
    SEMANTIC_IDS,
    USERS,
    VALIDATION,
    decode_sample,
    pairs_from_columns,
    wanted_pairs,
)
from searchrank.core.generative import GenerativeRetriever, GenerativeSource, generation_loss
from searchrank.core.raytrain.loop import (
    read_shard,
    report_epoch,
    resumable_optimizer,
    save_resumable,
)
from searchrank.core.retrieval import retrieval_metrics
from searchrank.core.retriever import IdVocabulary
from searchrank.core.search_pairs import Queries, load_queries
from searchrank.core.semantic_ids import SemanticIds
from searchrank.core.training import seed_everything, shuffled_batches

SCORE = "val_log_likelihood"
TRAINING = "training.json"
"""A checkpoint's training record: configuration, data shapes, epoch, metrics and history."""
VALID_BEAM = 100
"""Beams of the validation decoding: Recall@100 needs 100 results."""
VALID_BATCH = 1024
"""Validation pairs per teacher-forced forward pass."""
GRAD_CLIP = 1.0


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on a CUDA device; a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train_step(
    model: nn.Module,
    batch: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
    user_dropout: float,
) -> float:
    """One optimisation step of the codes' cross-entropy; returns the loss.

    Args:
        model: the (possibly DDP-wrapped) :class:`GenerativeRetriever`.
        batch: ``tokens`` (B, T), ``user`` (B,), ``codes`` (B, depth).
        optimizer: steps the model's parameters.
        user_dropout: the share of rows whose listener becomes the unknown listener (0).
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    users = batch["user"]
    users = users * (torch.rand(users.shape, device=users.device) >= user_dropout)
    with autocast(users.device):
        logits = model(batch["tokens"], users, batch["codes"])
    loss = generation_loss(logits, batch["codes"])
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def log_likelihood(model: GenerativeRetriever, pairs: dict[str, Tensor]) -> float:
    """The mean log-probability per code of ``pairs``' IDs, teacher-forced: minus
    :func:`generation_loss` over all of them (``tokens`` (n, T), ``user`` (n,), ``codes``
    (n, depth), on the model's device)."""
    model.eval()
    total, count = 0.0, len(pairs["codes"])
    for start in range(0, count, VALID_BATCH):
        batch = {name: column[start : start + VALID_BATCH] for name, column in pairs.items()}
        with autocast(batch["codes"].device):
            logits = model(batch["tokens"], batch["user"], batch["codes"])
        total += float(generation_loss(logits, batch["codes"])) * len(batch["codes"])
    return -total / max(count, 1)


def decoded_metrics(source: GenerativeSource, queries: Queries) -> dict[str, float]:
    """Recall@{10,100} and MRR of beam-search decoding (beam :data:`VALID_BEAM`) of
    ``queries``, whose relevant items are indices of the IDs' item order."""
    found = source.decode(queries.tokens, queries.users, VALID_BEAM, VALID_BEAM)
    item_ids = source.semantic_ids.item_ids
    return retrieval_metrics(found, [item_ids[r - 1] for r in queries.relevant])


def to_device(columns: dict[str, np.ndarray], device: torch.device) -> dict[str, Tensor]:
    return {name: torch.from_numpy(column).to(device) for name, column in columns.items()}


def train_loop_per_worker(spec: dict[str, Any]) -> None:
    """The per-worker training function given to ``TorchTrainer`` (see the module docstring)."""
    import ray.train
    import ray.train.torch

    config = TrainGenerativeConfig(**spec["config"])
    rank = ray.train.get_context().get_world_rank()
    torch.set_num_threads(spec["threads"])
    data = Path(spec["data_dir"])
    semantic = SemanticIds.load(data / SEMANTIC_IDS)
    users = IdVocabulary(np.load(data / USERS))
    seed_everything(config.seed)  # the same initial weights on every worker
    shape = config.model(len(users), semantic.codes.shape[1], int(semantic.codes.max()) + 1)
    model = GenerativeRetriever(shape)
    optimizer, scheduler, state = resumable_optimizer(
        model, config, spec["shapes"]["train_pairs"], ray.train.get_checkpoint()
    )
    device = ray.train.torch.get_device()
    trained: nn.Module = ray.train.torch.prepare_model(model)
    shard = to_device(read_shard(ray.train.get_dataset_shard("train"), pairs_from_columns), device)
    valid = load_queries(data / VALIDATION)
    valid_pairs = to_device(wanted_pairs(valid, semantic.codes), device)
    decoded = valid.subset(decode_sample(len(valid.relevant), config.decode_searches, config.seed))
    source = GenerativeSource(model, users, semantic, config.max_tokens)

    def save(folder: Path) -> None:
        source.save(folder)
        last = state.history[-1]
        record = {
            "train_config": spec["config"],
            "shapes": spec["shapes"],
            "epoch": last["epoch"],
            "metrics": last,
            "history": state.history,
        }
        (folder / TRAINING).write_text(json.dumps(record, indent=2))
        save_resumable(folder, optimizer, scheduler, state)

    if state.stopped(config.patience):  # resumed after the run had stopped early
        return
    for epoch in range(state.epoch, config.epochs):
        seed_everything(config.seed * 7919 + epoch * 101 + rank)  # user dropout, reproducible
        started, losses = time.perf_counter(), []
        for batch in shuffled_batches(shard, config.batch_size, config.seed * 31 + rank, epoch):
            losses.append(train_step(trained, batch, optimizer, config.user_dropout))
            if scheduler.last_epoch < scheduler.total_steps - 1:
                scheduler.step()
        seconds = time.perf_counter() - started
        validated = time.perf_counter()
        metrics = decoded_metrics(source, decoded)
        record = {
            "epoch": epoch,
            "train_loss": sum(losses) / max(len(losses), 1),
            SCORE: log_likelihood(model, valid_pairs),
            "val_recall@10": metrics["recall@10"],
            "val_recall@100": metrics["recall@100"],
            "val_mrr": metrics["mrr"],
            "pairs_per_s": len(shard["codes"]) / max(seconds, 1e-9),
            "epoch_seconds": seconds,
            "validation_seconds": time.perf_counter() - validated,
        }
        if report_epoch(state, record, SCORE, config, rank, save):
            break
