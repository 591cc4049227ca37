"""Plain PyTorch training pieces of the ranker, shared by the Ray Train loop, the plain-PyTorch
benchmark baseline and evaluation: batching slates, one optimisation step, scoring, metrics.

Nothing here knows about Ray; the distributed loop in ``train_ranker`` calls these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from searchrank.core import losses
from searchrank.core.errors import InputError
from searchrank.core.metrics import mean_metrics, per_query_metrics
from searchrank.core.model import ContextAwareRanker, PositionBiasedRanker
from searchrank.core.slates import Slates

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]
LOSSES: dict[str, LossFn] = {
    "listnet": losses.listnet_loss,
    "lambdaloss": losses.lambda_loss,
    "neuralndcg": losses.neural_ndcg_loss,
}


def loss_function(name: str) -> LossFn:
    if name not in LOSSES:
        raise InputError("loss", name, f"must be one of {sorted(LOSSES)}")
    return LOSSES[name]


def seed_everything(seed: int) -> None:
    """Seed Python-visible randomness of torch and numpy (CPU runs are then reproducible)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def to_batch(slates: Slates, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Tensors of a few slates: dense (B, L, F), codes (B, L, C), labels (B, L), mask (B, L),
    and positions (B, L) when the slates carry them."""
    batch = {
        "dense": torch.as_tensor(slates.dense, device=device),
        "codes": torch.as_tensor(slates.codes, device=device),
        "labels": torch.as_tensor(slates.labels, device=device),
        "mask": torch.as_tensor(slates.mask, device=device),
    }
    if slates.positions is not None:
        batch["positions"] = torch.as_tensor(slates.positions, device=device)
    return batch


def training_view(ranker: ContextAwareRanker) -> nn.Module:
    """The module to optimise: the ranker itself, or, when it has a position-bias tower, the
    :class:`~searchrank.core.model.PositionBiasedRanker` over it, which takes the batches'
    positions. Either way the parameters are the ranker's, and the ranker is what scores."""
    return PositionBiasedRanker(ranker) if ranker.position_bias is not None else ranker


def training_tensors(slates: Slates, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """A whole training set as :func:`to_batch` tensors, for :func:`shuffled_batches`: on a GPU
    when it takes at most half the card's free memory, so that no batch waits on a copy from
    the host, else on the host (zero-copy views of the slates' arrays)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        arrays = (slates.dense, slates.codes, slates.labels, slates.mask, slates.positions)
        if sum(array.nbytes for array in arrays if array is not None) <= free // 2:
            return to_batch(slates, device)
    return to_batch(slates)


def shuffled_batches(
    tensors: dict[str, Tensor],
    batch_size: int,
    seed: int,
    epoch: int,
    device: torch.device | str | None = None,
) -> Iterator[dict[str, Tensor]]:
    """Mini-batches of equally long ``tensors`` (:func:`training_tensors`, say) in an order
    fixed by (seed, epoch), so a resumed run repeats it; each batch lies on ``device`` (by
    default where ``tensors`` lie)."""
    first = next(iter(tensors.values()))
    size, where = len(first), first.device
    order = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(size), device=where)
    for start in range(0, size, batch_size):
        rows = order[start : start + batch_size]
        yield {name: column[rows].to(device or where) for name, column in tensors.items()}


def train_step(
    model: nn.Module,
    batch: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    grad_clip: float,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """One optimisation step on a batch; returns the loss.

    A batch with ``positions`` goes to a model that takes them (:func:`training_view` of a
    ranker with a position-bias tower).
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    device_type = batch["dense"].device.type
    context = torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    inputs = [batch["dense"], batch["codes"], batch["mask"]]
    if "positions" in batch:
        inputs.append(batch["positions"])
    with context:
        scores = model(*inputs)
    loss = loss_fn(scores.float(), batch["labels"], batch["mask"])
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def score_slates(
    model: nn.Module, slates: Slates, batch_size: int = 512, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Scores of every slot, shape (B, L), in evaluation mode.

    A :class:`~searchrank.core.model.PositionBiasedRanker` scores clicks as logged, so it reads
    the slates' positions (which it then needs); any other model never does.
    """
    model.eval()
    clicks = isinstance(model, PositionBiasedRanker)
    if clicks and slates.positions is None:
        raise ValueError("scoring with the position-bias view needs the slates' positions")
    out = np.zeros(slates.mask.shape, dtype=np.float32)
    for start in range(0, len(slates), batch_size):
        part = slates.take(np.arange(start, min(start + batch_size, len(slates))))
        batch = to_batch(part, device)
        inputs = [batch["dense"], batch["codes"], batch["mask"]]
        if clicks:
            inputs.append(batch["positions"])
        out[start : start + len(part)] = model(*inputs).float().cpu().numpy()
    return out


def slate_metrics(
    scores: np.ndarray, slates: Slates, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, Any]:
    """Mean ranking metrics of slate scores (B, L) against the slates' labels."""
    groups = np.repeat(np.arange(len(slates)), slates.mask.sum(axis=1))
    labels = slates.labels[slates.mask].astype(np.int64)
    return mean_metrics(per_query_metrics(labels, scores[slates.mask], groups, ks=ks))
