"""Listwise losses: hand-computed values, independent re-implementations, padding and gradients."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from searchrank.core.errors import InputError
from searchrank.core.losses import (
    NDCG_LOSS2PP_MU,
    SINKHORN_ITERATIONS,
    lambda_loss,
    listnet_loss,
    neural_ndcg_loss,
)

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: dict[str, Loss] = {
    "listnet": listnet_loss,
    "lambda": lambda_loss,
    "neural_ndcg": neural_ndcg_loss,
}


def _batch(
    scores: list[list[float]], labels: list[list[float]], mask: list[list[bool]] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = torch.tensor(scores, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.float64)
    m = torch.ones_like(s, dtype=torch.bool) if mask is None else torch.tensor(mask)
    return s, y, m


def _lambda_reference(
    scores: list[float], labels: list[float], k: int | None = None, sigma: float = 1.0
) -> float:
    """NDCG-Loss2++ of one unpadded slate, written as the paper's double sum over rank pairs."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: -scores[i])  # stable: ties keep slot order
    s = [scores[i] for i in order]
    y = [labels[i] for i in order]
    top = n if k is None else min(k, n)

    def discount(rank: int) -> float:  # D_rank, rank from 1
        return math.log2(1 + rank)

    ideal = sorted(labels, reverse=True)
    max_dcg = sum((2 ** ideal[r] - 1) / discount(r + 1) for r in range(top))
    gain = [(2**v - 1) / max_dcg for v in y]
    total = 0.0
    for i in range(top):
        for j in range(top):
            if y[i] > y[j]:
                gap = abs(i - j)
                delta = abs(1 / discount(gap) - 1 / discount(gap + 1))
                lambda_rank = abs(1 / discount(i + 1) - 1 / discount(j + 1))
                weight = (NDCG_LOSS2PP_MU * delta + lambda_rank) * abs(gain[i] - gain[j])
                probability = 1 / (1 + math.exp(-sigma * (s[i] - s[j])))
                total -= weight * math.log2(probability)
    return total


