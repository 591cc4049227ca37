"""The Ray Train function of the retriever: the same pattern as the ranker's loop.

Each worker reads its shard of the training pairs once and keeps it in memory; every epoch it
trains on the shard in an order seeded by (seed, epoch, rank) (starting from the weights in the
data folder's ``start_weights.pt`` where a catch-up put them), then embeds the whole catalogue
and the validation searches and measures Recall@{10,100} and MRR by exact search, so every
worker reaches the same early-stopping decision; rank 0 attaches a checkpoint that serving can
load (:class:`~searchrank.core.retriever.Retriever`) plus what resuming needs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.train_retriever.data import (
    ITEMS,
    START_WEIGHTS,
    VALIDATION,
    pairs_from_columns,
)
from searchrank.core.ann import exact_top_k
from searchrank.core.raytrain.loop import (
    read_shard,
    report_epoch,
    resumable_optimizer,
    save_resumable,
)
from searchrank.core.retrieval import retrieval_metrics
from searchrank.core.retriever import (
    IdVocabulary,
    Retriever,
    TwoTower,
    encode_in_batches,
    sampled_softmax_loss,
)
from searchrank.core.search_pairs import Queries, load_queries
from searchrank.core.training import seed_everything

SCORE = "val_recall@100"
Pairs = dict[str, np.ndarray]


def shuffled_pair_batches(
    pairs: Pairs, item_tokens: torch.Tensor, batch_size: int, seed: int, epoch: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Mini-batches in an order fixed by (seed, epoch): query tokens and users, then the
    positives' and hard negatives' item indices and tokens (row ``i`` of the catalogue is item
    index ``i + 1``; index 0, no hard negative, borrows row 0 and is masked by the loss)."""
    device = item_tokens.device
    order = np.random.default_rng([seed, epoch]).permutation(len(pairs["item"]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = {k: torch.from_numpy(v[rows]).to(device) for k, v in pairs.items()}
        batch["items"] = torch.cat([batch["item"], batch["hard"]])
        batch["item_tokens"] = item_tokens[(batch["items"] - 1).clamp(min=0)]
        yield batch


def train_step(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    temperature: float,
) -> float:
    """One optimisation step of the sampled softmax with log-Q correction and hard negatives."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    queries, items = model(batch["tokens"], batch["user"], batch["item_tokens"], batch["items"])
    n = len(queries)
    loss = sampled_softmax_loss(
        queries,
        items[:n],
        batch["item"],
        batch["log_q"],
        temperature,
        items[n:],
        batch["hard"],
    )
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def validation_metrics(
    model: TwoTower, item_tokens: np.ndarray, queries: Queries, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Recall@{10,100} and MRR of exact search over every item for the validation searches."""
    model.eval()
    indices = np.arange(1, len(item_tokens) + 1, dtype=np.int64)
    items = encode_in_batches(model.encode_items, item_tokens, indices, device=device)
    asked = encode_in_batches(model.encode_queries, queries.tokens, queries.users, device=device)
    found, _ = exact_top_k(indices, items, asked, 100, "inner_product")
    return retrieval_metrics(found, queries.relevant)


def train_loop_per_worker(spec: dict[str, Any]) -> None:
    """The per-worker training function given to ``TorchTrainer`` (see the module docstring)."""
    import ray.train
    import ray.train.torch

    config = TrainRetrieverConfig(**spec["config"])
    rank = ray.train.get_context().get_world_rank()
    torch.set_num_threads(spec["threads"])
    data = Path(spec["data_dir"])
    with np.load(data / ITEMS) as arrays:
        item_ids, item_tokens, user_ids = arrays["ids"], arrays["tokens"], arrays["users"]
    seed_everything(config.seed)  # the same initial weights on every worker
    model = TwoTower(config.towers(len(user_ids), len(item_ids)))
    if (data / START_WEIGHTS).is_file():  # a catch-up; a resumed run's checkpoint wins below
        model.load_state_dict(torch.load(data / START_WEIGHTS, map_location="cpu"))
    optimizer, scheduler, state = resumable_optimizer(
        model, config, spec["shapes"]["train_pairs"], ray.train.get_checkpoint()
    )
    device = ray.train.torch.get_device()
    trained: torch.nn.Module = ray.train.torch.prepare_model(model)
    shard = read_shard(ray.train.get_dataset_shard("train"), pairs_from_columns)
    valid = load_queries(data / VALIDATION)
    tokens_on_device = torch.from_numpy(item_tokens).to(device)

    def save(folder: Path) -> None:
        last = state.history[-1]
        description = {
            "train_config": spec["config"],
            "shapes": spec["shapes"],
            "epoch": last["epoch"],
            "metrics": last,
            "history": state.history,
        }
        vocabulary = IdVocabulary(item_ids)
        Retriever(
            model, IdVocabulary(user_ids), vocabulary, item_ids, item_tokens, description
        ).save(folder)
        save_resumable(folder, optimizer, scheduler, state)

    for epoch in range(state.epoch, config.epochs):
        seed_everything(config.seed * 7919 + epoch * 101 + rank)  # id dropout, reproducible
        started, losses = time.perf_counter(), []
        for batch in shuffled_pair_batches(
            shard, tokens_on_device, config.batch_size, config.seed * 31 + rank, epoch
        ):
            losses.append(train_step(trained, batch, optimizer, config.temperature))
            if scheduler.last_epoch < scheduler.total_steps - 1:
                scheduler.step()
        seconds = time.perf_counter() - started
        metrics = validation_metrics(model, item_tokens, valid, device)
        record = {
            "epoch": epoch,
            "train_loss": sum(losses) / max(len(losses), 1),
            SCORE: metrics["recall@100"],
            "val_recall@10": metrics["recall@10"],
            "val_mrr": metrics["mrr"],
            "pairs_per_s": len(shard["item"]) / max(seconds, 1e-9),
            "epoch_seconds": seconds,
        }
        if report_epoch(state, record, SCORE, config, rank, save):
            break
