"""Position-bias estimation and off-policy evaluation on a small simulated cascade, where the
true examination curve, the cascade and every row's chances are known."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from searchrank.core.errors import InputError
from searchrank.core.ope import LoggedLists, RewardModel, estimate_policy
from searchrank.core.propensity import (
    PositionBias,
    estimate_position_bias,
    stream_above,
    unit_means,
)

LENGTH = 8
THETA = (1.0 + np.arange(LENGTH)) ** -0.85
KEEP = 0.4


@dataclass
class World:
    """``lists`` lists of ``LENGTH`` rows drawn from ``units`` items of known chances."""

    unit: np.ndarray
    click: np.ndarray
    """P(click | looked at) per row."""
    stream: np.ndarray
    """P(stream | click) per row."""
    list_id: np.ndarray

    @property
    def satisfy(self) -> np.ndarray:
        return self.click * self.stream


def make_world(lists: int, units: int, rng: np.random.Generator) -> World:
    click_of_unit = rng.beta(0.6, 2.0, units)
    unit = np.concatenate([rng.choice(units, LENGTH, replace=False) for _ in range(lists)])
    return World(
        unit=unit,
        click=click_of_unit[unit],
        stream=np.full(len(unit), 0.6),
        list_id=np.repeat(np.arange(lists), LENGTH),
    )


def rank_by(world: World, score: np.ndarray) -> np.ndarray:
    """Positions ordering each list by descending score."""
    order = np.argsort(-score.reshape(-1, LENGTH), axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(LENGTH)[None, :], axis=1)
    return position.ravel()


def show(world: World, position: np.ndarray, rng: np.random.Generator) -> LoggedLists:
    """Simulate the cascade for a ranking; the logs come back in position order per list."""
    order = np.lexsort((position, world.list_id))
    k = position[order]
    n = len(order)
    looked = rng.random(n) < THETA[k]
    click = looked & (rng.random(n) < world.click[order])
    stream = click & (rng.random(n) < world.stream[order])
    starts = np.arange(0, n, LENGTH)
    stops = stream_above(stream, starts) & np.repeat(rng.random(len(starts)) > KEEP, LENGTH)
    click &= ~stops
    stream &= ~stops
    logs = LoggedLists(world.list_id[order], k, np.empty(n, bool), np.empty(n, bool))
    logs.reward[order] = click
    logs.satisfied[order] = stream
    return LoggedLists(world.list_id, position, logs.reward, logs.satisfied)


def in_logged_order(logs: LoggedLists) -> tuple[LoggedLists, np.ndarray]:
    order = np.lexsort((logs.position, logs.list_id))
    return (
        LoggedLists(
            logs.list_id[order], logs.position[order], logs.reward[order], logs.satisfied[order]
        ),
        order,
    )


def test_em_recovers_the_examination_curve_where_logging_is_confounded() -> None:
    rng = np.random.default_rng(1)
    world = make_world(lists=6000, units=1500, rng=rng)
    # The logging ranker puts likeable items high, with noise: naive click-through rates by
    # position then mix examination with relevance.
    logging = rank_by(world, world.click + rng.normal(0, 0.15, len(world.unit)))
    logs, order = in_logged_order(show(world, logging, rng))
    above = stream_above(logs.satisfied, logs.starts)
    bias = estimate_position_bias(
        logs.position,
        logs.reward,
        above,
        unit_means(world.unit[order], prior_strength=0.0),
        positions=LENGTH,
        iterations=300,
    )
    free = ~above
    ctr = np.bincount(logs.position[free], logs.reward[free]) / np.bincount(logs.position[free])
    assert np.abs(ctr / ctr[0] - THETA).max() > 0.1, "the naive curve should be confounded"
    assert np.abs(bias.examination - THETA).max() < 0.07
    assert abs(bias.keep - KEEP) < 0.1


def test_ips_and_dr_cover_a_new_rankings_true_value_where_a_wrong_model_misses() -> None:
    rng = np.random.default_rng(2)
    world = make_world(lists=20_000, units=4000, rng=rng)
    logs = show(world, rank_by(world, rng.random(len(world.unit))), rng)
    logs, order = in_logged_order(logs)
    new = rank_by(world, world.click)[order]
    truth = np.mean(
        [show(world, rank_by(world, world.click), rng).reward.sum() / 20_000 for _ in range(20)]
    )
    bias = PositionBias(THETA, KEEP, iterations=0)
    satisfy = world.satisfy[order]
    right = estimate_policy(logs, new, bias, RewardModel(world.click[order], satisfy))
    wrong_model = RewardModel(np.full(len(new), world.click.mean()), satisfy)
    wrong = estimate_policy(logs, new, bias, wrong_model)
    assert abs(right["dm"].value - truth) < 0.01 * truth
    for name in ("ips", "snips", "dr"):
        assert wrong[name].covers(truth), (name, wrong[name], truth)
    assert not wrong["dm"].covers(truth)
    # Nothing is clipped at these weights, so self-normalizing changes nothing.
    assert wrong["snips"].value == pytest.approx(wrong["ips"].value)
    # A logged ranking evaluated on its own logs gets back what was observed.
    own = estimate_policy(logs, logs.position, bias, wrong_model, cutoff=LENGTH)
    assert own["ips"].value == pytest.approx(logs.reward.sum() / 20_000, rel=0.05)


def test_clipping_biases_ips_and_snips_restores_the_lost_mass() -> None:
    rng = np.random.default_rng(3)
    world = make_world(lists=5000, units=1000, rng=rng)
    logs, order = in_logged_order(show(world, rank_by(world, rng.random(len(world.unit))), rng))
    new = rank_by(world, world.click)[order]
    bias = PositionBias(THETA, KEEP, iterations=0)
    model = RewardModel(world.click[order], world.satisfy[order])
    free = estimate_policy(logs, new, bias, model, samples=200)
    clipped = estimate_policy(logs, new, bias, model, max_weight=1.5, samples=200)
    assert clipped["ips"].value < 0.9 * free["ips"].value
    assert abs(clipped["snips"].value - free["ips"].value) < abs(
        clipped["ips"].value - free["ips"].value
    )


def test_bad_inputs_name_the_field() -> None:
    logs = LoggedLists(np.zeros(3, int), np.arange(3), np.zeros(3, bool), np.zeros(3, bool))
    bias = PositionBias(THETA, KEEP, iterations=0)
    model = RewardModel(np.full(3, 0.2), np.full(3, 0.1))
    with pytest.raises(InputError, match="new_position"):
        estimate_policy(logs, np.arange(2), bias, model)
    with pytest.raises(InputError, match=r"model\.reward"):
        estimate_policy(logs, np.arange(3), bias, RewardModel(np.full(3, 1.5), model.satisfy))
    with pytest.raises(InputError, match="max_weight"):
        estimate_policy(logs, np.arange(3), bias, model, max_weight=0.5)
    with pytest.raises(InputError, match="position"):
        LoggedLists(np.zeros(3, int), np.arange(2), np.zeros(3, bool), np.zeros(3, bool))
    with pytest.raises(InputError, match="position"):
        estimate_position_bias(
            np.array([-1, 0]), np.zeros(2, bool), np.zeros(2, bool), unit_means(np.zeros(2, int))
        )
    for curve, keep, field in (
        ([1.0, np.nan], KEEP, "examination"),  # a missing propensity
        ([1.0, 0.0], KEEP, "examination"),
        ([], KEEP, "examination"),
        (THETA, 0.0, "keep"),
    ):
        with pytest.raises(InputError, match=field):
            PositionBias(np.asarray(curve, dtype=float), keep, iterations=0)
