"""The position-bias tower (PAL): trained beside the ranker on logged positions, never read when
scoring, and it recovers relevance from position-biased clicks that mislead a plain ranker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from searchrank.components.train_ranker.data import logged_positions
from searchrank.core.errors import InputError
from searchrank.core.metrics import ndcg_at_k
from searchrank.core.model import (
    ContextAwareRanker,
    InferenceRanker,
    PositionBiasedRanker,
    RankerConfig,
)
from searchrank.core.raytrain.loop import one_cycle
from searchrank.core.slates import Slates, to_slates
from searchrank.core.training import (
    loss_function,
    score_slates,
    seed_everything,
    shuffled_batches,
    train_step,
    training_tensors,
    training_view,
)

LENGTH = 20
"""Candidates per logged search."""
EXAMINATION = 1.0 / (np.arange(LENGTH) + 1.0)
"""P(seen | position) of the simulated listeners."""
P_CLICK = np.array([0.02, 0.2, 0.5, 0.9])
"""P(click | seen) by true grade 0..3."""


def logged_searches(n: int, seed: int) -> tuple[Slates, np.ndarray]:
    """Searches as an old ranker logged them, and their true grades (B, L).

    Three features per candidate: a popularity that tells nothing about relevance, a noisy
    reading of the true relevance, and noise. The old ranker ordered mostly by popularity; a
    candidate is clicked with P(seen | position) · P(click | seen, grade). Rows are stored in
    logged order, so a slate's slot is its position (which the ranker, without positional
    encoding, cannot see).
    """
    rng = np.random.default_rng(seed)
    popularity = rng.normal(size=(n, LENGTH))
    latent = rng.normal(size=(n, LENGTH))
    grade = np.digitize(latent, [0.0, 0.8, 1.5])
    reading = latent + rng.normal(scale=0.5, size=(n, LENGTH))
    noise = rng.normal(size=(n, LENGTH))
    order = np.argsort(-(popularity + rng.normal(scale=0.5, size=(n, LENGTH))), axis=1)
    features = np.take_along_axis(np.stack([popularity, reading, noise], -1), order[..., None], 1)
    grade = np.take_along_axis(grade, order, axis=1)
    clicks = rng.random((n, LENGTH)) < EXAMINATION * P_CLICK[grade]
    dense = features.reshape(n * LENGTH, 3)
    slates = to_slates(
        dense.astype(np.float32),
        np.zeros((n * LENGTH, 0), dtype=np.int64),
        clicks.reshape(-1).astype(np.float32),
        np.repeat(np.arange(n), LENGTH),
        LENGTH,
        positions=np.tile(np.arange(LENGTH), n),
    )
    return slates, grade


def train(slates: Slates, position_bias: bool, seed: int = 0) -> ContextAwareRanker:
    """The plain loop that each Ray worker runs, on one process: one-cycle AdamW, LambdaLoss.

    A higher peak learning rate than the default and a small model, so that a few hundred steps
    on one CPU suffice.
    """
    epochs, batch_size, learning_rate = 20, 32, 1e-2
    seed_everything(seed)
    model = ContextAwareRanker(
        RankerConfig(
            n_numeric=3,
            d_model=16,
            ff_dim=32,
            n_layers=1,
            dropout=0.0,
            bias_positions=LENGTH if position_bias else 0,
        )
    )
    data = slates if position_bias else replace(slates, positions=None)
    trained = training_view(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = one_cycle(optimizer, learning_rate, epochs, len(data), 1, batch_size)
    loss_fn = loss_function("lambdaloss")
    for epoch in range(epochs):
        for batch in shuffled_batches(training_tensors(data), batch_size, seed, epoch):
            train_step(trained, batch, optimizer, loss_fn, 1.0)
            if schedule.last_epoch < schedule.total_steps - 1:
                schedule.step()
    return model.eval()


def true_ndcg10(model: ContextAwareRanker, slates: Slates, grade: np.ndarray) -> float:
    """NDCG@10 against the true grades, scored as evaluation scores (no positions)."""
    scores = score_slates(model, replace(slates, positions=None))
    groups = np.repeat(np.arange(len(slates)), LENGTH)
    return ndcg_at_k(grade.reshape(-1), scores.reshape(-1), groups, 10)


@pytest.fixture(scope="module")
def rankers() -> Iterator[dict[str, ContextAwareRanker]]:
    logs, _ = logged_searches(1000, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small steps as fast on one thread as on two
    try:
        yield {"biased": train(logs, False), "debiased": train(logs, True)}
    finally:
        torch.set_num_threads(threads)


def test_the_tower_ranks_fresh_searches_better_by_true_relevance(
    rankers: dict[str, ContextAwareRanker],
) -> None:
    fresh, grade = logged_searches(1000, seed=1)
    biased = true_ndcg10(rankers["biased"], fresh, grade)
    debiased = true_ndcg10(rankers["debiased"], fresh, grade)
    print(f"true NDCG@10: biased {biased:.4f}, debiased {debiased:.4f}")
    assert debiased > biased


def test_the_learned_examination_curve_falls_with_position(
    rankers: dict[str, ContextAwareRanker],
) -> None:
    tower = rankers["debiased"].position_bias
    assert tower is not None
    curve = tower.examination()
    print("learned examination:", " ".join(f"{x:.3f}" for x in curve[:10]))
    assert curve[0] == pytest.approx(1.0)
    assert np.all(np.diff(curve[:3]) < 0), curve[:3]
    assert curve[3:10].max() < curve[1], curve[:10]


def small_ranker(bias_positions: int) -> ContextAwareRanker:
    torch.manual_seed(0)
    return ContextAwareRanker(
        RankerConfig(n_numeric=3, d_model=16, ff_dim=32, n_layers=1, bias_positions=bias_positions)
    )


def test_scores_never_depend_on_positions_and_equal_the_relevance_head_alone() -> None:
    logs, _ = logged_searches(64, seed=2)
    model = small_ranker(bias_positions=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    # the tower moves off its initial state
    for batch in shuffled_batches(training_tensors(logs), 16, 0, 0):
        train_step(training_view(model), batch, optimizer, loss_function("listnet"), 1.0)
    model.eval()
    tower = model.position_bias
    assert tower is not None and not np.allclose(tower.examination(), 1.0)

    shuffled = np.random.default_rng(3).permuted(logs.positions, axis=1)
    scored = [score_slates(model, s) for s in (logs, replace(logs, positions=shuffled))]
    scored.append(score_slates(model, replace(logs, positions=None)))
    assert np.array_equal(scored[0], scored[1]) and np.array_equal(scored[0], scored[2])

    # The same weights without the tower: the relevance head alone.
    alone = ContextAwareRanker(replace(model.config, bias_positions=0)).eval()
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("position_bias.")}
    alone.load_state_dict(weights)
    assert np.array_equal(score_slates(alone, logs), scored[0])

    # Serving's traced scorer of the model with its tower scores as the head alone.
    requests = [{"dense": logs.dense[b], "codes": logs.codes[b]} for b in range(3)]
    for got, want in zip(
        InferenceRanker(model).score(requests),
        InferenceRanker(alone, trace=False).score(requests),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)

    # Training does see positions: the click scores move with them.
    with torch.no_grad():
        view = PositionBiasedRanker(model)
        inputs = [torch.as_tensor(a) for a in (logs.dense, logs.codes, logs.mask)]
        moved = view(*inputs, torch.as_tensor(shuffled))
        logged = view(*inputs, torch.as_tensor(logs.positions))
    assert not torch.allclose(moved, logged)


def test_the_tower_clips_positions_beyond_its_last() -> None:
    tower = small_ranker(bias_positions=4).position_bias
    assert tower is not None
    logits = tower(torch.tensor([[0, 3, 4, 50]]))
    assert logits[0, 1] == logits[0, 2] == logits[0, 3]
    assert tower.examination().shape == (4,)


def test_the_training_view_needs_a_tower() -> None:
    with pytest.raises(ValueError, match="bias_positions"):
        PositionBiasedRanker(small_ranker(bias_positions=0))
    plain = small_ranker(bias_positions=0)
    assert training_view(plain) is plain


@pytest.mark.parametrize(
    ("values", "shown"),
    [([0, 1, None], None), ([0, -1, 2], -1), ([0, 1.5, 2], 1.5)],
)
def test_logged_positions_must_be_whole_and_not_negative(
    values: list[float | None], shown: float | None
) -> None:
    frame = pd.DataFrame({"search_id": [1, 1, 1], "position": values})
    with pytest.raises(InputError) as raised:
        logged_positions(frame)
    assert raised.value.field == "train column 'position'"
    assert "position_bias" in raised.value.rule and "integers >= 0" in raised.value.rule
    assert (pd.isna(raised.value.value) and shown is None) or raised.value.value == shown
    assert logged_positions(pd.DataFrame({"position": [0, 1, 2]})).tolist() == [0, 1, 2]
