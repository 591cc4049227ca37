"""Listwise learning-to-rank losses in torch, after allRank (https://github.com/allegro/allRank).

Every loss reads a batch of B slates padded to a common length L:

* ``scores``: (B, L) float model scores, higher ranks first;
* ``labels``: (B, L) float graded relevance >= 0 (the value in padded slots is ignored);
* ``mask``: (B, L) bool, True for a real candidate and False for a padded slot. Padded slots may
  sit anywhere in a slate, not only at its end.

Each returns a scalar: the mean of a per-slate loss over the slates that have a real candidate
and, for the NDCG-aware losses, a positive label. Other slates contribute nothing and do not
count in the mean; when no slate qualifies the loss is 0 (still attached to the graph, so
``backward()`` gives zero gradients instead of failing). Values are not checked (a device sync
per batch): labels must be >= 0 and real scores finite.

Gains are ``2^label − 1`` and the discount of rank r (from 1) is ``log2(r + 1)``, as in
:mod:`searchrank.core.metrics`. Where scores tie, the sort-based loss
(:func:`lambda_loss`) ranks the earlier slot first, like the metrics.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from searchrank.core.errors import InputError

EPS = 1e-10
"""Guards divisions by an ideal DCG or a Sinkhorn sum (allRank's ``DEFAULT_EPS``)."""

NDCG_LOSS2PP_MU = 10.0
"""The weight of the NDCGLoss2 term in NDCG-Loss2++ (allRank's default ``mu``)."""

SINKHORN_ITERATIONS = 50
"""Sinkhorn scaling rounds in :func:`neural_ndcg_loss` (allRank's ``max_iter``). A fixed count
instead of allRank's tolerance test avoids a device sync per round; the scaled matrices differ
from allRank's by at most its tolerance, 1e-6."""


def listnet_loss(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """ListNet: the cross-entropy between the top-one distributions of labels and scores.

    For one slate with real candidates R::

        loss = −Σ_{i∈R} softmax_R(labels)_i · log softmax_R(scores)_i

    Unlike allRank, which takes ``log(softmax + eps)``, this uses ``log_softmax``: the same value
    to within eps, without its bias for confident scores.

    Args:
        scores: (B, L) model scores.
        labels: (B, L) graded relevance.
        mask: (B, L) True for real candidates.

    Returns:
        () the mean loss over slates with at least one real candidate.

    Raises:
        InputError: the shapes differ or are not 2-D, the mask is not bool or scores not float.
    """
    _check_batch(scores, labels, mask)
    log_p_scores = _masked_log_softmax(scores, mask)
    p_labels = _masked_log_softmax(labels.to(scores.dtype), mask).exp().masked_fill(~mask, 0.0)
    per_slate = -(p_labels * log_p_scores).sum(dim=1)
    return _masked_mean(per_slate, mask.any(dim=1))


def lambda_loss(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    k: int | None = None,
    sigma: float = 1.0,
) -> Tensor:
    """LambdaLoss with the NDCG-Loss2++ weights (Wang et al. 2018; allRank's ``lambdaLoss``).

    Sort a slate's real candidates by descending score; let rank i (from 1) hold the candidate
    with score s_i and label y_i, ``D_i = log2(1 + i)``, and ``G_i = (2^y_i − 1) / maxDCG@k``
    (maxDCG@k: the ideal DCG of the slate's labels, truncated at k). Then::

        δ_ij = |1/D_|i−j| − 1/D_(|i−j|+1)|                    (NDCGLoss2)
        w_ij = (μ · δ_ij + |1/D_i − 1/D_j|) · |G_i − G_j|     (NDCG-Loss2++, μ = 10)
        loss = −Σ_{i,j ≤ k, y_i > y_j} w_ij · log2 sigmoid(σ · (s_i − s_j))

    As in allRank, truncation keeps the pairs whose ranks are both within k. allRank sums over
    the whole batch; here the per-slate sums are averaged. ``log2 sigmoid`` is computed as
    ``logsigmoid / ln 2``, which equals allRank's clamped form except where its eps clamp
    bites (score gaps beyond about 23 / σ), where this one keeps a gradient.

    Args:
        scores: (B, L) model scores.
        labels: (B, L) graded relevance.
        mask: (B, L) True for real candidates.
        k: truncation rank, or None for the whole slate.
        sigma: the sharpness σ of the pairwise sigmoid, > 0.

    Returns:
        () the mean loss over slates with a real candidate that has a positive label.

    Raises:
        InputError: bad shapes or dtypes, k below 1, or sigma not positive.
    """
    _check_batch(scores, labels, mask)
    _check_k(k)
    _check_positive("sigma", sigma)
    length = scores.shape[1]
    labels = labels.to(scores.dtype)
    gains = torch.where(mask, torch.exp2(labels) - 1.0, 0.0)

    order = scores.masked_fill(~mask, -math.inf).sort(dim=1, descending=True, stable=True).indices
    ranked_scores = scores.masked_fill(~mask, 0.0).gather(1, order)
    ranked_labels = labels.gather(1, order)
    ranked_gains = gains.gather(1, order)
    ranked_real = mask.gather(1, order)

    rank = torch.arange(1, length + 1, device=scores.device, dtype=scores.dtype)
    inv_discount = 1.0 / torch.log2(rank + 1.0)
    in_top = rank <= (k if k is not None else length)
    max_dcg = (gains.sort(dim=1, descending=True).values * inv_discount * in_top).sum(dim=1)
    normalized = ranked_gains / max_dcg.clamp(min=EPS)[:, None]

    # Rank gaps of 0 (the diagonal) never form a pair; clamping keeps δ finite there.
    gap = (rank[:, None] - rank[None, :]).abs().clamp(min=1.0)
    delta = (1.0 / torch.log2(gap + 1.0) - 1.0 / torch.log2(gap + 2.0)).abs()
    rank_weight = (inv_discount[:, None] - inv_discount[None, :]).abs()
    gain_gap = (normalized[:, :, None] - normalized[:, None, :]).abs()
    weights = (NDCG_LOSS2PP_MU * delta + rank_weight) * gain_gap

    pairs = (
        ranked_real[:, :, None]
        & ranked_real[:, None, :]
        & (ranked_labels[:, :, None] > ranked_labels[:, None, :])
        & in_top[:, None]
        & in_top[None, :]
    )
    score_gap = ranked_scores[:, :, None] - ranked_scores[:, None, :]
    log2_prob = torch.nn.functional.logsigmoid(sigma * score_gap) / math.log(2.0)
    per_slate = -torch.where(pairs, weights * log2_prob, 0.0).sum(dim=(1, 2))
    return _masked_mean(per_slate, (gains > 0).any(dim=1))


def neural_ndcg_loss(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    temperature: float = 1.0,
    k: int | None = None,
) -> Tensor:
    """Negative NeuralNDCG (Pobrotyn & Białobrzeski 2021; allRank's ``neuralNDCG``).

    NeuralSort relaxes the permutation that sorts a slate's n real scores s by descending value
    into a row-stochastic matrix: row r (a rank, from 1) is a distribution over candidates::

        P̂[r, i] = softmax_i(((n + 1 − 2r) · s_i − Σ_j |s_i − s_j|) / τ)

    Sinkhorn scaling (alternately normalizing columns and rows, :data:`SINKHORN_ITERATIONS`
    times) makes it doubly stochastic. The relaxed DCG applies it to the gains::

        NeuralDCG@k = Σ_{r ≤ k} (P̂ · (2^y − 1))_r / log2(r + 1)
        NeuralNDCG@k = NeuralDCG@k / maxDCG@k

    As τ → 0, P̂ tends to the sorting permutation and NeuralNDCG to NDCG.

    Args:
        scores: (B, L) model scores.
        labels: (B, L) graded relevance.
        mask: (B, L) True for real candidates.
        temperature: the NeuralSort temperature τ, > 0; smaller is closer to a hard sort.
        k: truncation rank, or None for the whole slate.

    Returns:
        () minus the mean NeuralNDCG over slates with a real candidate that has a positive
        label, so lower is better and a perfect ranking approaches −1.

    Raises:
        InputError: bad shapes or dtypes, k below 1, or temperature not positive.
    """
    _check_batch(scores, labels, mask)
    _check_k(k)
    _check_positive("temperature", temperature)
    length = scores.shape[1]
    gains = torch.where(mask, torch.exp2(labels.to(scores.dtype)) - 1.0, 0.0)
    s = scores.masked_fill(~mask, 0.0)

    # Rank rows 1..n belong to the n real candidates; the rest pair with the padded slots.
    n_real = mask.sum(dim=1, keepdim=True)
    rank = torch.arange(1, length + 1, device=scores.device)
    real_rank = rank[None, :] <= n_real
    real_block = real_rank[:, :, None] & mask[:, None, :]
    padded_block = ~real_rank[:, :, None] & ~mask[:, None, :]

    pair_real = mask[:, :, None] & mask[:, None, :]
    spread = (s[:, :, None] - s[:, None, :]).abs().masked_fill(~pair_real, 0.0).sum(dim=2)
    scaling = (n_real + 1 - 2 * rank[None, :]).to(scores.dtype)
    logits = (scaling[:, :, None] * s[:, None, :] - spread[:, None, :]) / temperature
    # The padded block becomes a uniform, already doubly stochastic matrix that never mixes
    # with the real one; every row keeps a finite entry, so a fully padded slate gives no NaN.
    logits = logits.masked_fill(~real_block, -math.inf).masked_fill(padded_block, 0.0)
    permutation = _sinkhorn(torch.softmax(logits, dim=2)).masked_fill(~real_block, 0.0)

    inv_discount = 1.0 / torch.log2(rank.to(scores.dtype) + 1.0)
    in_top = rank <= (k if k is not None else length)
    sorted_gains = (permutation @ gains[:, :, None]).squeeze(2)
    dcg = (sorted_gains * inv_discount * in_top).sum(dim=1)
    ideal = (gains.sort(dim=1, descending=True).values * inv_discount * in_top).sum(dim=1)
    ndcg = dcg / ideal.clamp(min=EPS)
    return -_masked_mean(ndcg, ideal > 0)


def _sinkhorn(matrix: Tensor) -> Tensor:
    """Alternately normalize the columns and rows of (B, L, L) non-negative matrices."""
    for _ in range(SINKHORN_ITERATIONS):
        matrix = matrix / matrix.sum(dim=1, keepdim=True).clamp(min=EPS)
        matrix = matrix / matrix.sum(dim=2, keepdim=True).clamp(min=EPS)
    return matrix


def _masked_log_softmax(values: Tensor, mask: Tensor) -> Tensor:
    """Log-softmax over the real slots of each row; (B, L) in, (B, L) out, 0 in padded slots.

    Padded slots are never read, so garbage there cannot leak in, and a fully padded row gets
    a finite dummy distribution: no -inf or NaN reaches the forward or backward pass.
    """
    usable = mask | ~mask.any(dim=1, keepdim=True)
    logits = values.masked_fill(~mask, 0.0).masked_fill(~usable, -math.inf)
    return torch.log_softmax(logits, dim=1).masked_fill(~mask, 0.0)


def _masked_mean(per_slate: Tensor, included: Tensor) -> Tensor:
    """The mean of (B,) finite values over the ``included`` (B,) slates; 0 when none is."""
    total = torch.where(included, per_slate, 0.0).sum()
    return total / included.sum().clamp(min=1).to(per_slate.dtype)


def _check_batch(scores: Tensor, labels: Tensor, mask: Tensor) -> None:
    """Check the shapes and dtypes shared by every loss."""
    if scores.ndim != 2:
        raise InputError("scores", tuple(scores.shape), "must be a (batch, slate length) tensor")
    if not scores.is_floating_point():
        raise InputError("scores", str(scores.dtype), "must be a float tensor")
    for name, tensor in (("labels", labels), ("mask", mask)):
        if tensor.shape != scores.shape:
            raise InputError(
                name, tuple(tensor.shape), f"must have the shape of scores, {tuple(scores.shape)}"
            )
    if mask.dtype != torch.bool:
        raise InputError("mask", str(mask.dtype), "must be a bool tensor (True = real candidate)")


def _check_k(k: int | None) -> None:
    """Check a truncation rank: None or a positive integer."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InputError("k", k, "must be None (no truncation) or a positive integer")


def _check_positive(name: str, value: float) -> None:
    """Check that a scale parameter is a positive, finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InputError(name, value, "must be a positive, finite number")