def _neural_ndcg_reference(
    scores: list[float], labels: list[float], temperature: float, k: int | None = None
) -> float:
    """Negative NeuralNDCG of one unpadded slate in NumPy, straight from the paper's formulas."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    rank = np.arange(1, n + 1)
    spread = np.abs(s[:, None] - s[None, :]).sum(axis=1)
    logits = ((n + 1 - 2 * rank)[:, None] * s[None, :] - spread[None, :]) / temperature
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for _ in range(SINKHORN_ITERATIONS):
        p /= p.sum(axis=0, keepdims=True)
        p /= p.sum(axis=1, keepdims=True)
    gains = 2.0 ** np.asarray(labels, dtype=np.float64) - 1.0
    weight = (rank <= (n if k is None else k)) / np.log2(rank + 1)
    dcg = float((p @ gains * weight).sum())
    ideal = float((np.sort(gains)[::-1] * weight).sum())
    return -dcg / ideal


def test_listnet_hand_computed() -> None:
    # labels [1, 0, 0] → target softmax [e, 1, 1] / (e + 2)
    # scores [ln 2, 0, 0] → predicted softmax [2, 1, 1] / 4 = [1/2, 1/4, 1/4]
    # loss = −(e/(e+2) · ln(1/2) + 2/(e+2) · ln(1/4)) = ln 2 · (e + 4) / (e + 2)
    scores, labels, mask = _batch([[math.log(2.0), 0.0, 0.0]], [[1.0, 0.0, 0.0]])
    expected = math.log(2.0) * (math.e + 4) / (math.e + 2)
    assert listnet_loss(scores, labels, mask).item() == pytest.approx(expected, abs=1e-12)


def test_listnet_equal_scores_give_log_of_slate_length() -> None:
    # A uniform prediction has log-probability −ln 3 everywhere; the target sums to 1.
    scores, labels, mask = _batch([[0.5, 0.5, 0.5]], [[3.0, 1.0, 0.0]])
    assert listnet_loss(scores, labels, mask).item() == pytest.approx(math.log(3.0), abs=1e-12)


@pytest.mark.parametrize("k", [None, 1, 2])
def test_lambda_loss_small_slate_matches_double_loop(k: int | None) -> None:
    scores, labels, mask = [0.2, 1.5, -0.3], [2.0, 0.0, 1.0], None
    s, y, m = _batch([scores], [labels], mask)
    expected = _lambda_reference(scores, labels, k=k)
    assert lambda_loss(s, y, m, k=k).item() == pytest.approx(expected, abs=1e-12)
    if k != 1:  # at k = 1 no pair has both ranks in the top k
        assert expected > 0


def test_lambda_loss_batch_matches_double_loop_with_ties_and_sigma() -> None:
    generator = np.random.default_rng(3)
    lengths = [5, 8, 3, 8, 6]
    scores = np.round(generator.normal(size=(5, 8)), 1)  # rounded: ties occur
    labels = generator.integers(0, 4, size=(5, 8)).astype(float)
    labels[2] = 0.0  # no positive label: excluded from the mean
    mask = np.arange(8)[None, :] < np.array(lengths)[:, None]
    loss = lambda_loss(
        torch.tensor(scores), torch.tensor(labels), torch.tensor(mask), k=4, sigma=2.0
    )
    expected = [
        _lambda_reference(list(scores[b, :n]), list(labels[b, :n]), k=4, sigma=2.0)
        for b, n in enumerate(lengths)
        if b != 2
    ]
    assert loss.item() == pytest.approx(float(np.mean(expected)), abs=1e-12)


@pytest.mark.parametrize("k", [None, 2])
def test_neural_ndcg_matches_numpy_reference(k: int | None) -> None:
    scores, labels = [0.3, -1.2, 0.9, 0.1], [1.0, 0.0, 3.0, 2.0]
    s, y, m = _batch([scores], [labels])
    expected = _neural_ndcg_reference(scores, labels, temperature=0.5, k=k)
    actual = neural_ndcg_loss(s, y, m, temperature=0.5, k=k).item()
    assert actual == pytest.approx(expected, abs=1e-10)
    assert -1.0 < actual < 0.0


@pytest.mark.parametrize("k", [None, 1, 2])
def test_neural_ndcg_tends_to_true_ndcg_at_low_temperature(k: int | None) -> None:
    # A perfect ordering has NDCG 1, so the loss tends to −1 as the relaxed sort hardens.
    s, y, m = _batch([[3.0, 1.0, 2.0, 0.0]], [[2.0, 0.0, 1.0, 0.0]])
    assert neural_ndcg_loss(s, y, m, temperature=1e-2, k=k).item() == pytest.approx(-1.0, abs=1e-6)
    assert neural_ndcg_loss(s, y, m, temperature=1.0, k=k).item() > -1.0


@pytest.mark.parametrize("name", LOSSES)
def test_padding_does_not_change_the_loss(name: str) -> None:
    loss = LOSSES[name]
    generator = torch.Generator().manual_seed(4)
    scores = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 4, (3, 5), generator=generator).to(torch.float64)
    labels[:, 0] = 2.0
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False  # slate 1 is already padded at its end

    # Padded slots added in the middle and at the end, holding garbage.
    padded_at = [1, 4, 7, 8]
    width = 5 + len(padded_at)
    real_at = [i for i in range(width) if i not in padded_at]
    big_scores = torch.full((3, width), 1e4, dtype=torch.float64)
    big_scores[:, 7] = float("nan")
    big_labels = torch.full((3, width), float("nan"), dtype=torch.float64)
    big_mask = torch.zeros(3, width, dtype=torch.bool)
    big_scores[:, real_at] = scores
    big_labels[:, real_at] = labels
    big_mask[:, real_at] = mask

    expected = loss(scores, labels, mask)
    actual = loss(big_scores, big_labels, big_mask)
    assert actual.item() == pytest.approx(expected.item(), abs=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_are_finite_and_flow_to_real_slots_only(name: str) -> None:
    scores, labels, mask = _batch(
        [[0.1, 0.4, -0.2, 9.0], [1.0, 0.0, 0.5, 0.2]],
        [[0.0, 2.0, 1.0, 0.0], [3.0, 1.0, 0.0, 0.0]],
        [[True, True, True, False], [True, True, True, True]],
    )
    scores.requires_grad_(True)
    LOSSES[name](scores, labels, mask).backward()
    assert scores.grad is not None
    assert torch.isfinite(scores.grad).all()
    for slate in range(2):
        assert scores.grad[slate][mask[slate]].abs().sum() > 0
    assert scores.grad[0, 3] == 0.0


@pytest.mark.parametrize("name", LOSSES)
def test_slates_without_positives_or_candidates_give_no_nan(name: str) -> None:
    loss = LOSSES[name]
    scores, labels, mask = _batch(
        [[0.3, 1.0, -0.5], [0.2, 0.1, 0.0], [0.0, 0.0, 0.0]],
        [[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        [[True, True, True], [True, True, False], [False, False, False]],
    )
    scores.requires_grad_(True)
    value = loss(scores, labels, mask)
    value.backward()
    assert torch.isfinite(value)
    assert scores.grad is not None
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[2] == 0).all()

    first = loss(scores[:1], labels[:1], mask[:1])
    if name == "listnet":  # every slate with a candidate counts, positives or not
        second = loss(scores[1:2], labels[1:2], mask[1:2])
        assert value.item() == pytest.approx((first.item() + second.item()) / 2, abs=1e-12)
    else:
        assert value.item() == pytest.approx(first.item(), abs=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_a_batch_with_nothing_to_learn_gives_zero(name: str) -> None:
    scores, labels, mask = _batch([[0.5, 0.1]], [[0.0, 0.0]], [[False, False]])
    scores.requires_grad_(True)
    value = LOSSES[name](scores, labels, mask)
    value.backward()
    assert value.item() == 0.0
    assert scores.grad is not None
    assert (scores.grad == 0).all()


@pytest.mark.parametrize("name", LOSSES)
def test_better_orderings_give_lower_loss(name: str) -> None:
    labels = [[2.0, 1.0, 0.0, 0.0]]
    perfect, _, mask = _batch([[3.0, 2.0, 1.0, 0.0]], labels)
    swapped, _, _ = _batch([[2.0, 3.0, 1.0, 0.0]], labels)
    reversed_, y, _ = _batch([[0.0, 1.0, 2.0, 3.0]], labels)
    loss = LOSSES[name]
    assert loss(perfect, y, mask) < loss(swapped, y, mask) < loss(reversed_, y, mask)


def test_float32_inputs_keep_their_dtype() -> None:
    scores = torch.randn(2, 4)
    labels = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 3.0, 0.0, 1.0]])
    mask = torch.ones(2, 4, dtype=torch.bool)
    for loss in LOSSES.values():
        value = loss(scores, labels, mask)
        assert value.dtype == torch.float32
        assert value.shape == ()


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s, y, m: listnet_loss(s[0], y[0], m[0]), "scores"),
        (lambda s, y, m: listnet_loss(s.long(), y, m), "scores"),
        (lambda s, y, m: listnet_loss(s, y[:, :2], m), "labels"),
        (lambda s, y, m: lambda_loss(s, y, m[:1]), "mask"),
        (lambda s, y, m: neural_ndcg_loss(s, y, m.float()), "mask"),
        (lambda s, y, m: lambda_loss(s, y, m, k=0), "k"),
        (lambda s, y, m: neural_ndcg_loss(s, y, m, k=2.0), "k"),  # type: ignore[arg-type]
        (lambda s, y, m: lambda_loss(s, y, m, sigma=0.0), "sigma"),
        (lambda s, y, m: neural_ndcg_loss(s, y, m, temperature=-1.0), "temperature"),
        (lambda s, y, m: neural_ndcg_loss(s, y, m, temperature=math.inf), "temperature"),
    ],
)
def test_bad_input_names_the_field(call: Callable, field: str) -> None:
    s, y, m = _batch([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    with pytest.raises(InputError) as caught:
        call(s, y, m)
    assert caught.value.field == field
